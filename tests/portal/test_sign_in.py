"""Portal sign-in: lockout per account, the second factor, and link requests."""

from __future__ import annotations

from binascii import unhexlify
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from django_otp.oath import TOTP

from accounts.models import ActionToken, AppFactor, AppSession
from audit.models import AuditEntry
from core.policy import policy
from outbox.models import OutboxMessage
from portal.services.sessions import COOKIE_NAME
from tenants import db as tenant_db
from tests.portal.conftest import APP_PASSWORD, portal_sign_in

pytestmark = pytest.mark.django_db


def test_ten_failures_lock_the_account_for_fifteen_minutes(client, tenant, app_user, clock):
    assert policy().portal_lockout_failures == 10
    for _ in range(9):
        assert portal_sign_in(client, tenant, password="wrong-password-here").status_code == 400
    assert portal_sign_in(client, tenant).status_code == 302  # nine failures: not locked yet
    client.cookies.clear()
    for _ in range(10):
        response = portal_sign_in(client, tenant, password="wrong-password-here")
        assert response.status_code == 400
    # The right password is now refused too.
    locked = portal_sign_in(client, tenant)
    assert locked.status_code == 400 and b"Too many failed attempts" in locked.content
    assert COOKIE_NAME not in locked.cookies
    assert AuditEntry.objects.filter(event="app_user.locked_out", tenant=tenant).count() == 1
    clock.advance(minutes=14)
    assert portal_sign_in(client, tenant).status_code == 400
    clock.advance(minutes=1, seconds=1)
    assert portal_sign_in(client, tenant).status_code == 302


def test_lockout_answers_the_same_for_an_unknown_address(client, tenant, app_user):
    answers = []
    for email in (app_user.email, "nobody@acme.test"):
        for _ in range(10):
            portal_sign_in(client, tenant, email=email, password="wrong-password-here")
        answers.append(portal_sign_in(client, tenant, email=email, password="whatever-it-is").content)
    assert b"Too many failed attempts" in answers[0] and b"Too many failed attempts" in answers[1]


def test_lockout_is_per_account(client, tenant, app_user, app_user_factory):
    app_user_factory(tenant, "bob@acme.test")
    for _ in range(10):
        portal_sign_in(client, tenant, password="wrong-password-here")
    assert portal_sign_in(client, tenant, email="bob@acme.test").status_code == 302


def test_wrong_password_and_unknown_account_get_the_same_answer(client, tenant, app_user):
    a = portal_sign_in(client, tenant, password="wrong-password-here")
    b = portal_sign_in(client, tenant, email="nobody@acme.test")
    assert a.status_code == b.status_code == 400
    assert b"Wrong email or password." in a.content and b"Wrong email or password." in b.content


def _factor(tenant, user) -> AppFactor:
    from django_otp.util import random_hex

    factor = AppFactor.objects.using(tenant_db.using(tenant)).create(
        user_id=user.pk, key=random_hex(20), confirmed_at=timezone.now()
    )
    type(user).objects.using(tenant_db.using(tenant)).filter(pk=user.pk).update(mfa_enabled=True)
    return factor


def _code(factor, drift=0) -> str:
    totp = TOTP(unhexlify(factor.key), factor.step, 0, factor.digits, drift)
    return f"{totp.token():06d}"


def test_a_user_with_a_factor_needs_a_code_after_the_password(client, tenant, app_user):
    factor = _factor(tenant, app_user)
    response = portal_sign_in(client, tenant)
    assert response.status_code == 302 and response["Location"] == f"/p/{tenant.slug}/login/verify/"
    assert COOKIE_NAME not in response.cookies  # no session before the second factor
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 302
    bad = client.post(f"/p/{tenant.slug}/login/verify/", {"code": "000000"})
    assert bad.status_code == 400
    AppFactor.objects.using(tenant_db.using(tenant)).filter(pk=factor.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=2)  # past the back-off
    )
    ok = client.post(f"/p/{tenant.slug}/login/verify/", {"code": _code(factor)})
    assert ok.status_code == 302 and ok["Location"] == f"/p/{tenant.slug}/account/"
    session = AppSession.objects.using(tenant_db.using(tenant)).get(user_id=app_user.pk)
    assert session.aal == "aal2"
    # The same code is accepted once only.
    client.cookies.clear()
    portal_sign_in(client, tenant)
    again = client.post(f"/p/{tenant.slug}/login/verify/", {"code": _code(factor)})
    assert again.status_code == 400


def test_the_second_step_expires(client, tenant, app_user):
    factor = _factor(tenant, app_user)
    portal_sign_in(client, tenant)
    later = timezone.now() + timedelta(minutes=6)
    with mock.patch("time.time", return_value=later.timestamp()):
        response = client.post(f"/p/{tenant.slug}/login/verify/", {"code": _code(factor)})
    assert response.status_code == 302 and "reason=expired" in response["Location"]


def test_a_recovery_code_works_once(client, tenant, app_user):
    from portal.services.common import PortalActor
    from portal.services.factors import factor_confirm, factor_enrol_start

    actor = PortalActor(user=app_user)
    pending = factor_enrol_start(actor=actor, tenant=tenant)
    codes = factor_confirm(actor=actor, tenant=tenant, factor_id=pending.pk, code=_code(pending))
    assert len(codes) == 10 and len(set(codes)) == 10
    portal_sign_in(client, tenant)
    assert client.post(f"/p/{tenant.slug}/login/verify/", {"code": codes[3]}).status_code == 302
    client.cookies.clear()
    portal_sign_in(client, tenant)
    assert client.post(f"/p/{tenant.slug}/login/verify/", {"code": codes[3]}).status_code == 400
    assert client.post(f"/p/{tenant.slug}/login/verify/", {"code": codes[4].upper()}).status_code == 302


def test_totp_failures_are_throttled_like_django_otp(tenant, app_user):
    from portal.services.factors import totp_check

    factor = _factor(tenant, app_user)
    assert not totp_check(tenant=tenant, factor_id=factor.pk, code="000000")
    # Right after a failure even the right code is refused (1 s back-off), as ThrottlingMixin.
    assert not totp_check(tenant=tenant, factor_id=factor.pk, code=_code(factor))
    factor.refresh_from_db()
    assert factor.throttling_failure_count == 1  # a throttled attempt is not counted
    AppFactor.objects.using(tenant_db.using(tenant)).filter(pk=factor.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=5)
    )
    assert totp_check(tenant=tenant, factor_id=factor.pk, code=_code(factor))
    factor.refresh_from_db()
    assert factor.throttling_failure_count == 0


# --- Link requests ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["recover", "magic"])
def test_link_requests_answer_the_same_for_unknown_accounts(client, tenant, app_user, kind):
    known = client.post(f"/p/{tenant.slug}/{kind}/", {"email": app_user.email})
    unknown = client.post(f"/p/{tenant.slug}/{kind}/", {"email": "nobody@acme.test"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert known["Location"] == f"/p/{tenant.slug}/{kind}/sent/"
    assert OutboxMessage.objects.filter(to=app_user.email).count() == 1
    assert not OutboxMessage.objects.filter(to="nobody@acme.test").exists()
    page = client.get(known["Location"])
    assert b"If an account exists for that address" in page.content


def test_link_requests_are_limited_per_minute_and_per_hour(client, tenant, app_user, clock):
    def ask(kind="recover", email=app_user.email):
        response = client.post(f"/p/{tenant.slug}/{kind}/", {"email": email})
        # Always the same answer, mailed or not.
        assert response.status_code == 302 and response["Location"].endswith(f"/{kind}/sent/")

    def mailed():
        return OutboxMessage.objects.filter(to=app_user.email).count()

    ask()
    ask("magic")  # recovery and magic links share the per-account limits
    ask()
    assert mailed() == 1
    counts = []
    for _ in range(6):
        clock.advance(minutes=1, seconds=1)
        ask()
        counts.append(mailed())
    assert counts == [2, 3, 4, 5, 5, 5]  # one a minute, five an hour
    clock.advance(hours=1)
    ask("magic")
    assert mailed() == 6
    # An unknown address is counted the same way, and never mailed.
    ask(email="nobody@acme.test")
    ask(email="nobody@acme.test")
    assert not OutboxMessage.objects.filter(to="nobody@acme.test").exists()


def test_the_recovery_mail_carries_a_working_link(client, tenant, app_user):
    client.post(f"/p/{tenant.slug}/recover/", {"email": app_user.email})
    message = OutboxMessage.objects.get(to=app_user.email, kind="recovery")
    link = next(w for w in message.body.split() if "/recover/" in w)
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path).status_code == 200
    token = ActionToken.objects.using(tenant_db.using(tenant)).get(purpose="recovery")
    assert token.token_hash not in message.body
    assert AuditEntry.objects.filter(event="app_user.recovery_requested", actor=None).exists()


def test_banned_users_get_no_link_but_the_same_answer(client, tenant, app_user):
    type(app_user).objects.using(tenant_db.using(tenant)).filter(pk=app_user.pk).update(
        banned_until=timezone.now() + timedelta(hours=1)
    )
    response = client.post(f"/p/{tenant.slug}/magic/", {"email": app_user.email})
    assert response["Location"] == f"/p/{tenant.slug}/magic/sent/"
    assert not OutboxMessage.objects.filter(to=app_user.email).exists()


def test_sign_in_audits_success_and_failure_without_secrets(client, tenant, app_user):
    portal_sign_in(client, tenant, password="wrong-password-here")
    portal_sign_in(client, tenant)
    events = list(AuditEntry.objects.filter(tenant=tenant).values_list("event", flat=True))
    assert "app_user.sign_in_failed" in events and "app_user.sign_in" in events
    for entry in AuditEntry.objects.filter(tenant=tenant):
        text = str(entry.additional_data) + str(entry.changes)
        assert APP_PASSWORD not in text and "wrong-password-here" not in text


def test_the_right_code_inside_the_back_off_is_not_the_failure_that_locks(client, tenant, app_user):
    """Issue 11, finding 7: a code the throttle refused to check counted as a failure, so the
    right code after wrong ones locked the account."""
    from portal.services import limits

    factor = _factor(tenant, app_user)
    portal_sign_in(client, tenant)
    alias = tenant_db.using(tenant)
    for _ in range(policy().portal_lockout_failures - 1):
        bad = client.post(f"/p/{tenant.slug}/login/verify/", {"code": "000000"})
        assert bad.status_code == 400 and b"That code is not right" in bad.content
        AppFactor.objects.using(alias).filter(pk=factor.pk).update(throttling_failure_timestamp=None)
    AppFactor.objects.using(alias).filter(pk=factor.pk).update(throttling_failure_timestamp=timezone.now())
    waiting = client.post(f"/p/{tenant.slug}/login/verify/", {"code": _code(factor)})
    assert waiting.status_code == 400 and b"wait 256 seconds" in waiting.content
    assert not limits.is_locked(tenant, app_user.email)
    assert not AuditEntry.objects.filter(event="app_user.locked_out").exists()
    AppFactor.objects.using(alias).filter(pk=factor.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(seconds=300)
    )
    ok = client.post(f"/p/{tenant.slug}/login/verify/", {"code": _code(factor)})
    assert ok.status_code == 302 and ok["Location"] == f"/p/{tenant.slug}/account/"


@pytest.mark.parametrize("path,extra", [("login", {"password": "whatever-it-is"}), ("recover", {}),
                                        ("magic", {})])
@pytest.mark.parametrize("email", ["ann\u202e@acme.test", "ann@ac\u202eme.test", "\u2066ann@acme.test"])
def test_a_direction_override_in_a_portal_email_is_refused_and_never_echoed(
    client, tenant, app_user, path, extra, email
):
    """Issue 11, finding 7: an RTL override typed as an email reached the audit trail's
    ``object_repr`` and was echoed raw in the form."""
    response = client.post(f"/p/{tenant.slug}/{path}/", {"email": email, **extra})
    assert response.status_code in (200, 400)
    html = response.content.decode()
    assert "text-direction overrides" in html
    assert "\u202e" not in html and "\u2066" not in html
    assert 'value="ann@acme.test"' in html  # what may be shown of it, without the override
    assert not AuditEntry.objects.filter(object_repr__contains=email).exists()
    assert not OutboxMessage.objects.exists()


def test_the_services_refuse_a_direction_override_too(tenant, app_user):
    from core.errors import Invalid
    from portal.services.auth import Client, link_request, sign_in_password

    with pytest.raises(Invalid):
        sign_in_password(tenant=tenant, email="ann\u202e@acme.test", password="x", client=Client())
    with pytest.raises(Invalid):
        link_request(tenant=tenant, email="ann@acme.test\u202e", purpose=ActionToken.Purpose.RECOVERY)
    assert not AuditEntry.objects.filter(tenant=tenant, event__startswith="app_user.").exists()
