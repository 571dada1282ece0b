"""Portal sessions: checked on every request, refused on the very next one once they must be."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import AppSession, AppUser
from accounts.tokens import hash_token
from portal.services.sessions import COOKIE_NAME, SESSION_LIFETIME
from tenants import db as tenant_db
from tenants.services import tenant_resume, tenant_suspend
from tests.portal.conftest import portal_sign_in

pytestmark = pytest.mark.django_db


def signed_in(client, tenant, **kwargs):
    response = portal_sign_in(client, tenant, **kwargs)
    assert response.status_code == 302, response.content
    assert response["Location"] == f"/p/{tenant.slug}/account/"
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 200
    return AppSession.objects.using(tenant_db.using(tenant)).get(token_hash=hash_token(client.cookies[COOKIE_NAME].value))


def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_tenant(client, tenant, app_user):
    response = portal_sign_in(client, tenant)
    cookie = response.cookies[COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == f"/p/{tenant.slug}/"
    # Only the hash is stored.
    raw = cookie.value
    assert AppSession.objects.using(tenant_db.using(tenant)).filter(token_hash=hash_token(raw)).exists()
    assert not AppSession.objects.using(tenant_db.using(tenant)).filter(token_hash=raw).exists()


def test_account_needs_a_session(client, tenant):
    response = client.get(f"/p/{tenant.slug}/account/")
    assert response.status_code == 302 and response["Location"] == f"/p/{tenant.slug}/login/"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("revoked", "revoked"),
        ("expired", "expired"),
        ("idle", "expired"),
        ("banned", "banned"),
        ("deleted", "deleted"),
        ("unconfirmed", "unconfirmed"),
    ],
)
def test_a_session_is_refused_on_the_next_request(client, tenant, app_user, change, reason):
    session = signed_in(client, tenant)
    sessions = AppSession.objects.using(tenant_db.using(tenant)).filter(pk=session.pk)
    users = AppUser.objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk)
    now = timezone.now()
    if change == "revoked":  # what the console's "sign out" and "ban" do
        sessions.update(revoked_at=now)
    elif change == "expired":
        sessions.update(expires_at=now - timedelta(seconds=1))
    elif change == "idle":
        sessions.update(last_seen_at=now - timedelta(hours=25))
    elif change == "banned":  # even without revoking the sessions
        users.update(banned_until=now + timedelta(hours=1))
    elif change == "deleted":
        users.update(deleted_at=now)
    elif change == "unconfirmed":
        users.update(email_confirmed_at=None)
    response = client.get(f"/p/{tenant.slug}/account/")
    assert response.status_code == 302
    assert response["Location"] == f"/p/{tenant.slug}/login/?reason={reason}"
    assert response.cookies[COOKIE_NAME].value == ""  # the dead cookie is cleared
    page = client.get(response["Location"])
    assert page.status_code == 200 and b'id="login"' in page.content


def test_a_session_ends_by_itself_after_its_lifetime(client, tenant, app_user):
    signed_in(client, tenant)
    later = timezone.now() + SESSION_LIFETIME + timedelta(seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        response = client.get(f"/p/{tenant.slug}/account/")
    assert response.status_code == 302 and "reason=expired" in response["Location"]


def test_banned_user_is_refused_with_a_clear_message(client, tenant, app_user):
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk).update(
        banned_until=timezone.now() + timedelta(days=2)
    )
    response = portal_sign_in(client, tenant)
    assert response.status_code == 400
    assert b"This account is banned until" in response.content
    assert COOKIE_NAME not in response.cookies


def test_suspended_and_deleted_tenants_are_refused_with_a_clear_message(client, tenant, app_user):
    signed_in(client, tenant)
    tenant_suspend(actor=None, tenant=tenant)
    response = client.get(f"/p/{tenant.slug}/account/")
    assert response.status_code == 403 and b"is suspended" in response.content
    assert portal_sign_in(client, tenant).status_code == 403
    tenant_resume(actor=None, tenant=tenant)
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 200
    tenant.status = "deleted"
    tenant.save(update_fields=["status"])
    response = client.get(f"/p/{tenant.slug}/login/")
    assert response.status_code == 410 and b"no longer available" in response.content
    assert client.get("/p/nope/login/").status_code == 404


def test_a_cookie_of_one_tenant_means_nothing_in_another(client, tenant, app_user, make_tenant):
    make_tenant("globex")
    signed_in(client, tenant)
    response = client.get("/p/globex/account/")
    assert response.status_code == 302 and response["Location"] == "/p/globex/login/"


def test_sign_out_ends_the_session(client, tenant, app_user):
    session = signed_in(client, tenant)
    response = client.post(f"/p/{tenant.slug}/logout/")
    assert response.status_code == 302
    assert AppSession.objects.using(tenant_db.using(tenant)).get(pk=session.pk).revoked_at is not None
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 302
    assert client.get(f"/p/{tenant.slug}/logout/").status_code == 405  # GET changes nothing


def test_end_one_others_and_all_sessions(client, tenant, app_user):
    from django.test import Client

    phone, laptop, tablet = Client(), Client(), Client()
    s_phone = signed_in(phone, tenant)
    s_laptop = signed_in(laptop, tenant)
    s_tablet = signed_in(tablet, tenant)
    live = AppSession.objects.using(tenant_db.using(tenant)).filter(revoked_at__isnull=True)
    # local, naming another session
    assert phone.post(f"/p/{tenant.slug}/account/sessions/local/end/", {"session": s_tablet.pk}).status_code == 302
    assert set(live.values_list("pk", flat=True)) == {s_phone.pk, s_laptop.pk}
    assert tablet.get(f"/p/{tenant.slug}/account/").status_code == 302
    # others
    assert phone.post(f"/p/{tenant.slug}/account/sessions/others/end/").status_code == 302
    assert set(live.values_list("pk", flat=True)) == {s_phone.pk}
    assert laptop.get(f"/p/{tenant.slug}/account/").status_code == 302
    assert phone.get(f"/p/{tenant.slug}/account/").status_code == 200
    # global
    signed_in(laptop, tenant)
    response = phone.post(f"/p/{tenant.slug}/account/sessions/global/end/")
    assert response.status_code == 302 and "reason=signed_out" in response["Location"]
    assert not live.exists()
    assert phone.get(f"/p/{tenant.slug}/account/").status_code == 302
    assert laptop.get(f"/p/{tenant.slug}/account/").status_code == 302


def test_a_user_cannot_end_someone_elses_session(client, tenant, app_user, app_user_factory):
    from django.test import Client

    bob_client = Client()
    app_user_factory(tenant, "bob@acme.test")
    bob = signed_in(bob_client, tenant, email="bob@acme.test")
    signed_in(client, tenant)
    client.post(f"/p/{tenant.slug}/account/sessions/local/end/", {"session": bob.pk})
    assert AppSession.objects.using(tenant_db.using(tenant)).get(pk=bob.pk).revoked_at is None


def test_change_password_needs_the_current_one_and_ends_other_sessions(client, tenant, app_user):
    from django.test import Client

    other = Client()
    signed_in(other, tenant)
    signed_in(client, tenant)
    url = f"/p/{tenant.slug}/account/password/"
    new = "saffron-glacier-tulip-19"
    wrong = client.post(url, {"current": "nope", "password1": new, "password2": new})
    assert wrong.status_code == 400 and b"current password is not right" in wrong.content
    ok = client.post(url, {"current": "plum-kettle-harbour-42", "password1": new, "password2": new})
    assert ok.status_code == 302
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 200
    assert other.get(f"/p/{tenant.slug}/account/").status_code == 302


def test_last_seen_is_touched_at_most_once_a_minute(client, tenant, app_user):
    session = signed_in(client, tenant)
    stamp = AppSession.objects.using(tenant_db.using(tenant)).get(pk=session.pk).last_seen_at
    client.get(f"/p/{tenant.slug}/account/")
    assert AppSession.objects.using(tenant_db.using(tenant)).get(pk=session.pk).last_seen_at == stamp
    later = timezone.now() + timedelta(minutes=2)
    with mock.patch("django.utils.timezone.now", return_value=later):
        client.get(f"/p/{tenant.slug}/account/")
    assert AppSession.objects.using(tenant_db.using(tenant)).get(pk=session.pk).last_seen_at == later


def test_require_mfa_forces_enrolment_after_sign_in(client, tenant, app_user):
    tenant.settings = {**tenant.settings, "require_mfa": True}
    tenant.save(update_fields=["settings"])
    signed_in_resp = portal_sign_in(client, tenant)
    assert signed_in_resp.status_code == 302
    response = client.get(f"/p/{tenant.slug}/account/")
    assert response.status_code == 302 and response["Location"] == f"/p/{tenant.slug}/account/mfa/"
    page = client.get(f"/p/{tenant.slug}/account/mfa/")
    assert page.status_code == 200 and b"requires two-step verification" in page.content
