"""The account page: TOTP enrolment with a QR code made on the server, recovery codes, removal,
profile input checks."""

from __future__ import annotations

import re
from binascii import unhexlify
from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp.oath import TOTP

from accounts.models import AppFactor, AppRecoveryCode, AppSession, AppUser
from tenants import db as tenant_db
from tests.portal.conftest import APP_PASSWORD, portal_sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, tenant, app_user):
    assert portal_sign_in(client, tenant).status_code == 302
    return client


def code_for(factor: AppFactor, drift: int = 0) -> str:
    return f"{TOTP(unhexlify(factor.key), factor.step, 0, factor.digits, drift).token():06d}"


def test_enrol_confirm_and_see_the_recovery_codes_once(signed_in, tenant, app_user):
    client = signed_in
    page = client.get(f"/p/{tenant.slug}/account/")
    assert b"Set up an authenticator app" in page.content
    assert client.get(f"/p/{tenant.slug}/account/mfa/").status_code == 200  # GET creates nothing
    assert not AppFactor.objects.using(tenant_db.using(tenant)).exists()
    assert client.post(f"/p/{tenant.slug}/account/mfa/").status_code == 302
    factor = AppFactor.objects.using(tenant_db.using(tenant)).get()
    assert factor.confirmed_at is None
    page = client.get(f"/p/{tenant.slug}/account/mfa/")
    html = page.content.decode()
    assert 'src="data:image/svg+xml' in html  # QR code drawn here, not by an external service
    secret = re.search(r'id="mfa-secret">([A-Z2-7]+)<', html).group(1)
    assert len(secret) == 32
    assert "style=" not in html and "<script" not in html  # CSP: nothing inline
    bad = client.post(f"/p/{tenant.slug}/account/mfa/{factor.pk}/confirm/", {"code": "123456"})
    assert bad.status_code == 400
    AppFactor.objects.using(tenant_db.using(tenant)).update(throttling_failure_timestamp=timezone.now() - timedelta(seconds=5))
    ok = client.post(f"/p/{tenant.slug}/account/mfa/{factor.pk}/confirm/", {"code": code_for(factor)})
    assert ok.status_code == 200
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", ok.content.decode())
    assert len(codes) == 10
    stored = list(AppRecoveryCode.objects.using(tenant_db.using(tenant)).values_list("code_hash", flat=True))
    assert len(stored) == 10 and not set(codes) & set(stored)
    user = AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk)
    assert user.mfa_enabled
    assert AppSession.objects.using(tenant_db.using(tenant)).get().aal == "aal2"
    # Never shown again.
    page = client.get(f"/p/{tenant.slug}/account/")
    assert not any(code.encode() in page.content for code in codes)
    assert b"Authenticator app" in page.content
    # A second enrolment is refused while one factor exists.
    client.post(f"/p/{tenant.slug}/account/mfa/")
    assert AppFactor.objects.using(tenant_db.using(tenant)).count() == 1


def test_remove_own_factor_needs_the_password(signed_in, tenant, app_user):
    from portal.services.common import PortalActor
    from portal.services.factors import factor_confirm, factor_enrol_start

    actor = PortalActor(user=app_user)
    pending = factor_enrol_start(actor=actor, tenant=tenant)
    factor_confirm(actor=actor, tenant=tenant, factor_id=pending.pk, code=code_for(pending))
    url = f"/p/{tenant.slug}/account/mfa/{pending.pk}/remove/"
    assert signed_in.post(url, {"password": "not-it"}).status_code == 400
    assert AppFactor.objects.using(tenant_db.using(tenant)).exists()
    assert signed_in.post(url, {"password": APP_PASSWORD}).status_code == 302
    assert not AppFactor.objects.using(tenant_db.using(tenant)).exists()
    assert not AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk).mfa_enabled


@pytest.mark.parametrize(
    "name", ["x" * 10_000, "Ann\u202eevil", "Ann\x00", "Ann\x07bell"],
)
def test_profile_refuses_bad_input_with_a_message(signed_in, tenant, app_user, name):
    response = signed_in.post(f"/p/{tenant.slug}/account/profile/", {"name": name})
    assert response.status_code == 400
    assert b"p-error" in response.content
    assert AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk).name == app_user.name


def test_profile_markup_is_escaped(signed_in, tenant, app_user):
    signed_in.post(f"/p/{tenant.slug}/account/profile/", {"name": "<b>Ann</b>"})
    page = signed_in.get(f"/p/{tenant.slug}/account/")
    assert b"&lt;b&gt;Ann&lt;/b&gt;" in page.content and b"<b>Ann</b>" not in page.content


def test_portal_pages_carry_csp_and_no_store(client, tenant):
    response = client.get(f"/p/{tenant.slug}/login/")
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    assert b"/static/css/portal.css" in response.content
    assert b"/static/css/app.css" not in response.content
    assert b"Acme Inc" in response.content


def test_portal_forms_need_csrf(tenant, app_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/p/{tenant.slug}/login/", {"email": app_user.email, "password": APP_PASSWORD})
    assert response.status_code == 403
    page = client.get(f"/p/{tenant.slug}/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post(f"/p/{tenant.slug}/login/",
                           {"email": app_user.email, "password": APP_PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_guessing_the_current_password_counts_toward_the_lockout(signed_in, tenant, app_user):
    """A stolen session cannot guess the password through the change-password form forever."""
    from core.policy import policy

    url = f"/p/{tenant.slug}/account/password/"
    for _ in range(policy().portal_lockout_failures):
        signed_in.post(url, {"current": "wrong-guess", "password1": "Another-Passw0rd-123", "password2": "Another-Passw0rd-123"})
    # Locked now: even the right current password is refused, and nothing changed.
    before = AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk).password
    signed_in.post(url, {"current": APP_PASSWORD, "password1": "Another-Passw0rd-123", "password2": "Another-Passw0rd-123"})
    assert AppUser.objects.using(tenant_db.using(tenant)).get(pk=app_user.pk).password == before
    from audit.models import AuditEntry

    assert AuditEntry.objects.filter(tenant=tenant, event="app_user.locked_out").exists()
