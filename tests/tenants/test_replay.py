"""``migrate`` of a tenant database one behind by replaying the plan's collected SQL (tenants/db.py,
"Replayed migrations"): the same schema and ``django_migrations`` as Django's ``migrate``; plans
with RunPython, and replays that fail, go through ``migrate``; a failed replay leaves nothing."""

from __future__ import annotations

import logging

import pytest
from django.db import connections

from tenants import db as tenant_db
from tenants import services

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

BEFORE_SCHEMA_OPS = ("accounts", "0008_backup_codes_hashed")  # 0009-0012: schema operations and SQL
BEFORE_RUN_PYTHON = ("accounts", "0005_job_targets")  # 0006 and 0008 are RunPython


@pytest.fixture
def migrate_runs(monkeypatch):
    """The runs of Django's ``migrate`` on tenant databases (forwards, no target; not templates)."""
    runs: list[str] = []
    real = tenant_db._migrate_alias

    def counted(alias, target=None):
        if target is None and "_scratch_" not in alias:
            runs.append(alias)
        return real(alias, target)

    monkeypatch.setattr(tenant_db, "_migrate_alias", counted)
    return runs


def _behind(tenant, target):
    tenant_db.migrate_database(tenant, target=[target])
    tenant.schema_version = tenant_db.applied_schema_version(tenant)
    tenant.save(update_fields=["schema_version"])


def _schema(tenant) -> dict[str, list[tuple]]:
    """Everything the migrations shape in a database, from the catalogs, names and all."""
    alias = tenant_db.using(tenant)
    queries = {
        "columns": """
            SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length,
                   numeric_precision, is_nullable, column_default, is_identity, identity_generation
            FROM information_schema.columns WHERE table_schema = 'public'""",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "constraints": """
            SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid),
                   c.condeferrable, c.condeferred
            FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = 'public'""",
        "sequences": """
            SELECT sequencename, data_type, start_value, increment_by FROM pg_sequences
            WHERE schemaname = 'public'""",
        "tables": """
            SELECT relname, relkind, relpersistence, reloptions FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'""",
        # The ban table's triggers and their function (accounts.ban_table), pg_trgm's functions.
        "triggers": """
            SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
            WHERE NOT tgisinternal""",
        "functions": """
            SELECT p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc) FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'""",
        "migrations": "SELECT app, name FROM django_migrations",
    }
    found = {}
    with connections[alias].cursor() as cursor:
        for name, query in queries.items():
            cursor.execute(query)
            found[name] = sorted(cursor.fetchall(), key=repr)
    tenant_db.close_connection(tenant)
    return found


def test_replay_and_migrate_leave_identical_schemas(make_tenant, settings, migrate_runs):
    replayed, migrated, untouched = make_tenant("replayed"), make_tenant("migrated"), make_tenant("untouched")
    for tenant in (replayed, migrated):
        _behind(tenant, BEFORE_SCHEMA_OPS)
    assert _schema(replayed) == _schema(migrated) != _schema(untouched)

    assert tenant_db.migrate_database(replayed) == tenant_db.latest_schema_version()
    assert migrate_runs == []  # replayed, not migrated
    settings.TENANT_MIGRATE_REPLAY = False
    assert tenant_db.migrate_database(migrated) == tenant_db.latest_schema_version()
    assert len(migrate_runs) == 1

    assert _schema(replayed) == _schema(migrated) == _schema(untouched)
    assert len(_schema(replayed)["triggers"]) == 3  # the plan (0009-0012) made the ban table's
    assert _schema(replayed)["columns"]  # the comparison compared something


def test_a_plan_with_run_python_goes_through_migrate(make_tenant, migrate_runs):
    acme = make_tenant("acme")
    _behind(acme, BEFORE_RUN_PYTHON)
    key = ("default", frozenset(tenant_db._applied(tenant_db.using(acme))))
    assert tenant_db.migrate_database(acme) == tenant_db.latest_schema_version()
    assert len(migrate_runs) == 1
    assert key in tenant_db._replays and tenant_db._replays[key] is None  # looked at, not replayable


def test_a_failed_replay_is_rolled_back_whole_reported_and_migrated(make_tenant, migrate_runs, caplog):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    _behind(acme, BEFORE_SCHEMA_OPS)
    _behind(globex, BEFORE_SCHEMA_OPS)
    assert tenant_db.migrate_database(globex) == tenant_db.latest_schema_version()  # collects the plan
    alias = tenant_db.using(acme)
    applied = tenant_db._applied(alias)
    key = ("default", frozenset(applied))
    real = tenant_db._replays[key]
    assert real is not None and real.statements
    before = _schema(acme)
    # The plan's statements run, then one fails: nothing of it may stay.
    tenant_db._replays[key] = tenant_db._Replay((*real.statements, "SELECT no_such_function()"), real.records)
    try:
        with caplog.at_level(logging.WARNING, logger="tenants.db"):
            assert tenant_db.replay_plan(alias, "default", applied) is False
        assert "Replaying the migrations on" in caplog.text and "no_such_function" in caplog.text
        assert _schema(acme) == before
        assert migrate_runs == []
        assert tenant_db.migrate_database(acme) == tenant_db.latest_schema_version()  # migrate does it
        assert len(migrate_runs) == 1
    finally:
        tenant_db._replays[key] = real
    assert _schema(acme) == _schema(globex)


def test_a_database_whose_migrations_changed_is_not_replayed_over(make_tenant, migrate_runs, caplog):
    """The plan is for the applied set the caller saw; a database past it (a concurrent migrate
    got there first) is left to ``migrate``, which finds nothing to do."""
    acme = make_tenant("acme")
    _behind(acme, BEFORE_SCHEMA_OPS)
    alias = tenant_db.using(acme)
    applied = tenant_db._applied(alias)
    tenant_db.migrate_database(acme)  # collected and replayed: current now
    with caplog.at_level(logging.WARNING, logger="tenants.db"):
        assert tenant_db.replay_plan(alias, "default", applied) is False
    assert "changed meanwhile" in caplog.text
    assert tenant_db.applied_schema_version(acme) == tenant_db.latest_schema_version()


@pytest.mark.django_db(transaction=True)  # the pool's threads see only what is committed
def test_migrate_all_replays_in_the_pool(make_tenant, settings, migrate_runs):
    settings.TENANT_MIGRATE_CONCURRENCY = 3
    tenants = [make_tenant(f"rep{i}") for i in range(5)]
    for tenant in tenants:
        _behind(tenant, BEFORE_SCHEMA_OPS)
    outcomes = {o.tenant.slug: o for o in services.tenant_migrate_all(actor=None)}
    assert all(outcomes[t.slug].ok for t in tenants), [o.error for o in outcomes.values()]
    assert migrate_runs == []
    schemas = [_schema(t) for t in tenants]
    assert all(schema == schemas[0] for schema in schemas)
    for tenant in tenants:
        tenant.refresh_from_db()
        assert not tenant_db.is_behind(tenant)


def test_a_plan_whose_later_operation_introspects_earlier_work_is_not_replayed():
    """Collected SQL is not executed: an ``AlterField`` after the ``AddField`` that made its unique
    constraint introspects the database before the plan, finds no constraint and drops nothing
    (the replay would succeed, the constraint left in place). Such plans go through ``migrate``."""
    from django.db import migrations, models

    made_unique = migrations.AddField("appuser", "code", models.CharField(max_length=10, unique=True, default=""))
    not_unique = migrations.AlterField("appuser", "code", models.CharField(max_length=10, default=""))
    index = migrations.AddIndex("appuser", models.Index(fields=["code"], name="appuser_code_idx"))
    other = migrations.AlterField("appsession", "ip", models.CharField(max_length=64, default=""))
    assert tenant_db._introspects_earlier_work([("accounts", made_unique), ("accounts", not_unique)])
    assert tenant_db._introspects_earlier_work([("accounts", index), ("accounts", not_unique)])
    assert not tenant_db._introspects_earlier_work([("accounts", made_unique), ("accounts", index)])
    assert not tenant_db._introspects_earlier_work([("accounts", made_unique), ("accounts", other)])
    assert not tenant_db._introspects_earlier_work([("accounts", not_unique)])
