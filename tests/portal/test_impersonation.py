"""Impersonation: who may start it, what it refuses, its 60 minutes, and its audit trail."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AppSession, AppUser
from accounts.tokens import hash_token
from audit.models import AuditEntry
from core.policy import policy
from portal.models import Impersonation
from portal.services.sessions import COOKIE_NAME
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_factory, tenant):
    return staff_factory("admin@console.test", tenants={tenant: "admin"})


@pytest.fixture
def admin_client(as_staff, admin):
    return as_staff(admin)


def start(client, tenant, user, reason="Reproduce ticket #42"):
    return client.post(f"/t/{tenant.slug}/impersonations/start/{user.pk}/", {"reason": reason})


def test_an_admin_opens_the_portal_as_the_user(admin_client, admin, tenant, app_user):
    response = start(admin_client, tenant, app_user)
    assert response.status_code == 302 and response["Location"] == f"/p/{tenant.slug}/account/"
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["path"] == f"/p/{tenant.slug}/" and cookie["httponly"]
    session = AppSession.objects.using(tenant_db.using(tenant)).get(token_hash=hash_token(cookie.value))
    assert session.impersonator_id == admin.pk and session.user_id == app_user.pk
    imp = Impersonation.objects.get()
    assert (imp.staff, imp.app_user_id, imp.reason) == (admin, app_user.pk, "Reproduce ticket #42")
    assert imp.session_id == session.pk
    assert imp.expires_at - imp.started_at == timedelta(minutes=policy().impersonation_minutes)
    assert session.expires_at - session.created_at == timedelta(minutes=60)
    page = admin_client.get(f"/p/{tenant.slug}/account/")
    assert page.status_code == 200
    assert b'id="impersonation-banner"' in page.content
    assert admin.email.encode() in page.content and b"Stop impersonating" in page.content
    # The user's own last sign-in is not touched by an impersonation.
    assert AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk).last_sign_in_at is None


def test_the_start_form_posts_with_csrf_a_reason_in_the_same_tab(tenant, app_user):
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    html = render_to_string("console/impersonation/_start_form.html",
                            {"tenant": tenant, "app_user": app_user}, request=request)
    assert f'action="/t/{tenant.slug}/impersonations/start/{app_user.pk}/"' in html
    assert 'method="post"' in html and 'target="_blank"' not in html  # a refusal or Stop stays in one tab
    assert 'name="csrfmiddlewaretoken"' in html and 'name="reason"' in html and "required" in html


def test_start_is_refused_without_a_reason(admin_client, tenant, app_user):
    assert start(admin_client, tenant, app_user, reason="").status_code == 400
    assert start(admin_client, tenant, app_user, reason="  ").status_code == 400
    assert not Impersonation.objects.exists()


def test_start_is_refused_by_get(admin_client, tenant, app_user):
    response = admin_client.get(f"/t/{tenant.slug}/impersonations/start/{app_user.pk}/?reason=why")
    assert response.status_code == 405
    assert not Impersonation.objects.exists()
    assert not AppSession.objects.using(tenant_db.using(tenant)).exists()


def test_start_is_refused_without_csrf(admin, tenant, app_user):
    from tests.conftest import login_verified

    client = login_verified(Client(enforce_csrf_checks=True), admin)
    response = start(client, tenant, app_user)
    assert response.status_code == 403
    assert not Impersonation.objects.exists()


def test_start_needs_a_recent_otp(as_staff, admin, tenant, app_user):
    client = as_staff(admin, otp_age_seconds=16 * 60)
    response = start(client, tenant, app_user)
    assert response.status_code == 302 and response["Location"].startswith("/account/reverify/")
    assert not Impersonation.objects.exists()


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_only_admins_impersonate(staff_factory, as_staff, tenant, app_user, role):
    client = as_staff(staff_factory(tenants={tenant: role}))
    assert start(client, tenant, app_user).status_code == 403
    assert client.get(f"/t/{tenant.slug}/impersonations/").status_code == 403
    assert not Impersonation.objects.exists()


def test_an_instance_admin_impersonates(staff_factory, as_staff, tenant, app_user):
    client = as_staff(staff_factory(superuser=True))
    assert start(client, tenant, app_user).status_code == 302


def test_other_tenants_and_unknown_users_answer_404(staff_factory, as_staff, make_tenant, tenant, app_user, admin_client):
    globex = make_tenant("globex")
    assert start(admin_client, globex, app_user).status_code == 404  # not assigned to globex
    other = staff_factory(tenants={globex: "admin"})
    client = as_staff(other)
    # globex's admin names acme's user through globex: no such user there.
    assert client.post(f"/t/globex/impersonations/start/{app_user.pk}/", {"reason": "x-ray"}).status_code == 404
    assert not Impersonation.objects.exists()


@pytest.mark.parametrize("state", ["banned", "deleted"])
def test_banned_and_deleted_users_cannot_be_impersonated(admin_client, tenant, app_user, state):
    field = {"banned": "banned_until", "deleted": "deleted_at"}[state]
    value = timezone.now() + timedelta(days=1) if state == "banned" else timezone.now()
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk).update(**{field: value})
    response = start(admin_client, tenant, app_user)
    assert response.status_code == 409
    assert state.capitalize().encode() in response.content
    assert COOKIE_NAME not in response.cookies
    assert not Impersonation.objects.exists()
    assert not AppSession.objects.using(tenant_db.using(tenant)).exists()


def test_a_second_impersonation_while_one_runs_is_refused(admin_client, tenant, app_user, app_user_factory):
    bob = app_user_factory(tenant, "bob@acme.test")
    assert start(admin_client, tenant, app_user).status_code == 302
    second = start(admin_client, tenant, bob)
    assert second.status_code == 409 and b"already impersonating" in second.content
    assert Impersonation.objects.count() == 1


def test_a_second_admin_can_impersonate_meanwhile(admin_client, staff_factory, as_staff, tenant, app_user):
    assert start(admin_client, tenant, app_user).status_code == 302
    other = as_staff(staff_factory(tenants={tenant: "admin"}))
    assert start(other, tenant, app_user).status_code == 302
    assert Impersonation.objects.filter(ended_at__isnull=True).count() == 2


def test_an_impersonation_ends_by_itself_after_sixty_minutes(admin_client, admin, tenant, app_user, app_user_factory):
    start(admin_client, tenant, app_user)
    assert admin_client.get(f"/p/{tenant.slug}/account/").status_code == 200
    almost = timezone.now() + timedelta(minutes=59)
    with mock.patch("django.utils.timezone.now", return_value=almost):
        assert admin_client.get(f"/p/{tenant.slug}/account/").status_code == 200
    later = timezone.now() + timedelta(minutes=60, seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        response = admin_client.get(f"/p/{tenant.slug}/account/")
        assert response.status_code == 302
        assert response["Location"] == f"/p/{tenant.slug}/login/?reason=impersonation_ended"
        imp = Impersonation.objects.get()
        assert imp.ended_at == imp.expires_at and imp.end_reason == "expired"
        expiry = AuditEntry.objects.get(event="impersonation.expire")
        assert expiry.impersonator == admin and expiry.additional_data["app_user"] == str(app_user.pk)
        # The admin may start again now that the first one is over.
        bob = app_user_factory(tenant, "bob@acme.test")
        assert start(admin_client, tenant, bob).status_code == 302


def test_expiry_is_written_down_by_the_console_list_too(admin_client, tenant, app_user):
    start(admin_client, tenant, app_user)
    later = timezone.now() + timedelta(minutes=61)
    with mock.patch("django.utils.timezone.now", return_value=later):
        page = admin_client.get(f"/t/{tenant.slug}/impersonations/")
    assert page.status_code == 200
    assert Impersonation.objects.get().end_reason == "expired"
    assert AuditEntry.objects.filter(event="impersonation.expire").count() == 1


def test_password_and_factor_changes_are_refused_while_impersonating(admin_client, admin, tenant, app_user):
    start(admin_client, tenant, app_user)
    new = "cobalt-lantern-orchard-5"
    response = admin_client.post(
        f"/p/{tenant.slug}/account/password/",
        {"current": "plum-kettle-harbour-42", "password1": new, "password2": new},
    )
    assert response.status_code == 400 and b"While impersonating" in response.content
    user = AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk)
    assert user.password_changed_at is None
    response = admin_client.post(f"/p/{tenant.slug}/account/mfa/")
    assert response.status_code == 302
    assert not user.factors.using(tenant_db.using(tenant)).exists()
    response = admin_client.post(f"/p/{tenant.slug}/account/sessions/global/end/")
    assert response.status_code == 302
    assert AppSession.objects.using(tenant_db.using(tenant)).filter(revoked_at__isnull=True).count() == 1
    refused = AuditEntry.objects.filter(event="impersonation.refused")
    # Issue 11, finding 7: the refused "end sessions" is audited like the other refusals.
    assert sorted(e.additional_data["attempted"] for e in refused) == [
        "factor_enrol", "password_change", "sessions_end_global"]
    assert all(e.actor == admin and e.impersonator == admin for e in refused)


def test_every_step_is_audited_with_both_identities(admin_client, admin, tenant, app_user):
    start(admin_client, tenant, app_user)
    imp = Impersonation.objects.get()
    admin_client.get(f"/p/{tenant.slug}/account/")
    admin_client.post(f"/p/{tenant.slug}/account/profile/", {"name": "Ann Changed"})
    response = admin_client.post(f"/p/{tenant.slug}/impersonation/stop/")
    assert response.status_code == 302 and response["Location"] == f"/t/{tenant.slug}/impersonations/"
    trail = AuditEntry.objects.filter(tenant=tenant, timestamp__gte=imp.started_at).exclude(
        event__startswith="tenant"
    )
    events = list(trail.order_by("timestamp", "id").values_list("event", flat=True))
    assert events[0] == "impersonation.start" and events[-1] == "impersonation.stop"
    assert "impersonation.page_view" in events and "app_user.profile_updated" in events
    for entry in trail:
        assert entry.actor == admin, entry.event
        assert entry.impersonator == admin, entry.event
        assert entry.additional_data["app_user"] == str(app_user.pk), entry.event
    started = AuditEntry.objects.get(event="impersonation.start")
    assert started.additional_data["reason"] == "Reproduce ticket #42"
    assert started.additional_data["impersonation"] == str(imp.pk)
    update = AuditEntry.objects.get(event="app_user.profile_updated")
    assert update.changes == {"name": ["Ann", "Ann Changed"]}
    imp.refresh_from_db()
    assert imp.end_reason == "stopped" and imp.ended_by == admin
    # The portal session is over.
    assert admin_client.get(f"/p/{tenant.slug}/account/").status_code == 302


def test_every_admin_sees_every_impersonation_and_can_end_one(admin_client, admin, staff_factory, as_staff, tenant, app_user):
    start(admin_client, tenant, app_user, reason="Check the billing page")
    other_admin = staff_factory("other@console.test", tenants={tenant: "admin"})
    other = Client()
    from tests.conftest import login_verified

    login_verified(other, other_admin)
    page = other.get(f"/t/{tenant.slug}/impersonations/")
    assert page.status_code == 200
    assert b"admin@console.test" in page.content and b"Check the billing page" in page.content
    imp = Impersonation.objects.get()
    assert other.get(f"/t/{tenant.slug}/impersonations/{imp.pk}/end/").status_code == 405
    response = other.post(f"/t/{tenant.slug}/impersonations/{imp.pk}/end/")
    assert response.status_code == 302
    imp.refresh_from_db()
    assert imp.end_reason == "ended_by_admin" and imp.ended_by == other_admin
    assert AppSession.objects.using(tenant_db.using(tenant)).get(pk=imp.session_id).revoked_at is not None
    # The impersonator's portal tab is refused on its next request.
    response = admin_client.get(f"/p/{tenant.slug}/account/")
    assert response["Location"] == f"/p/{tenant.slug}/login/?reason=impersonation_ended"
    ended = AuditEntry.objects.get(event="impersonation.end")
    assert ended.actor == other_admin and ended.impersonator == admin


def test_an_impersonation_of_another_tenant_is_404(admin_client, tenant, app_user, make_tenant, staff_factory, as_staff):
    start(admin_client, tenant, app_user)
    imp = Impersonation.objects.get()
    globex = make_tenant("globex")
    client = as_staff(staff_factory(tenants={globex: "admin"}))
    assert client.post(f"/t/globex/impersonations/{imp.pk}/end/").status_code == 404
    assert Impersonation.objects.get().ended_at is None


def test_console_sign_out_of_the_user_ends_the_impersonation_on_the_next_request(admin_client, tenant, app_user):
    start(admin_client, tenant, app_user)
    AppSession.objects.using(tenant_db.using(tenant)).update(revoked_at=timezone.now())
    response = admin_client.get(f"/p/{tenant.slug}/account/")
    assert "reason=impersonation_ended" in response["Location"]
    assert Impersonation.objects.get().end_reason == "session_ended"


@pytest.mark.parametrize("change", ["deactivated", "demoted"])
def test_an_impersonator_who_loses_the_right_is_refused_on_the_next_request(admin_client, admin, tenant, app_user, change):
    from tenants.models import TenantAdmin

    start(admin_client, tenant, app_user)
    if change == "deactivated":
        type(admin).objects.filter(pk=admin.pk).update(is_active=False)
    else:
        TenantAdmin.objects.filter(user=admin, tenant=tenant).update(role="support")
    response = admin_client.get(f"/p/{tenant.slug}/account/")
    assert response.status_code == 302 and "reason=impersonation_ended" in response["Location"]
    imp = Impersonation.objects.get()
    assert imp.end_reason == "session_ended"
    assert AppSession.objects.using(tenant_db.using(tenant)).get(pk=imp.session_id).revoked_at is not None


def test_the_gate_checks_the_impersonations_own_expiry(admin_client, admin, tenant, app_user):
    """Issue 11, finding 7: the gate relied on the session row's expiry alone. An impersonation
    past its ``expires_at`` is over even while its session row would still be valid."""
    start(admin_client, tenant, app_user)
    imp = Impersonation.objects.get()
    assert admin_client.get(f"/p/{tenant.slug}/account/").status_code == 200
    Impersonation.objects.filter(pk=imp.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    session = AppSession.objects.using(tenant_db.using(tenant)).get(pk=imp.session_id)
    assert session.revoked_at is None and session.expires_at > timezone.now()
    response = admin_client.get(f"/p/{tenant.slug}/account/")
    assert response["Location"] == f"/p/{tenant.slug}/login/?reason=impersonation_ended"
    session.refresh_from_db()
    assert session.revoked_at is not None
    imp.refresh_from_db()
    assert imp.end_reason == "expired"
    assert AuditEntry.objects.filter(event="impersonation.expire").count() == 1
    # An impersonation session whose record is gone is not served either.
    start(admin_client, tenant, app_user)
    Impersonation.objects.filter(ended_at__isnull=True).delete()
    assert admin_client.get(f"/p/{tenant.slug}/account/").status_code == 302
