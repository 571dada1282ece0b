"""The sign-in session steps (``console.flows.staff_sign_in``): every way of completing a sign-in
rotates the session key and clears the account's failure counter."""

from __future__ import annotations

import base64
import re

import pytest
from django.contrib.sessions.models import Session

from accounts import otp
from audit.models import AuditEntry
from core.policy import policy
from tests.accounts.helpers import (
    STAFF_PASSWORD,
    code_for,
    code_from_base32,
    enrol,
    sign_in_password,
)

pytestmark = pytest.mark.django_db

WRONG = "The email or password is not correct."


def _fail(client, email: str, times: int) -> None:
    for _ in range(times):
        response = sign_in_password(client, email, "not-the-password-1")
        assert response.status_code == 200 and WRONG in response.content.decode()


def test_a_complete_sign_in_clears_the_failures(client, staff_factory):
    user = staff_factory("ann@console.test")
    device, _ = enrol(user)
    almost = policy().staff_lockout_failures - 1
    _fail(client, user.email, almost)
    sign_in_password(client, user.email)
    assert client.post("/login/verify/", {"code": code_for(device)})["Location"] == "/"
    client.post("/logout/")
    # Without the reset, these would pass the limit and lock the account.
    _fail(client, user.email, almost)
    assert sign_in_password(client, user.email)["Location"] == "/login/verify/"


def test_the_password_alone_does_not_clear_the_failures(client, staff_factory):
    user = staff_factory("ann@console.test")
    enrol(user)
    almost = policy().staff_lockout_failures - 1
    _fail(client, user.email, almost)
    assert sign_in_password(client, user.email)["Location"] == "/login/verify/"
    client.post("/logout/")
    _fail(client, user.email, 1)
    response = sign_in_password(client, user.email)
    assert response.status_code == 200 and WRONG in response.content.decode()


def test_enrolment_completes_the_sign_in_with_a_new_key_and_clears_the_failures(client, staff_factory):
    user = staff_factory("new@console.test")
    almost = policy().staff_lockout_failures - 1
    _fail(client, user.email, almost)
    assert sign_in_password(client, user.email)["Location"] == "/login/enroll/"
    after_password = client.session.session_key
    page = client.get("/login/enroll/").content.decode()
    secret = re.search(r'data-totp-secret="([A-Z2-7]+)"', page).group(1)
    # The session store (database, Redis) holds the secret being enrolled only encrypted.
    stored = client.session["adminpanel_pending_totp"]
    assert stored.startswith("enc1:")
    assert base64.b32encode(bytes.fromhex(otp.pending_from_session(stored).hex_key)).decode().rstrip("=") == secret
    stored_row = Session.objects.get(session_key=client.session.session_key).get_decoded()
    assert otp.pending_from_session(stored).hex_key not in str(stored_row)
    response = client.post("/login/enroll/", {"code": code_from_base32(secret)})
    assert response.status_code == 200 and b"backup" in response.content.lower()
    assert client.session.session_key != after_password
    entry = AuditEntry.objects.get(event="staff.login", object_pk=str(user.pk))
    assert entry.additional_data["method"] == "enrol"
    client.post("/logout/")
    _fail(client, user.email, almost)
    assert sign_in_password(client, user.email, STAFF_PASSWORD)["Location"] == "/login/verify/"


def test_a_locked_account_cannot_finish_enrolment(client, staff_factory):
    user = staff_factory("new@console.test")
    assert sign_in_password(client, user.email)["Location"] == "/login/enroll/"
    page = client.get("/login/enroll/").content.decode()
    secret = re.search(r'data-totp-secret="([A-Z2-7]+)"', page).group(1)
    # Another client locks the account meanwhile.
    from django.test import Client

    _fail(Client(), user.email, policy().staff_lockout_failures)
    response = client.post("/login/enroll/", {"code": code_from_base32(secret)})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    assert not user.totpdevice_set.exists()


def test_the_login_failure_is_audited_with_the_canonical_email(client, staff_factory):
    user = staff_factory("ann@console.test")
    _fail(client, "  ANN@Console.test", 1)
    entry = AuditEntry.objects.get(event="staff.login_failed")
    assert entry.object_pk == str(user.pk)
    assert entry.additional_data["reason"] == "invalid_credentials"
