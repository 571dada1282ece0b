from __future__ import annotations

import shutil

import pytest
from django.conf import settings
from django.db import connections

from tenants import db as tenant_db


def _allow_tenant_aliases() -> None:
    """Let tests reach tenant databases registered at run time.

    Django's test cases refuse connections to aliases a test did not declare; tenant aliases are
    created while the test runs, so they cannot be declared. They live outside the test
    transaction by design: the fixtures below create and drop tenant databases themselves.
    """
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.test import testcases

    original = testcases.SimpleTestCase.ensure_connection_patch_method.__func__

    def ensure_connection_patch_method(cls):
        guarded = original(cls)
        real = BaseDatabaseWrapper.ensure_connection

        def ensure_connection(self, *args, **kwargs):
            if tenant_db.is_tenant_alias(self.alias):
                return real(self, *args, **kwargs)
            return guarded(self, *args, **kwargs)

        return ensure_connection

    testcases.SimpleTestCase.ensure_connection_patch_method = classmethod(ensure_connection_patch_method)


_allow_tenant_aliases()


def _flush_with_cascade() -> None:
    """Let transactional tests empty the control database on PostgreSQL.

    django-auditlog's own migrations create ``auditlog_logentry`` although its model is swapped
    for ``audit.AuditEntry``; ``flush`` does not list that table, and PostgreSQL refuses to
    TRUNCATE ``accounts_user``, which it references. CASCADE empties it too (it is never used).
    """
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self, **options):
        options["allow_cascade"] = True
        return original(self, **options)

    flush.Command.handle = handle


_flush_with_cascade()


def is_postgres() -> bool:
    return connections["default"].vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests run in the PostgreSQL pass; `make test` says when that pass was skipped."""
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("postgres") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _drop_test_tenant_databases() -> None:
    prefix = settings.TENANT_DB_PREFIX
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        from psycopg import sql

        with tenant_db._maintenance_connection("default") as conn:
            rows = conn.execute(
                "SELECT datname, datistemplate FROM pg_database WHERE datname LIKE %s",
                # "_" is a LIKE wildcard: unescaped, test_apt_ab_% would drop test_apt_abc_*.
                [prefix.replace("_", "\\_") + "%"],
            ).fetchall()
            for name, is_template in rows:
                if is_template:  # the tenant templates (tenants.db): PostgreSQL keeps those
                    conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    else:
        shutil.rmtree(settings.TENANT_SQLITE_DIR, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _tenant_databases_cleanup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        _drop_test_tenant_databases()
    yield
    for alias in [a for a in connections.settings if tenant_db.is_tenant_alias(a)]:
        connections[alias].close()
    with django_db_blocker.unblock():
        _drop_test_tenant_databases()


@pytest.fixture
def make_tenant(db):
    """Create tenants through the real service (database created and migrated); dropped after."""
    from tenants.services import tenant_create

    created = []

    def make(slug: str = "acme", name: str | None = None, **kwargs):
        tenant = tenant_create(actor=None, slug=slug, name=name or slug.title(), **kwargs)
        created.append(tenant)
        return tenant

    yield make
    for tenant in created:
        tenant_db.drop_database(tenant)


@pytest.fixture
def tenant_connects():
    """The tenant aliases that open a database connection while the test runs, in order."""
    from django.db.backends.signals import connection_created

    opened: list[str] = []

    def on_connect(sender, connection, **kwargs):
        if tenant_db.is_tenant_alias(connection.alias):
            opened.append(connection.alias)

    connection_created.connect(on_connect, weak=False)
    yield opened
    connection_created.disconnect(on_connect)


# --- Staff -----------------------------------------------------------------------------------

STAFF_PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def staff_factory(db, django_user_model):
    """``staff_factory("ann@x.test", superuser=False, tenants={tenant: "support"})``."""
    from tenants.models import TenantAdmin

    counter = iter(range(1, 10_000))

    def make(email: str | None = None, *, superuser: bool = False, name: str = "",
             password: str = STAFF_PASSWORD, tenants: dict | None = None):
        email = email or f"staff{next(counter)}@console.test"
        create = django_user_model.objects.create_superuser if superuser else django_user_model.objects.create_user
        user = create(email, password, name=name or email.split("@")[0].title())
        for tenant, role in (tenants or {}).items():
            TenantAdmin.objects.create(user=user, tenant=tenant, role=role)
        return user

    return make


def login_verified(client, user, *, otp_age_seconds: int = 0):
    """Sign ``user`` in with a confirmed TOTP device, as if both steps had passed."""
    import time

    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from console.staff_session import OTP_VERIFIED_AT

    client.force_login(user, backend="accounts.backends.StaffBackend")
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="Authenticator", confirmed=True
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[OTP_VERIFIED_AT] = int(time.time()) - otp_age_seconds
    session.save()
    return client


@pytest.fixture
def as_staff(client):
    """``as_staff(user)`` → a test client signed in with password and TOTP."""

    def sign_in(user, **kwargs):
        return login_verified(client, user, **kwargs)

    return sign_in


@pytest.fixture
def acme(make_tenant):
    """A real tenant ``acme`` (many modules act in it)."""
    return make_tenant("acme")


@pytest.fixture
def globex(make_tenant):
    """A second tenant, to prove the first one's actions never reach it."""
    return make_tenant("globex")
