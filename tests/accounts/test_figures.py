"""Stored tenant figures (accounts/app_users/figures.py): counted by the job runner after each
audited change and by a sweep, read by the instance pages, which open no tenant database."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.app_users import figures
from accounts.app_users import services as svc
from accounts.models import AppUser
from tenants import db as tenant_db
from tenants.models import Tenant, TenantFigures

pytestmark = pytest.mark.django_db

REFRESH = figures.figures_refresh_task.module_path


def _refresh_tasks(tenant: Tenant) -> list[DBTaskResult]:
    return [t for t in DBTaskResult.objects.filter(task_path=REFRESH, status="READY")
            if t.args_kwargs["args"] == [str(tenant.pk)]]


def _tenant_connections():
    seen: list[str] = []

    def on_connect(sender, connection, **kwargs):
        if tenant_db.is_tenant_alias(connection.alias):
            seen.append(connection.alias)

    connection_created.connect(on_connect, weak=False)
    return seen, lambda: connection_created.disconnect(on_connect)


def _close_tenant_connections():
    for alias in [a for a in dict.keys(connections.settings) if tenant_db.is_tenant_alias(a)]:
        connections[alias].close()


def test_an_audited_change_queues_one_refresh_and_the_task_counts(acme, staff_factory):
    admin = staff_factory(superuser=True)
    figures.figures_refresh(acme)
    assert TenantFigures.objects.get(tenant=acme).users == 0
    DBTaskResult.objects.filter(task_path=REFRESH).delete()  # the creation's own
    user = svc.app_user_create(actor=admin, tenant=acme, email="ann@acme.test", name="Ann", password=None)
    svc.app_user_create(actor=admin, tenant=acme, email="bob@acme.test", name="Bob", password=None)
    row = TenantFigures.objects.get(tenant=acme)
    assert row.dirty_at is not None and row.users == 0  # not counted in the request
    tasks = _refresh_tasks(acme)
    assert len(tasks) == 1  # the second change found it dirty already
    assert tasks[0].run_after is not None and tasks[0].run_after > tasks[0].enqueued_at
    svc.app_user_ban(actor=admin, tenant=acme, user_id=user.pk, until=timezone.now() + dt.timedelta(days=1))
    assert len(_refresh_tasks(acme)) == 1

    assert figures.figures_refresh_task.call(str(acme.pk)) == "ok"  # what the worker runs
    row.refresh_from_db()
    assert (row.users, row.banned, row.dirty_at) == (2, 1, None)
    svc.app_user_create(actor=admin, tenant=acme, email="cy@acme.test", name="Cy", password=None)
    assert len(_refresh_tasks(acme)) == 2  # clean again: the next change queues a new one


def test_a_schema_migration_queues_no_refresh(acme):
    """``migrate --all`` audits every tenant it migrates; the figures stay as they are."""
    from tenants import services as tenant_services

    figures.figures_refresh(acme)
    DBTaskResult.objects.filter(task_path=REFRESH).delete()
    tenant_db.migrate_database(acme, target=[("accounts", "0009_appuser_name_role_keyset")])
    acme.schema_version = tenant_db.applied_schema_version(acme)
    acme.save(update_fields=["schema_version"])
    assert tenant_services.tenant_migrate(actor=None, tenant=acme)["to"] == tenant_db.latest_schema_version()
    assert TenantFigures.objects.get(tenant=acme).dirty_at is None
    assert _refresh_tasks(acme) == []


def test_figures_count_every_kind_of_user(acme):
    now = timezone.now()
    AppUser.objects.using(tenant_db.using(acme)).bulk_create([
        AppUser(email="a@x.test", last_sign_in_at=now - dt.timedelta(days=1), mfa_enabled=True),
        AppUser(email="b@x.test", last_sign_in_at=now - dt.timedelta(days=20)),
        AppUser(email="c@x.test", banned_until=now + dt.timedelta(hours=1)),
        AppUser(email="d@x.test", invited_at=now),
        AppUser(email="e@x.test", deleted_at=now),
    ])
    row = figures.figures_refresh(acme)
    assert (row.users, row.active_7, row.active_30, row.banned, row.invited, row.mfa) == (4, 1, 2, 1, 1, 1)
    shown = figures.stored(Tenant.objects.select_related("figures").get(pk=acme.pk))
    assert shown.total.display == "4" and shown.mfa_percent == 25.0 and not shown.error


def test_the_sweep_refreshes_missing_dirty_and_old_figures_only(make_tenant, settings):
    acme, globex, initech = make_tenant("acme"), make_tenant("globex"), make_tenant("initech")
    TenantFigures.objects.all().delete()
    assert figures.figures_sweep_run(limit=2) == 2  # bounded
    assert figures.figures_sweep_run() == 1
    assert figures.figures_sweep_run() == 0  # all fresh and clean
    TenantFigures.objects.filter(tenant=globex).update(dirty_at=timezone.now())
    TenantFigures.objects.filter(tenant=initech).update(
        refreshed_at=timezone.now() - figures.max_age() - dt.timedelta(seconds=1))
    assert {t.slug for t in figures.due()} == {"globex", "initech"}
    assert figures.figures_sweep.call() == 2
    assert not figures.due().exists() and acme


def test_a_tenant_whose_database_is_down_keeps_its_figures_with_an_error(acme, monkeypatch):
    figures.figures_refresh(acme)
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(figures, "user_count", down)
    row = figures.figures_refresh(acme)
    assert row.error == "database unreachable" and row.users == 0  # the last count is kept


def test_home_and_tenants_pages_open_no_tenant_database(make_tenant, staff_factory, as_staff, client):
    tenants = [make_tenant(f"t{i}") for i in range(4)]
    figures.figures_sweep_run()
    root = staff_factory(superuser=True)
    as_staff(root)
    _close_tenant_connections()
    seen, stop = _tenant_connections()
    try:
        with CaptureQueriesContext(connections["default"]) as few:
            assert client.get("/").status_code == 200
        assert client.get("/tenants/").status_code == 200
        for t in tenants[:2]:
            make_tenant(f"more{t.slug}")
        figures.figures_sweep_run()
        _close_tenant_connections()
        seen.clear()
        with CaptureQueriesContext(connections["default"]) as more:
            page = client.get("/").content.decode()
        tenants_page = client.get("/tenants/").content.decode()
    finally:
        stop()
    assert seen == []  # not one tenant connection for either page
    assert len(more.captured_queries) == len(few.captured_queries)  # flat in the number of tenants
    assert all(f'data-slug="{t.slug}"' in page for t in tenants)
    assert re.search(r'<tr data-slug="t0">.*?<td class="num"[^>]*>0</td>', tenants_page, re.S)


def test_home_and_tenants_pages_are_paginated_and_searchable(make_tenant, staff_factory, as_staff, client,
                                                             monkeypatch):
    from console.views import home, tenants

    monkeypatch.setattr(home, "HOME_PAGE_SIZE", 2)
    monkeypatch.setattr(tenants, "TENANTS_PAGE_SIZE", 2)
    for slug in ("alpha", "bravo", "charlie"):
        make_tenant(slug)
    member = staff_factory(tenants={Tenant.objects.get(slug=s): "viewer" for s in ("alpha", "bravo", "charlie")})
    as_staff(member)
    first = client.get("/").content.decode()
    assert 'data-tenant="alpha"' in first and 'data-tenant="bravo"' in first and 'data-tenant="charlie"' not in first
    assert "3 tenants" in first and 'rel="next" href="/?page=2"' in first
    second = client.get("/?page=2").content.decode()
    assert 'data-tenant="charlie"' in second and 'data-tenant="alpha"' not in second
    found = client.get("/?q=RAV").content.decode()
    assert 'data-tenant="bravo"' in found and 'data-tenant="alpha"' not in found and "1 tenant matching" in found
    assert client.get("/?page=99").status_code == 200  # out of range: the last page

    root = staff_factory(superuser=True)
    as_staff(root)
    listed = client.get("/tenants/?q=char").content.decode()
    assert 'data-slug="charlie"' in listed and 'data-slug="alpha"' not in listed
    assert 'data-slug="charlie"' in client.get("/tenants/?page=2").content.decode()
    assert client.get("/tenants/?page=x").status_code == 200


def test_switcher_searches_the_tenants_i_can_reach(make_tenant, staff_factory, as_staff, client):
    acme, globex = make_tenant("acme", "Acme Corp"), make_tenant("globex", "Globex")
    make_tenant("acmeish", "Acme Two")  # not assigned to the member
    member = staff_factory(tenants={acme: "support", globex: "viewer"})
    as_staff(member)
    page = client.get("/").content.decode()
    assert 'id="tenant-switch"' in page and "<option" not in page  # a search, not a list
    fragment = client.get("/switch/?q=acme", HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<ul class="switch-results" id="tenant-switch-results"')
    assert 'data-slug="acme"' in fragment and "acmeish" not in fragment and "support" in fragment
    assert "No tenant matches" in client.get("/switch/?q=zzz", HTTP_HX_REQUEST="true").content.decode()
    # Without JavaScript: an exact slug goes there, anything else is a page of matches.
    assert client.get("/switch/?q=globex")["Location"] == "/t/globex/users/"
    assert 'data-slug="globex"' in client.get("/switch/?q=glo").content.decode()
    assert client.get("/switch/?tenant=globex")["Location"] == "/t/globex/users/"
    assert client.get("/switch/?tenant=acmeish").status_code == 404
    assert client.get("/switch/?q=acmeish").status_code == 200  # listed nowhere, not a redirect
    assert 'data-slug="acmeish"' not in client.get("/switch/?q=acmeish").content.decode()


def test_the_workers_queue_one_sweep_at_a_time(db):
    from jobs.worker import schedule_figures_sweep

    assert schedule_figures_sweep() is True
    assert schedule_figures_sweep() is False
    assert DBTaskResult.objects.filter(task_path=figures.figures_sweep.module_path).count() == 1
