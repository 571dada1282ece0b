from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from accounts.models import AppUser
from audit.models import AuditEntry
from core.errors import Invalid, Refused
from tenants import db as tenant_db
from tenants import services
from tenants.models import Tenant
from tenants.router import TenantAliasRequired

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("tenants", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_two_tenants_get_two_databases_and_do_not_share_users(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    assert acme.db_name != globex.db_name
    assert tenant_db.database_exists(acme) and tenant_db.database_exists(globex)
    AppUser.objects.using(tenant_db.using(acme)).create(email="ann@acme.test", name="Ann")
    assert AppUser.objects.using(tenant_db.using(acme)).filter(email="ann@acme.test").exists()
    assert not AppUser.objects.using(tenant_db.using(globex)).filter(email="ann@acme.test").exists()
    assert AppUser.objects.using(tenant_db.using(globex)).count() == 0
    # The two aliases really point at two different databases.
    assert connections[tenant_db.using(acme)].settings_dict["NAME"] != connections[tenant_db.using(globex)].settings_dict["NAME"]


def test_tenant_model_without_alias_fails_loudly(make_tenant):
    make_tenant("acme")
    with pytest.raises(TenantAliasRequired, match="using"):
        AppUser.objects.count()
    with pytest.raises(TenantAliasRequired):
        AppUser.objects.create(email="x@example.test")
    # And the table does not exist in the control database at all.
    tables = connections["default"].introspection.table_names()
    assert "accounts_appuser" not in tables
    assert "tenants_tenant" in tables


def test_rows_fetched_from_a_tenant_save_back_to_that_tenant(make_tenant):
    acme = make_tenant("acme")
    user = AppUser.objects.using(tenant_db.using(acme)).create(email="a@acme.test")
    user.name = "Changed"
    user.save()  # no alias given: the instance remembers its database
    assert AppUser.objects.using(tenant_db.using(acme)).get(pk=user.pk).name == "Changed"


def test_create_via_command_then_list_shows_it_active():
    out = run("create", "acme", "--name", "Acme")
    assert "'acme' is active" in out
    tenant = Tenant.objects.get(slug="acme")
    try:
        listing = json.loads(run("list", "--json"))
        row = next(r for r in listing if r["slug"] == "acme")
        assert row["status"] == "active"
        assert row["database"] == tenant.db_name
        assert row["schema"] == "current"
        assert tenant_db.database_exists(tenant)
        text = run("list")
        assert "acme" in text and "active" in text and tenant.db_name in text
    finally:
        tenant_db.drop_database(tenant)


def test_delete_and_restore_keep_the_data_purge_drops_the_database(make_tenant):
    acme = make_tenant("acme")
    AppUser.objects.using(tenant_db.using(acme)).create(email="keep@acme.test")
    run("delete", "acme")
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.DELETED
    assert tenant_db.database_exists(acme)
    with pytest.raises(tenant_db.TenantDatabaseError):
        tenant_db.using(acme)  # access is off while deleted
    run("restore", "acme")
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.ACTIVE
    assert AppUser.objects.using(tenant_db.using(acme)).filter(email="keep@acme.test").exists()

    with pytest.raises(CommandError, match="Delete tenant 'acme' before purging"):
        run("purge", "acme", "--yes")
    assert tenant_db.database_exists(acme)
    run("delete", "acme")
    run("purge", "acme", "--yes")
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.PURGED
    assert not tenant_db.database_exists(acme)
    events = list(
        AuditEntry.objects.filter(tenant=acme).order_by("timestamp", "id").values_list("event", flat=True)
    )
    assert events == [
        "tenant.create", "tenant.provisioned", "tenant.delete", "tenant.restore",
        "tenant.delete", "tenant.purge",
    ]


def test_purge_needs_the_slug_typed(make_tenant):
    acme = make_tenant("acme")
    services.tenant_delete(actor=None, tenant=acme)
    with pytest.raises(Invalid, match="Type the tenant's slug") as refused:
        services.tenant_purge(actor=None, tenant=acme, confirm_slug="acm")
    assert refused.value.code == "confirm_mismatch" and refused.value.field == "confirm_slug"
    assert tenant_db.database_exists(acme)


def test_suspend_and_resume_are_idempotent_and_audited(make_tenant):
    acme = make_tenant("acme")
    run("suspend", "acme")
    run("suspend", "acme")
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.SUSPENDED and acme.suspended_at is not None
    run("resume", "acme")
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.ACTIVE
    entry = AuditEntry.objects.get(tenant=acme, event="tenant.suspend")
    assert entry.changes["status"] == ["active", "suspended"]
    assert AuditEntry.objects.filter(tenant=acme, event="tenant.suspend").count() == 1


def test_migrate_all_brings_an_older_tenant_to_the_latest(make_tenant):
    acme = make_tenant("acme")
    # Roll acme back to its first migration, as if it had been created by an older release.
    tenant_db.migrate_database(acme, target=[("accounts", "0001_initial")])
    acme.schema_version = tenant_db.applied_schema_version(acme)
    acme.save(update_fields=["schema_version"])
    assert acme.schema_version == {"accounts": "0001_initial"}
    assert tenant_db.is_behind(acme)
    assert json.loads(run("list", "--json"))[0]["schema"] == "behind"

    out = run("migrate", "--all")
    assert "acme: migrated" in out
    acme.refresh_from_db()
    assert acme.schema_version == tenant_db.latest_schema_version()
    assert not tenant_db.is_behind(acme)
    assert "acme: already current" in run("migrate", "acme")
    entry = AuditEntry.objects.filter(tenant=acme, event="tenant.migrate").order_by("timestamp", "id").first()
    assert entry.additional_data["from"] == {"accounts": "0001_initial"}


@pytest.mark.postgres
def test_migrate_adds_the_trigram_indexes_on_postgres(make_tenant):
    acme = make_tenant("acme")
    tenant_db.migrate_database(acme, target=[("accounts", "0001_initial")])
    with connections[tenant_db.using(acme)].cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'accounts_appuser'")
        assert "appuser_email_trgm" not in {r[0] for r in cur.fetchall()}
    run("migrate", "acme")
    with connections[tenant_db.using(acme)].cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'accounts_appuser'")
        defs = dict(cur.fetchall())
    assert "gin_trgm_ops" in defs["appuser_email_trgm"] and "upper" in defs["appuser_email_trgm"]
    assert "gin_trgm_ops" in defs["appuser_name_trgm"]


def test_a_crash_after_the_record_is_finished_by_running_the_command_again(monkeypatch):
    real_create = tenant_db.create_database

    def crash(tenant):  # the process dies between "record written" and "database created"
        raise KeyboardInterrupt

    monkeypatch.setattr(tenant_db, "create_database", crash)
    with pytest.raises(KeyboardInterrupt):
        run("create", "acme", "--name", "Acme")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.status == Tenant.Status.PROVISIONING
    assert not tenant_db.database_exists(tenant)

    monkeypatch.setattr(tenant_db, "create_database", real_create)
    try:
        assert "'acme' is active" in run("create", "acme", "--name", "Acme")
        tenant.refresh_from_db()
        assert tenant.status == Tenant.Status.ACTIVE
        assert tenant.schema_version == tenant_db.latest_schema_version()
        AppUser.objects.using(tenant_db.using(tenant)).create(email="works@acme.test")
    finally:
        tenant_db.drop_database(tenant)


def test_a_failed_migration_is_reported_and_retried(monkeypatch):
    real_migrate = tenant_db.migrate_database

    def broken(tenant, **kwargs):  # the database exists, migrating it fails
        raise tenant_db.TenantDatabaseError("disk full")

    monkeypatch.setattr(tenant_db, "migrate_database", broken)
    with pytest.raises(CommandError, match="disk full.*Run the same command again"):
        run("create", "acme", "--name", "Acme")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.status == Tenant.Status.FAILED and "disk full" in tenant.last_error
    assert tenant_db.database_exists(tenant)
    assert AuditEntry.objects.filter(tenant=tenant, event="tenant.create_failed").exists()

    monkeypatch.setattr(tenant_db, "migrate_database", real_migrate)
    try:
        run("create", "acme", "--name", "Acme")
        tenant.refresh_from_db()
        assert tenant.status == Tenant.Status.ACTIVE and tenant.last_error == ""
    finally:
        tenant_db.drop_database(tenant)


def test_default_tenant_is_created_on_first_migrate_and_refuses_delete(settings):
    settings.TENANTS_CREATE_DEFAULT_ON_MIGRATE = True
    assert not Tenant.objects.filter(is_default=True).exists()
    call_command("migrate", verbosity=0, interactive=False)
    tenant = Tenant.objects.get(is_default=True)
    try:
        assert tenant.slug == "default" and tenant.status == Tenant.Status.ACTIVE
        assert tenant_db.database_exists(tenant)
        call_command("migrate", verbosity=0, interactive=False)  # idempotent
        assert Tenant.objects.filter(is_default=True).count() == 1
        with pytest.raises(CommandError, match="default tenant cannot be deleted"):
            run("delete", "default")
        tenant.refresh_from_db()
        assert tenant.status == Tenant.Status.ACTIVE
    finally:
        tenant_db.drop_database(tenant)


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("../x", "only lower-case letters"),
        ("A B", "only lower-case letters"),
        ("a" * 200, "at most 40 characters"),
        ("acme-", "starts and ends"),
        ("", "Enter a slug"),
        ("admin", "reserved"),
    ],
)
def test_bad_slugs_are_refused_and_nothing_is_created(slug, message, settings):
    with pytest.raises(CommandError, match=message):
        run("create", slug, "--name", "X")
    assert not Tenant.objects.exists()
    assert not any(settings.TENANT_SQLITE_DIR.glob("*.sqlite3")) if settings.TENANT_SQLITE_DIR.exists() else True


def test_an_existing_slug_is_refused(make_tenant):
    acme = make_tenant("acme")
    with pytest.raises(CommandError, match="already exists"):
        run("create", "acme", "--name", "Another")
    assert Tenant.objects.filter(slug="acme").count() == 1
    acme.refresh_from_db()
    assert acme.name == "Acme"


def test_bad_metadata_and_names_are_refused():
    with pytest.raises(CommandError, match="not valid JSON"):
        run("create", "acme", "--name", "Acme", "--metadata", "{nope")
    with pytest.raises(CommandError, match="at most 200"):
        run("create", "acme", "--name", "x" * 201)
    with pytest.raises(CommandError, match="text-direction"):
        run("create", "acme", "--name", "Evil\u202eemoc")
    assert not Tenant.objects.exists()


def test_only_instance_admins_manage_tenants(make_tenant, django_user_model):
    staff = django_user_model.objects.create_user("s@example.test", "x" * 12)
    with pytest.raises(Refused) as refused:
        services.tenant_create(actor=staff, slug="acme", name="Acme")
    assert refused.value.code == "forbidden"
    assert not Tenant.objects.exists()
    root = django_user_model.objects.create_superuser("r@example.test", "x" * 12)
    acme = make_tenant("acme")
    with pytest.raises(Refused):
        services.tenant_suspend(actor=staff, tenant=acme)
    services.tenant_suspend(actor=root, tenant=acme)
    entry = AuditEntry.objects.get(event="tenant.suspend")
    assert entry.actor == root


def test_lifecycle_commands_name_unknown_tenants_clearly():
    with pytest.raises(CommandError, match="No tenant with the slug 'nope'"):
        run("suspend", "nope")
    with pytest.raises(CommandError, match="Give one tenant slug, or --all"):
        run("migrate")


def test_looking_at_a_tenant_still_provisioning_never_creates_its_database():
    from django.db.utils import OperationalError

    tenant = services.tenant_register(actor=None, slug="acme", name="Acme")
    assert tenant.status == Tenant.Status.PROVISIONING
    alias = tenant_db.ensure_alias(tenant)
    with pytest.raises(OperationalError):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
    connections[alias].close()
    assert not tenant_db.database_exists(tenant)
    try:
        run("retry", "acme")
        tenant.refresh_from_db()
        assert tenant.status == Tenant.Status.ACTIVE and tenant_db.database_exists(tenant)
    finally:
        tenant_db.drop_database(tenant)
