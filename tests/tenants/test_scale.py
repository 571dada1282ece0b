"""Fleet operations and connection planning (issue 16): capacity plan and start-up checks,
placement by count, ``migrate --all`` skipping current tenants with a pool per server, and a
tenant whose server is down answering 503."""

from __future__ import annotations

import json
import socket
from io import StringIO

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from core.errors import Conflict
from tenants import capacity, services
from tenants import db as tenant_db
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenants", *args, stdout=out, stderr=out)
    return out.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_server_keys_are_validated(settings):
    assert "tenants.E011" not in _ids(run_checks())
    settings.TENANT_DEFAULT_SERVER = "eu1"
    assert "tenants.E011" in _ids(run_checks())
    settings.TENANT_DEFAULT_SERVER = "default"
    settings.TENANT_DATABASE_SERVERS = {"eu1": "mysql://u@db/x"}
    problems = capacity.server_key_errors()
    assert problems and "eu1" in problems[0] and "same engine" in problems[0]


def test_capacity_multiplies_workers_threads_and_connections(settings):
    settings.APP_SERVERS, settings.WEB_WORKERS, settings.WEB_THREADS = 2, 3, 4
    settings.JOB_WORKERS, settings.MAIL_WORKERS, settings.TENANT_CONNECTIONS_PER_THREAD = 2, 1, 3
    t = capacity.threads()
    assert (t.web, t.total) == (24, 27)
    # every thread: up to 3 tenant connections; the control server: + 1 each, + 1 per job heartbeat
    assert capacity.planned_connections("default") == 27 * 3 + 27 + 2
    assert capacity.planned_connections("eu1") == 27 * 3


def test_capacity_command_prints_the_plan():
    out = run("capacity")
    assert "4 web (APP_SERVERS x WEB_WORKERS x WEB_THREADS) + 1 job worker(s) + 1 mail worker(s) = 6;" in out
    if connections["default"].vendor == "sqlite":
        assert "SQLite: no database server to plan." in out
    else:
        assert "default: planned 31 of " in out and ": fits" in out


@pytest.mark.postgres
def test_capacity_against_max_connections_and_the_start_up_check(settings):
    data = json.loads(run("capacity", "--json"))
    server = data["servers"][0]
    assert server["server"] == "default" and server["fits"] is True
    assert server["max_connections"] > server["available"] >= server["planned"] == 31
    assert not {"tenants.E010", "tenants.W010"} & _ids(run_checks(databases=["default"]))

    settings.WEB_WORKERS = 1000
    with pytest.raises(CommandError, match="exceed"):
        run("capacity")
    errors = [m for m in run_checks(databases=["default"]) if m.id == "tenants.E010"]
    assert errors and "max_connections" in errors[0].msg and "PgBouncer" in errors[0].hint
    assert "tenants.E010" not in _ids(run_checks())  # only with the database checks (migrate)
    settings.DATABASE_POOLER = "transaction"  # behind PgBouncer: the pooler's pool is the cap
    assert "tenants.E010" not in _ids(run_checks(databases=["default"]))
    assert "client connections" in run("capacity")


@pytest.mark.postgres
def test_a_server_that_is_down_is_reported_not_raised(settings):
    settings.TENANT_DATABASE_SERVERS = {"down": f"postgres://postgres@127.0.0.1:{_closed_port()}/x"}
    Tenant.objects.create(slug="lost", name="Lost", db_server="gone", db_name="lost_db",
                          status=Tenant.Status.ACTIVE)
    found = {m.id: m for m in run_checks(databases=["default"])}
    assert "tenants.W010" in found and "'down'" in found["tenants.W010"].msg
    assert "tenants.E012" in found and "'gone'" in found["tenants.E012"].msg
    assert "down: planned" in run("capacity") and "did not answer" in run("capacity")


@pytest.mark.postgres
def test_a_tenant_on_a_server_that_is_down_answers_503(settings, client, staff_factory, as_staff):
    settings.TENANT_DATABASE_SERVERS = {"down": f"postgres://postgres@127.0.0.1:{_closed_port()}/x"}
    Tenant.objects.create(slug="downco", name="Down Co", db_server="down", db_name="downco_db",
                          status=Tenant.Status.ACTIVE)
    as_staff(staff_factory(superuser=True))
    try:
        response = client.get("/t/downco/users/")
        assert response.status_code == 503 and response["Retry-After"] == "30"
        page = response.content.decode()
        assert "Temporarily unavailable" in page and "downco" in page and "server &#x27;down&#x27;" in page and "Error 503" in page
        portal = client.post("/p/downco/login/", {"email": "a@b.test", "password": "x" * 12})
        assert portal.status_code == 503
        assert client.get("/").status_code == 200  # the rest of the console is unaffected
        assert client.get("/tenants/").status_code == 200
    finally:
        tenant_db.drop_alias(Tenant(slug="downco"))


def test_new_tenants_go_to_the_server_with_the_fewest_up_to_a_maximum(settings, make_tenant):
    # Placement only counts records: three servers known, tenants recorded on two of them.
    for i, server in enumerate(["default", "default", "eu1"]):
        Tenant.objects.create(slug=f"rec{i}", name="R", db_server=server, db_name=f"rec{i}_db",
                              status=Tenant.Status.ACTIVE)
    Tenant.objects.create(slug="gone1", name="G", db_server="eu1", db_name="gone1_db",
                          status=Tenant.Status.PURGED)
    from unittest import mock

    with mock.patch.object(tenant_db, "server_keys", return_value=["default", "eu1", "us1"]):
        assert services.place_tenant() == "us1"  # none there
        Tenant.objects.create(slug="rec9", name="R", db_server="us1", db_name="rec9_db")
        assert services.place_tenant() == "eu1"  # 1 (the purged one does not count) vs 2 and 1: first
        settings.TENANT_MAX_PER_SERVER = 1
        with pytest.raises(Conflict) as full:
            services.place_tenant()
        assert full.value.code == "servers_full"
        settings.TENANT_MAX_PER_SERVER = 3
        assert services.place_tenant() == "eu1"
        settings.TENANT_PLACEMENT = "default"
        assert services.place_tenant() == "default"
    settings.TENANT_MAX_PER_SERVER = 0
    settings.TENANT_PLACEMENT = "count"
    assert make_tenant("placed").db_server == "default"


def test_migrate_all_skips_tenants_recorded_as_current(make_tenant, settings, tenant_connects):
    settings.TENANT_MIGRATE_CONCURRENCY = 1  # pool threads would not see this test's transaction
    acme, globex = make_tenant("acme"), make_tenant("globex")
    services.tenant_delete(actor=None, tenant=make_tenant("initech"))  # deleted: its data is kept
    tenant_db.migrate_database(acme, target=[("accounts", "0001_initial")])
    acme.schema_version = tenant_db.applied_schema_version(acme)
    acme.save(update_fields=["schema_version"])
    for t in (acme, globex):
        tenant_db.close_connection(t)
    tenant_connects.clear()
    out = run("migrate", "--all")
    assert "acme: migrated" in out and "globex: already current" in out and "initech: already current" in out
    assert set(tenant_connects) == {tenant_db.using(acme)}  # neither globex's database nor initech's was opened
    assert "globex: already current" in run("migrate", "--all", "--recheck")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the pool's threads see only what is committed
def test_migrate_all_runs_a_pool_per_server(make_tenant, settings):
    settings.TENANT_MIGRATE_CONCURRENCY = 3
    tenants = [make_tenant(f"pool{i}") for i in range(4)]
    for t in tenants:
        tenant_db.migrate_database(t, target=[("accounts", "0001_initial")])
        t.schema_version = tenant_db.applied_schema_version(t)
        t.save(update_fields=["schema_version"])
    import threading

    seen: set[str] = set()
    real = tenant_db.migrate_database

    def spy(tenant, **kwargs):
        seen.add(threading.current_thread().name)
        return real(tenant, **kwargs)

    from unittest import mock

    with mock.patch.object(tenant_db, "migrate_database", spy):
        outcomes = services.tenant_migrate_all(actor=None)
    assert [o.tenant.slug for o in outcomes if o.tenant.slug.startswith("pool")] == [t.slug for t in tenants]
    assert all(o.ok for o in outcomes)
    assert len(seen) > 1 and all(name.startswith("migrate-default") for name in seen)
    for t in tenants:
        t.refresh_from_db()
        assert not tenant_db.is_behind(t)
