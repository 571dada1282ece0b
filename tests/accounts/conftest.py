from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.conftest import login_verified


@pytest.fixture(autouse=True)
def _clear_lockout_counters(db):
    # Lockout counters live in the cache; a test never inherits another's failures.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin_user(staff_factory):
    return staff_factory("root@console.test", superuser=True, name="Root Admin")


@pytest.fixture
def admin_client(client, admin_user):
    return login_verified(client, admin_user)


@pytest.fixture
def admin(staff_factory, acme):
    return staff_factory("boss@console.test", tenants={acme: "admin"})


@pytest.fixture
def support(staff_factory, acme):
    return staff_factory("helper@console.test", tenants={acme: "support"})


@pytest.fixture
def viewer(staff_factory, acme):
    return staff_factory("looker@console.test", tenants={acme: "viewer"})
