from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django_otp import DEVICE_ID_SESSION_KEY

from accounts.models import User
from audit.models import AuditEntry
from console.middleware import SESSION_LOGIN_AT, SESSION_SEEN_AT
from console.staff_session import OTP_VERIFIED_AT
from core.policy import policy
from tests.accounts.helpers import STAFF_PASSWORD, code_for, enrol, sign_in_password

pytestmark = pytest.mark.django_db

WRONG = "The email or password is not correct."


def _strip_tokens(html: str) -> str:
    """The page minus its CSRF tokens (masked differently on every render)."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)


def test_every_console_url_leads_to_setup_while_no_staff_exists(client):
    for path in ("/", "/staff/", "/login/", "/t/default/users/", "/nope/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/setup/", path


def test_anonymous_visitor_is_sent_to_sign_in(client, staff_factory):
    staff_factory()
    response = client.get("/staff/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=%2Fstaff%2F"
    assert client.get("/login/").status_code == 200


def test_password_then_totp_signs_in_with_a_new_session_key(client, staff_factory):
    user = staff_factory("ann@console.test")
    device, _ = enrol(user)
    client.get("/login/")
    before = client.session.session_key
    response = sign_in_password(client, "ANN@console.test ")
    assert response.status_code == 302 and response["Location"] == "/login/verify/"
    after_password = client.session.session_key
    assert after_password != before
    # Half signed in: the console still refuses.
    assert client.get("/").status_code == 302
    response = client.post("/login/verify/", {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session.session_key != after_password
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.session[OTP_VERIFIED_AT]
    home = client.get("/")
    assert home.status_code == 200
    assert b"Your tenants" in home.content
    events = list(AuditEntry.objects.filter(object_pk=str(user.pk)).values_list("event", flat=True))
    assert "staff.login" in events


def test_next_is_followed_only_inside_the_console(client, staff_factory):
    user = staff_factory("ann@console.test")
    device, _ = enrol(user)
    sign_in_password(client, user.email, next="https://evil.example/")
    response = client.post("/login/verify/", {"code": code_for(device)})
    assert response["Location"] == "/"
    client.post("/logout/")
    sign_in_password(client, user.email, next="/account/security/")
    response = client.post("/login/verify/", {"code": code_for(device, steps_ahead=1)})
    assert response["Location"] == "/account/security/"


def test_wrong_password_unknown_email_and_inactive_get_the_same_answer(client, staff_factory):
    staff_factory("ann@console.test")
    staff_factory("off@console.test").__class__.objects.filter(email="off@console.test").update(
        is_active=False
    )
    answers = []
    for email, password in [("ann@console.test", "wrong-password-123"),
                            ("nobody@console.test", STAFF_PASSWORD),
                            ("off@console.test", STAFF_PASSWORD)]:
        response = sign_in_password(client, email, password)
        answers.append((response.status_code, WRONG in response.content.decode()))
    assert answers == [(200, True)] * 3
    assert AuditEntry.objects.filter(event="staff.login_failed").count() == 3


def test_six_wrong_passwords_lock_the_account_with_an_indistinguishable_answer(client, staff_factory):
    user = staff_factory("ann@console.test")
    enrol(user)
    limit = policy().staff_lockout_failures
    wrong_answer = None
    for _ in range(limit + 1):
        response = sign_in_password(client, "ann@console.test", "not-the-password-1")
        assert response.status_code == 200
        wrong_answer = _strip_tokens(response.content.decode())
    # The right password is refused now, with exactly the answer a wrong one gets.
    response = sign_in_password(client, "ann@console.test", STAFF_PASSWORD)
    assert response.status_code == 200
    assert _strip_tokens(response.content.decode()) == wrong_answer
    assert "_auth_user_id" not in client.session
    # ... also when typed in another case (one counter per account).
    response = sign_in_password(client, "Ann@Console.test", STAFF_PASSWORD)
    assert response.status_code == 200 and WRONG in response.content.decode()
    assert "_auth_user_id" not in client.session
    lockouts = AuditEntry.objects.filter(event="staff.lockout")
    assert lockouts.count() == 1
    entry = lockouts.get()
    assert entry.object_pk == str(user.pk)
    assert entry.additional_data["failures"] == limit
    assert entry.remote_addr == "127.0.0.1"
    refused = AuditEntry.objects.filter(event="staff.login_failed",
                                        additional_data__reason="locked")
    assert refused.count() >= 2
    # After the cool-off the right password works again.
    cache.clear()
    response = sign_in_password(client, "ann@console.test", STAFF_PASSWORD)
    assert response.status_code == 302


def test_totp_failures_count_toward_the_same_account_limit(client, staff_factory):
    user = staff_factory("ann@console.test")
    device, _ = enrol(user)
    limit = policy().staff_lockout_failures
    for _ in range(2):
        sign_in_password(client, user.email, "not-the-password-1")
    sign_in_password(client, user.email)
    for _ in range(limit - 3):
        response = client.post("/login/verify/", {"code": "000000"})
        assert response.status_code == 200
        assert b"That code is not valid" in response.content
        device.refresh_from_db()
        device.throttling_failure_timestamp = None  # skip django-otp's own backoff delay
        device.save()
    # The failure that reaches the limit ends the half-open session.
    response = client.post("/login/verify/", {"code": "000000"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(event="staff.otp_failed").count() == limit - 2
    assert AuditEntry.objects.filter(event="staff.lockout").count() == 1
    response = sign_in_password(client, user.email)
    assert response.status_code == 200 and WRONG in response.content.decode()


def test_a_totp_code_is_accepted_once(client, staff_factory):
    user = staff_factory("ann@console.test")
    device, _ = enrol(user)
    code = code_for(device)
    sign_in_password(client, user.email)
    assert client.post("/login/verify/", {"code": code})["Location"] == "/"
    client.post("/logout/")
    sign_in_password(client, user.email)
    device.refresh_from_db()
    response = client.post("/login/verify/", {"code": code})
    assert response.status_code == 200
    assert b"That code is not valid" in response.content


def test_a_backup_code_signs_in_once(client, staff_factory):
    user = staff_factory("ann@console.test")
    _, codes = enrol(user)
    sign_in_password(client, user.email)
    response = client.post("/login/verify/?method=backup", {"code": codes[0][:4] + "-" + codes[0][4:]})
    assert response.status_code == 302 and response["Location"] == "/"
    used = AuditEntry.objects.get(event="staff.backup_code_used")
    assert used.additional_data["backup_codes_left"] == 9
    assert codes[0] not in str(used.additional_data)
    client.post("/logout/")
    sign_in_password(client, user.email)
    response = client.post("/login/verify/?method=backup", {"code": codes[0]})
    assert response.status_code == 200
    assert b"That backup code is not valid" in response.content


def test_first_sign_in_forces_enrolment(client, staff_factory):
    user = staff_factory("new@console.test")
    response = sign_in_password(client, user.email)
    assert response["Location"] == "/login/enroll/"
    assert client.get("/")["Location"] == "/login/enroll/"
    assert client.get("/login/verify/")["Location"] == "/login/enroll/"
    page = client.get("/login/enroll/")
    assert page.status_code == 200
    secret = re.search(r'data-totp-secret="([A-Z2-7]+)"', page.content.decode()).group(1)
    assert b"<svg" in page.content
    # Reloading keeps the same secret; a GET writes no device.
    assert secret in client.get("/login/enroll/").content.decode()
    assert not user.totpdevice_set.exists()
    from tests.accounts.helpers import code_from_base32

    assert client.post("/login/enroll/", {"code": "123456"}).status_code == 200
    response = client.post("/login/enroll/", {"code": code_from_base32(secret)})
    assert response.status_code == 200
    codes = re.findall(r"<li>([a-z2-7]{4}-[a-z2-7]{4})</li>", response.content.decode())
    assert len(codes) == 10
    assert client.get("/").status_code == 200
    assert AuditEntry.objects.filter(event="staff.otp_enrol", object_pk=str(user.pk)).exists()
    # The confirming code is spent.
    client.post("/logout/")
    sign_in_password(client, user.email)
    assert client.post("/login/verify/", {"code": code_from_base32(secret)}).status_code == 200


def test_sign_out_is_post_only(client, staff_factory):
    user = staff_factory()
    from tests.conftest import login_verified

    login_verified(client, user)
    assert client.get("/logout/").status_code == 405
    assert client.get("/").status_code == 200
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert client.get("/")["Location"] == "/login/"
    assert AuditEntry.objects.filter(event="staff.logout").exists()


def test_htmx_request_without_verified_session_gets_a_client_redirect(client, staff_factory):
    staff_factory()
    response = client.get("/staff/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/"
    assert response.content == b""


def test_idle_and_absolute_session_limits(client, staff_factory):
    from tests.conftest import login_verified

    user = staff_factory()
    login_verified(client, user)
    assert client.get("/").status_code == 200
    session = client.session
    session[SESSION_SEEN_AT] -= policy().staff_session_idle_minutes * 60 + 5
    session.save()
    assert client.get("/")["Location"] == "/login/"
    assert AuditEntry.objects.filter(event="staff.session_end",
                                     additional_data__reason="idle").exists()
    login_verified(client, user)
    client.get("/")
    session = client.session
    session[SESSION_LOGIN_AT] -= policy().staff_session_absolute_hours * 3600 + 5
    session.save()
    response = client.get("/", HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == "/login/"


def test_a_removed_device_ends_the_session(client, staff_factory):
    from tests.conftest import login_verified

    user = staff_factory()
    login_verified(client, user)
    user.totpdevice_set.all().delete()
    assert client.get("/")["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_step_up_reverify(client, staff_factory):
    from tests.conftest import login_verified

    user = staff_factory()
    login_verified(client, user, otp_age_seconds=3600)
    device = user.totpdevice_set.get()
    response = client.post("/account/security/backup-codes/",
                           HTTP_REFERER="http://testserver/account/security/")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/reverify/?next=")
    page = client.get(response["Location"])
    assert page.status_code == 200
    bad = client.post("/account/reverify/", {"code": "000000", "next": "/account/security/"})
    assert bad.status_code == 200 and b"That code is not valid" in bad.content
    device.refresh_from_db()
    device.throttling_failure_timestamp = None
    device.save()
    ok = client.post("/account/reverify/", {"code": code_for(device), "next": "//evil.example"})
    assert ok["Location"] == "/"
    response = client.post("/account/security/backup-codes/")
    assert response.status_code == 200
    assert User.objects.get(pk=user.pk).staticdevice_set.get().token_set.count() == 10


def test_the_right_code_after_four_wrong_ones_is_not_a_fifth_failure(client, staff_factory):
    """Issue 11, finding 7: django-otp's throttle refusal of the right code counted as the
    failure that locked the account. Now it is a "wait" answer that counts nothing."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts import lockout

    user = staff_factory("ann@console.test")
    device, _ = enrol(user)
    assert policy().staff_lockout_failures == 5
    sign_in_password(client, user.email)
    for _ in range(4):
        response = client.post("/login/verify/", {"code": "000000"})
        assert b"That code is not valid" in response.content
        device.refresh_from_db()
        device.throttling_failure_timestamp = None  # the next wrong code is checked at once
        device.save()
    # Four wrong codes were checked; the right one now comes inside django-otp's backoff.
    device.refresh_from_db()
    device.throttling_failure_timestamp = timezone.now()
    device.save()
    response = client.post("/login/verify/", {"code": code_for(device)})
    assert response.status_code == 200
    assert b"wait 8 seconds" in response.content
    assert "_auth_user_id" in client.session  # still half signed in, not thrown out
    assert not AuditEntry.objects.filter(event="staff.lockout").exists()
    assert AuditEntry.objects.filter(event="staff.otp_failed").count() == 4
    assert AuditEntry.objects.get(event="staff.otp_throttled").additional_data["wait_seconds"] == 8
    assert not lockout.is_locked(client.request().wsgi_request, user.email)
    # Once the backoff is over, the same right code signs in.
    device.refresh_from_db()
    device.throttling_failure_timestamp = timezone.now() - timedelta(seconds=9)
    device.save()
    response = client.post("/login/verify/", {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == "/"
