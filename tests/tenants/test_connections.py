"""Tenant connections: a bounded alias registry, a few connections kept open per thread, and
django.contrib.postgres's type lookups done once (tenants/db.py)."""

from __future__ import annotations

import threading

import pytest
from django.core.signals import request_finished
from django.db import connections
from django.db.backends.signals import connection_created

from accounts.models import AppUser
from tenants import db as tenant_db
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_limits(settings):
    settings.TENANT_ALIASES_MAX = 8
    settings.TENANT_CONNECTIONS_PER_THREAD = 2
    yield settings
    # The aliases these tests made point at acme's database under other slugs: forget them.
    for alias in [a for a in dict.keys(connections.settings) if tenant_db.is_tenant_alias(a)]:
        tenant_db.drop_alias(Tenant(slug=alias.split(":", 1)[1]))


def _twins(tenant: Tenant, n: int) -> list[Tenant]:
    """``n`` tenants (not saved) on the same database as ``tenant``: aliases without the cost."""
    return [Tenant(slug=f"twin{i}", name=f"Twin {i}", db_name=tenant.db_name, db_server=tenant.db_server,
                   status=Tenant.Status.ACTIVE) for i in range(n)]


def _connects():
    seen = []

    def on_connect(sender, connection, **kwargs):
        if tenant_db.is_tenant_alias(connection.alias):
            seen.append(connection.alias)

    connection_created.connect(on_connect, weak=False)
    return seen, lambda: connection_created.disconnect(on_connect)


def _request_ends():
    request_finished.send(sender=None)


def test_the_registry_stays_bounded_and_evicted_aliases_still_work(acme, small_limits):
    AppUser.objects.using(tenant_db.using(acme)).create(email="ann@acme.test")
    first = tenant_db.using(acme)
    for twin in _twins(acme, 30):
        assert AppUser.objects.using(tenant_db.using(twin)).count() == 1
        _request_ends()
        assert tenant_db.registered_aliases() <= tenant_db.aliases_max() == 8
    assert first not in dict.keys(connections.settings)  # evicted long ago...
    # ...and an alias handed out earlier still works: it comes back by itself.
    assert AppUser.objects.using(first).filter(email="ann@acme.test").exists()


def test_what_django_walks_per_request_does_not_grow_with_the_tenants_seen(acme, small_limits):
    for twin in _twins(acme, 30):
        AppUser.objects.using(tenant_db.using(twin)).exists()
        _request_ends()
    walked = [alias for alias in connections if tenant_db.is_tenant_alias(alias)]
    assert len(walked) <= 2  # the connections this thread keeps, nothing else
    assert tenant_db.open_tenant_connections() <= 2


def test_a_hot_tenant_reuses_its_connection_and_cold_ones_are_closed(acme, small_limits):
    seen, stop = _connects()
    try:
        for _ in range(5):
            AppUser.objects.using(tenant_db.using(acme)).exists()
            _request_ends()
        assert len(seen) == 1  # one connect for five "requests"
        twins = _twins(acme, 4)
        for twin in twins:
            AppUser.objects.using(tenant_db.using(twin)).exists()
        _request_ends()
        assert tenant_db.open_tenant_connections() <= 2
    finally:
        stop()


def test_a_connection_in_a_transaction_is_never_closed_under_it(acme, small_limits):
    from django.db import transaction

    alias = tenant_db.using(acme)
    with transaction.atomic(using=alias):
        AppUser.objects.using(alias).create(email="kept@acme.test")
        for twin in _twins(acme, 6):
            tenant_db.using(twin)
            connections[tenant_db.using(twin)].ensure_connection()
        assert connections[alias].in_atomic_block and connections[alias].connection is not None
        AppUser.objects.using(alias).create(email="kept2@acme.test")
    assert AppUser.objects.using(alias).filter(email__startswith="kept").count() == 2


def test_each_thread_keeps_its_own_connections(acme, small_limits):
    errors = []

    def work():
        try:
            for twin in _twins(acme, 12):
                AppUser.objects.using(tenant_db.using(twin)).exists()
                _request_ends()
            assert tenant_db.open_tenant_connections() <= 2
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert tenant_db.registered_aliases() <= 8


def test_a_slug_that_points_at_another_database_gets_a_fresh_alias(make_tenant):
    acme = make_tenant("acme")
    alias = tenant_db.using(acme)
    other = Tenant(slug="acme", db_name="elsewhere", db_server="default", status=Tenant.Status.ACTIVE)
    assert tenant_db.using(other) == alias
    assert "elsewhere" in connections[alias].settings_dict["NAME"]
    tenant_db.drop_alias(other)
    assert AppUser.objects.using(tenant_db.using(acme)).count() == 0


@pytest.mark.postgres
def test_the_pg_type_lookups_run_once_not_per_alias(acme, small_limits, monkeypatch):
    """django.contrib.postgres memoises its hstore/citext lookups per alias, 128 at most."""
    from django.contrib.postgres import signals as pg_signals

    calls = []
    real = pg_signals.get_type_oids

    def counting(alias, type_name):
        calls.append(alias)
        return real(alias, type_name)

    monkeypatch.setattr(pg_signals, "get_type_oids", counting)
    tenant_db._type_oids.clear()
    for twin in _twins(acme, 140):
        connections[tenant_db.using(twin)].ensure_connection()
        _request_ends()
    assert len(calls) == 2  # hstore and citext, once for every tenant database of this server
