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
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]
                ).fetchall()
            ]
            for name in names:
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
