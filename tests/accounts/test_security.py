from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts import otp
from audit.models import AuditEntry
from tests.accounts.helpers import STAFF_PASSWORD, code_for, code_from_base32, enrol, sign_in_password
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-99"


@pytest.fixture
def member(staff_factory):
    user = staff_factory("member@console.test")
    enrol(user)
    return user


def test_security_page(client, member):
    login_verified(client, member)
    page = client.get("/account/security/")
    assert page.status_code == 200
    assert b"10 left" in page.content and b"Authenticator app" in page.content


def test_change_password_keeps_the_session_and_needs_the_current_one(client, member):
    login_verified(client, member)
    key = client.session.session_key
    bad = client.post("/account/security/password/", {
        "current_password": "wrong-one-123456", "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert bad.status_code == 200 and b"current password is not correct" in bad.content
    weak = client.post("/account/security/password/", {
        "current_password": STAFF_PASSWORD, "password": "password", "password_confirm": "password"})
    assert weak.status_code == 200 and b"too common" in weak.content
    member.refresh_from_db()
    assert member.check_password(STAFF_PASSWORD)
    ok = client.post("/account/security/password/", {
        "current_password": STAFF_PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert ok.status_code == 302
    assert client.session.session_key != key
    assert client.get("/").status_code == 200
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)
    entry = AuditEntry.objects.get(event="staff.password_change")
    assert not entry.changes or "password" not in entry.changes
    # Other sessions of the member end (Django's session auth hash).
    other = Client()
    login_verified(other, member)
    client.post("/account/security/password/", {
        "current_password": NEW_PASSWORD, "password": NEW_PASSWORD + "x", "password_confirm": NEW_PASSWORD + "x"})
    assert other.get("/")["Location"].startswith("/login/")


def test_regenerate_backup_codes_replaces_the_old_ones(client, member):
    old = otp.backup_device(member).token_set.values_list("token", flat=True)
    old = set(old)
    login_verified(client, member)
    response = client.post("/account/security/backup-codes/")
    assert response.status_code == 200
    shown = {c.replace("-", "") for c in re.findall(r"<li>([a-z2-7]{4}-[a-z2-7]{4})</li>", response.content.decode())}
    assert len(shown) == 10 and not ({otp.hash_backup_code(c) for c in shown} & old)
    # Stored only hashed (issue 11, finding 8): the rows hold no code that was shown.
    stored = set(otp.backup_device(member).token_set.values_list("token", flat=True))
    assert stored == {otp.hash_backup_code(c) for c in shown} and not (stored & shown)
    assert client.get("/account/security/backup-codes/").status_code == 405


def test_replace_the_authenticator_with_a_current_code(client, member):
    old_device = otp.totp_device(member)
    login_verified(client, member)
    page = client.get("/account/security/authenticator/")
    assert page.status_code == 200
    secret = re.search(r'data-totp-secret="([A-Z2-7]+)"', page.content.decode()).group(1)
    wrong = client.post("/account/security/authenticator/", {
        "current_code": "000000", "new_code": code_from_base32(secret)})
    assert wrong.status_code == 200 and b"current authenticator is not valid" in wrong.content
    assert otp.totp_device(member).pk == old_device.pk
    old_device.refresh_from_db()
    old_device.throttling_failure_timestamp = None
    old_device.save()
    bad_new = client.post("/account/security/authenticator/", {
        "current_code": code_for(old_device), "new_code": "123456"})
    assert bad_new.status_code == 200 and b"new authenticator is not valid" in bad_new.content
    ok = client.post("/account/security/authenticator/", {
        "current_code": code_for(old_device, steps_ahead=1), "new_code": code_from_base32(secret)})
    assert ok.status_code == 302
    new_device = otp.totp_device(member)
    assert new_device.pk != old_device.pk
    # This session stays signed in; the old app no longer works, the new one does.
    assert client.get("/").status_code == 200
    client.post("/logout/")
    sign_in_password(client, member.email)
    assert client.post("/login/verify/", {"code": code_for(old_device, steps_ahead=1)}).status_code == 200
    new_device.refresh_from_db()
    new_device.throttling_failure_timestamp = None
    new_device.save()
    assert client.post("/login/verify/", {"code": code_for(new_device, steps_ahead=1)})["Location"] == "/"
    assert AuditEntry.objects.filter(event="staff.otp_replace").exists()


def test_wrong_current_passwords_count_toward_the_lockout_and_are_audited(client, member):
    """Issue 11, finding 4: the password-change form was an unlimited password oracle."""
    from core.policy import policy

    login_verified(client, member)
    limit = policy().staff_lockout_failures
    for attempt in range(1, limit):
        bad = client.post("/account/security/password/", {
            "current_password": f"wrong-one-{attempt:06d}", "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD})
        assert bad.status_code == 200 and b"current password is not correct" in bad.content
    failed = AuditEntry.objects.filter(event="staff.login_failed", object_pk=str(member.pk))
    assert failed.count() == limit - 1
    assert {e.additional_data["reason"] for e in failed} == {"current_password"}
    assert all(e.actor_id == member.pk for e in failed)
    # The failure that reaches the limit locks the account and ends this session.
    last = client.post("/account/security/password/", {
        "current_password": "wrong-one-last", "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert last.status_code == 302 and last["Location"] == "/login/"
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(event="staff.lockout", object_pk=str(member.pk)).count() == 1
    member.refresh_from_db()
    assert member.check_password(STAFF_PASSWORD)
    # The sign-in is locked too: the right password gets the wrong-password answer.
    response = sign_in_password(client, member.email, STAFF_PASSWORD)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    # A second session of the member cannot use the right current password while locked.
    other = login_verified(Client(), member)
    refused = other.post("/account/security/password/", {
        "current_password": STAFF_PASSWORD, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert refused.status_code == 302 and refused["Location"] == "/login/"
    member.refresh_from_db()
    assert member.check_password(STAFF_PASSWORD)
    assert AuditEntry.objects.filter(event="staff.login_failed", additional_data__reason="locked",
                                     additional_data__via="password_change").count() == 1


def test_backup_codes_are_stored_hashed_and_still_sign_in(client, staff_factory, settings):
    """Issue 11, finding 8: staff backup codes were plain ``StaticToken`` rows."""
    from django_otp.plugins.otp_static.models import StaticToken

    user = staff_factory("coder@console.test")
    _, codes = enrol(user)
    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(stored) == 10 and not (stored & set(codes))
    assert all(len(t) == 16 and set(t) <= set("0123456789abcdef") for t in stored)
    sign_in_password(client, user.email)
    response = client.post("/login/verify/?method=backup", {"code": codes[0].upper()})
    assert response.status_code == 302 and response["Location"] == "/"
    assert otp.backup_codes_left(user) == 9
    # A rotated SECRET_KEY (the old one kept as a fallback) does not void the printed codes.
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    assert otp.verify(user, codes[1]).ok
    assert not otp.verify(user, codes[1]).ok  # single use


def test_the_migration_hashes_existing_plain_codes(staff_factory):
    import importlib

    from django.apps import apps
    from django.db import connection
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    user = staff_factory("legacy@console.test")
    device = StaticDevice.objects.create(user=user, name=otp.BACKUP_DEVICE_NAME, confirmed=True)
    StaticToken.objects.create(device=device, token="abcd2345")
    migration = importlib.import_module("accounts.migrations.0008_backup_codes_hashed")

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.hash_existing(apps, editor)
    migration.hash_existing(apps, editor)  # twice: nothing changes the second time
    assert list(device.token_set.values_list("token", flat=True)) == [otp.hash_backup_code("abcd2345")]
    assert otp.verify(user, "abcd-2345").ok
