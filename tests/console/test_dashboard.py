"""The tenant dashboard ``/t/<slug>/`` and the per-tenant figures of the instance home."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connections
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.app_users import figures, stats
from accounts.models import AppSession, AppUser
from audit import services as audit
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db


def stat(html: str, name: str) -> str:
    match = re.search(rf'data-stat="{name}">.*?<span class="stat-value">(.*?)</span>', html, re.S)
    return match.group(1).strip()


@pytest.fixture
def acme(make_tenant):
    tenant = make_tenant("acme", "Acme")
    alias = tenant_db.using(tenant)
    now = timezone.now()
    make = AppUser.objects.using(alias).create
    make(email="recent@acme.test", last_sign_in_at=now - dt.timedelta(days=2), mfa_enabled=True,
         email_confirmed_at=now, created_at=now - dt.timedelta(days=3))
    make(email="month@acme.test", last_sign_in_at=now - dt.timedelta(days=20), email_confirmed_at=now,
         created_at=now - dt.timedelta(days=3))
    make(email="old@acme.test", last_sign_in_at=now - dt.timedelta(days=200), email_confirmed_at=now,
         created_at=now - dt.timedelta(days=300))
    make(email="banned@acme.test", banned_until=now + dt.timedelta(days=1), email_confirmed_at=now)
    make(email="was-banned@acme.test", banned_until=now - dt.timedelta(days=1), email_confirmed_at=now)
    make(email="invited@acme.test", invited_at=now)
    make(email="gone@acme.test", invited_at=now, deleted_at=now, last_sign_in_at=now, mfa_enabled=True)
    return tenant


def test_dashboard_shows_the_figures(client, acme, staff_factory, as_staff):
    as_staff(staff_factory(tenants={acme: "viewer"}))
    response = client.get("/t/acme/")
    assert response.status_code == 200
    html = response.content.decode()
    assert stat(html, "total") == "6"  # the deleted user does not count
    assert stat(html, "active_7") == "1"
    assert stat(html, "active_30") == "2"
    assert stat(html, "banned") == "1"
    assert stat(html, "pending") == "1"
    assert stat(html, "mfa") == "16.7%"  # 1 of 6


def test_chart_is_server_side_svg_with_signups_and_signins(client, acme, staff_factory, as_staff):
    user = AppUser.objects.using(tenant_db.using(acme)).get(email="recent@acme.test")
    now = timezone.now()
    for i, days_ago in enumerate((0, 0, 1)):
        AppSession.objects.using(tenant_db.using(acme)).create(
            user=user, token_hash=f"hash-{i}", expires_at=now,
            created_at=now - dt.timedelta(days=days_ago),
        )
    AppSession.objects.using(tenant_db.using(acme)).create(  # impersonation is not a sign-in
        user=user, token_hash="imp", expires_at=now, impersonator_id=user.pk,
    )
    as_staff(staff_factory(tenants={acme: "admin"}))
    html = client.get("/t/acme/").content.decode()
    svg = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S).group(0)
    assert len(re.findall(r'<rect class="chart-bar"', svg)) == 30
    assert '<polyline class="chart-line"' in svg
    assert "Sign-ups (6)" in html  # every user but the one created 300 days ago
    assert "Sign-ins (3)" in html
    assert "portal sessions created each day" in html
    # No inline script or style anywhere (CSP): SVG presentation attributes only.
    assert "<script>" not in html.replace('<script src=', '') and "style=" not in html and "<style" not in html
    html90 = client.get("/t/acme/?days=90").content.decode()
    assert len(re.findall(r'<rect class="chart-bar"', html90)) == 90
    assert client.get("/t/acme/?days=junk").status_code == 200


def test_sign_ins_come_from_the_audit_trail_when_the_portal_records_them(client, acme, staff_factory, as_staff):
    user = AppUser.objects.using(tenant_db.using(acme)).get(email="recent@acme.test")
    for _ in range(4):
        audit.record(event=stats.SIGN_IN_EVENT, actor=None, tenant=acme, target=user, action=audit.ACCESS)
    AppSession.objects.using(tenant_db.using(acme)).create(user=user, token_hash="s1", expires_at=timezone.now())
    as_staff(staff_factory(tenants={acme: "admin"}))
    html = client.get("/t/acme/").content.decode()
    assert "Sign-ins (4)" in html  # never added to the sessions: each sign-in counts once
    assert "sign-in events in the audit trail" in html


def test_recent_activity_is_shown_to_tenant_admins_only(client, acme, staff_factory, as_staff, make_tenant):
    globex = make_tenant("globex")
    user = AppUser.objects.using(tenant_db.using(acme)).get(email="banned@acme.test")
    admin = staff_factory("ada@console.test", tenants={acme: "admin"})
    audit.record(event="app_user.ban", actor=admin, tenant=acme, target=user)
    audit.record(event="app_user.secret_globex_thing", actor=admin, tenant=globex, target=user)
    as_staff(admin)
    html = client.get("/t/acme/").content.decode()
    activity = html.split('id="recent-activity"')[1]
    assert "app_user.ban" in activity and "ada@console.test" in activity
    assert "secret_globex_thing" not in html

    as_staff(staff_factory(tenants={acme: "support"}))
    html = client.get("/t/acme/").content.decode()
    assert "app_user.ban" not in html and "Only tenant admins see the audit trail." in html


def test_dashboard_queries_are_bounded(client, acme, staff_factory, as_staff):
    as_staff(staff_factory(tenants={acme: "admin"}))
    client.get("/t/acme/")  # warm the session and the caches
    AppUser.objects.using(tenant_db.using(acme)).bulk_create(
        [AppUser(email=f"bulk{i}@acme.test") for i in range(300)]
    )
    with CaptureQueriesContext(connections["default"]) as control:
        response = client.get("/t/acme/?days=90")
    assert response.status_code == 200
    assert len(control.captured_queries) <= 15


def test_other_tenant_is_404_and_unknown_too(client, acme, make_tenant, staff_factory, as_staff):
    make_tenant("globex")
    as_staff(staff_factory(tenants={acme: "viewer"}))
    assert client.get("/t/globex/").status_code == 404
    assert client.get("/t/nope/").status_code == 404


def test_counts_are_capped_then_estimated(acme):
    users = AppUser.objects.using(tenant_db.using(acme)).all()
    capped = stats.count(users, cap=3)
    assert capped.value is not None and capped.display in {"3+"} | ({f"≈ {capped.value}"} if capped.approximate else set())
    assert stats.count(users, cap=100).display == "7"
    assert stats.Figure(1_234_567, approximate=True).display == "≈ 1.2M"
    assert stats.Figure(None, error="database unreachable").display == "—"


def test_overview_for_gives_one_row_per_tenant(acme, make_tenant):
    globex = make_tenant("globex")
    from tenants.services import tenant_delete

    initech = make_tenant("initech")
    tenant_delete(actor=None, tenant=initech)
    initech.refresh_from_db()
    assert figures.figures_sweep_run() == 3  # the job runner counts them (none counted yet)
    rows = stats.overview_for([acme, {"slug": "globex", "role": "viewer"}, initech])
    assert [r.tenant.slug for r in rows] == ["acme", "globex", "initech"]
    assert rows[0].total.display == "6" and rows[0].banned.display == "1"
    assert rows[0].pending_invitations.display == "1" and rows[0].mfa_percent == 16.7
    assert rows[1].role == "viewer" and rows[1].total.display == "0"
    assert rows[2].error == "deleted"
    html = render_to_string("tenants/_overview_table.html", {"rows": rows})
    acme_row = re.search(r'<tr data-slug="acme">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="num">6</td>' in acme_row and "16.7%" in acme_row
    assert "deleted" in re.search(r'<tr data-slug="initech">(.*?)</tr>', html, re.S).group(1)
    assert globex  # created


def test_overview_survives_an_unreachable_database(acme, monkeypatch):
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("no route to host")

    monkeypatch.setattr(stats, "count", down)
    monkeypatch.setattr(stats, "_table_estimate", down)
    monkeypatch.setattr(figures, "count", down)
    figures.figures_refresh(acme)
    rows = stats.overview_for([acme])
    assert rows[0].error == "database unreachable"


@pytest.mark.postgres
def test_big_tables_are_estimated_by_the_planner_on_postgres(make_tenant, monkeypatch):
    import dataclasses

    from core.policy import policy

    tenant = make_tenant("bigco")
    AppUser.objects.using(tenant_db.using(tenant)).bulk_create(
        [AppUser(email=f"u{i}@big.test", mfa_enabled=i % 4 == 0) for i in range(400)]
    )
    with connections[tenant_db.using(tenant)].cursor() as cursor:
        cursor.execute("ANALYZE accounts_appuser")
    small = dataclasses.replace(policy(), exact_count_cap=50)
    monkeypatch.setattr(stats, "policy", lambda: small)
    total = stats.user_count(tenant)
    assert total.approximate and 300 <= total.value <= 500  # pg_class.reltuples, not COUNT(*)
    mfa = stats.count(AppUser.objects.using(tenant_db.using(tenant)).filter(mfa_enabled=True))
    assert mfa.approximate and 50 < mfa.value < 200  # EXPLAIN's row estimate
    assert stats.count(AppUser.objects.using(tenant_db.using(tenant)).filter(email="u1@big.test")).display == "1"
