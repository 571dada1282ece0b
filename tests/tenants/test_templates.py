"""Tenant databases are copies of a migrated template per schema version (tenants/db.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connections

from accounts.models import AppUser
from tenants import db as tenant_db
from tenants import services
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def _postgres() -> bool:
    return connections["default"].vendor == "postgresql"


def _template_exists() -> bool:
    if not _postgres():
        name = tenant_db.ensure_template("default")
        return name is not None and Path(name).exists()
    with tenant_db._maintenance_connection("default") as conn:
        row = conn.execute(
            "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s",
            [tenant_db.template_name()],
        ).fetchone()
    return row == (True, False)


def _drop_template() -> None:
    """As if the template had never been built (or was dropped by hand)."""
    from psycopg import sql

    if _postgres():
        with tenant_db._maintenance_connection("default") as conn:
            name = tenant_db.template_name()
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name))) \
                if tenant_db._exists(conn, name) else None
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    else:
        for path in tenant_db._template_dir().glob("*.sqlite3"):
            path.unlink()


@pytest.fixture
def migrations_run(monkeypatch):
    """Counts the real runs of ``migrate`` on tenant databases and on templates being built."""
    runs = {"tenant": 0, "template": 0}
    real_alias, real_scratch = tenant_db._migrate_alias, tenant_db._migrate_scratch

    def on_alias(alias, target=None):
        runs["tenant"] += 1
        return real_alias(alias, target)

    def on_scratch(*args, **kwargs):
        runs["template"] += 1
        return real_scratch(*args, **kwargs)

    monkeypatch.setattr(tenant_db, "_migrate_alias", on_alias)
    monkeypatch.setattr(tenant_db, "_migrate_scratch", on_scratch)
    return runs


def _create_crashing_after_the_copy(monkeypatch, slug: str) -> None:
    """``tenant_create`` in a process that dies right after the copy (before the migrate step)."""
    with monkeypatch.context() as patched:
        def crash(tenant, **kwargs):
            raise KeyboardInterrupt

        patched.setattr(tenant_db, "migrate_database", crash)
        with pytest.raises(KeyboardInterrupt):
            services.tenant_create(actor=None, slug=slug, name=slug.title())


def test_a_new_tenant_is_a_copy_of_the_migrated_template(make_tenant, migrations_run):
    first = make_tenant("acme")
    assert _template_exists()
    builds = migrations_run["template"]
    migrations_run["tenant"] = 0
    second = make_tenant("globex")
    # No migration ran for the second tenant, nor another build: a copy, then one query.
    assert migrations_run == {"tenant": 0, "template": builds}
    assert second.status == Tenant.Status.ACTIVE
    assert second.schema_version == tenant_db.latest_schema_version()
    assert tenant_db.applied_schema_version(second) == tenant_db.latest_schema_version()
    # Two copies, two databases: nothing is shared between them or with the template.
    AppUser.objects.using(tenant_db.using(first)).create(email="ann@acme.test")
    assert AppUser.objects.using(tenant_db.using(second)).count() == 0
    assert not tenant_db.is_behind(second)


def test_creation_does_not_connect_to_the_copy_it_just_made(make_tenant, tenant_connects):
    make_tenant("acme")  # the template exists from here on
    tenant_connects.clear()
    globex = make_tenant("globex")
    assert tenant_connects == []
    assert globex.status == Tenant.Status.ACTIVE
    assert tenant_db.applied_schema_version(globex) == globex.schema_version == tenant_db.latest_schema_version()


def test_a_copy_is_trusted_only_right_after_it_was_made(make_tenant, monkeypatch, settings, migrations_run):
    """The copy crashed before its migrate step, the database was dropped, the retry makes it
    empty (no template now): its migrate step migrates, it does not take the old copy's word."""
    make_tenant("globex")
    _create_crashing_after_the_copy(monkeypatch, "acme")
    tenant = Tenant.objects.get(slug="acme")
    try:
        tenant_db.drop_database(tenant)
        settings.TENANT_TEMPLATE_DATABASES = False
        migrations_run["tenant"] = 0
        tenant = services.tenant_create(actor=None, slug="acme", name="Acme")
        assert migrations_run["tenant"] == 1
        assert tenant.status == Tenant.Status.ACTIVE
        assert AppUser.objects.using(tenant_db.using(tenant)).count() == 0  # the tables are there
    finally:
        tenant_db.drop_database(tenant)


def test_the_template_is_built_once_by_concurrent_creators(migrations_run):
    _drop_template()
    tenant_db._forget_template("default")
    names, errors = [], []

    def build():
        try:
            names.append(tenant_db.ensure_template("default"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(names)) == 1 and names[0]
    assert migrations_run["template"] == 1
    assert _template_exists()


def test_a_crash_after_the_copy_is_finished_by_the_next_run(monkeypatch):
    _create_crashing_after_the_copy(monkeypatch, "acme")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.status == Tenant.Status.PROVISIONING and tenant_db.database_exists(tenant)
    try:
        tenant = services.tenant_create(actor=None, slug="acme", name="Acme")
        assert tenant.status == Tenant.Status.ACTIVE
        assert tenant.schema_version == tenant_db.latest_schema_version()
    finally:
        tenant_db.drop_database(tenant)


def test_a_vanished_template_is_rebuilt(make_tenant, migrations_run):
    make_tenant("acme")
    _drop_template()  # the process still believes it exists
    globex = make_tenant("globex")
    assert globex.status == Tenant.Status.ACTIVE and _template_exists()
    assert tenant_db.applied_schema_version(globex) == tenant_db.latest_schema_version()


def test_a_template_that_cannot_be_built_falls_back_to_migrating(make_tenant, monkeypatch, migrations_run):
    _drop_template()
    tenant_db._forget_template("default")

    def broken(*args, **kwargs):
        raise RuntimeError("no space left for the template")

    monkeypatch.setattr(tenant_db, "_migrate_scratch", broken)
    acme = make_tenant("acme")
    assert acme.status == Tenant.Status.ACTIVE
    assert migrations_run["tenant"] >= 1  # migrated the slow way
    assert acme.schema_version == tenant_db.latest_schema_version()
    assert not _template_exists()
    if _postgres():  # the half-built copy is gone
        with tenant_db._maintenance_connection("default") as conn:
            left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s",
                                [tenant_db._escape_like(tenant_db.template_name()) + "%"]).fetchone()[0]
        assert left == 0


def test_templates_can_be_turned_off(make_tenant, settings, migrations_run):
    settings.TENANT_TEMPLATE_DATABASES = False
    acme = make_tenant("acme")
    assert migrations_run["template"] == 0 and migrations_run["tenant"] >= 1
    assert acme.schema_version == tenant_db.latest_schema_version()


def test_templates_of_other_schemas_are_pruned(make_tenant):
    from psycopg import sql

    make_tenant("acme")
    stale = tenant_db._template_prefix() + "0123456789ab"
    if _postgres():
        with tenant_db._maintenance_connection("default") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(stale)))
            conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(stale)))
    else:
        (tenant_db._template_dir() / "0123456789ab.sqlite3").write_bytes(b"")
    dropped = tenant_db.prune_templates("default")
    assert any("0123456789ab" in name for name in dropped)
    tenant_db._forget_template("default")
    assert _template_exists()  # the current one stays


@pytest.mark.postgres
def test_a_session_left_in_the_template_does_not_block_creation(make_tenant):
    import psycopg
    from psycopg import sql

    make_tenant("acme")
    name = tenant_db.template_name()
    with tenant_db._maintenance_connection("default") as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(name)))
    cfg = connections["default"].settings_dict
    stray = psycopg.connect(dbname=name, host=cfg["HOST"] or None, port=cfg["PORT"] or None,
                            user=cfg["USER"] or None, autocommit=True)
    try:
        globex = make_tenant("globex")
        assert globex.status == Tenant.Status.ACTIVE
        assert tenant_db.applied_schema_version(globex) == tenant_db.latest_schema_version()
    finally:
        stray.close()
        with tenant_db._maintenance_connection("default") as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
