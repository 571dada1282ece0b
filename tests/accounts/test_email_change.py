"""Issue 11, finding 2: a staff edit of an app user's email is a pending change confirmed from
the new address (token purpose ``email_change``); the old address is told; the console asks for a
recent OTP; links issued before the change die; both steps are audited. Before the fix the new
address took effect at once, confirmed, and a recovery link then went there."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client

from accounts.app_users import services as svc
from accounts.models import ActionToken
from audit.models import AuditEntry
from core.errors import Conflict
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_user, reload
from tests.conftest import login_verified
from tests.expect import raises

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(staff_factory, acme):
    return staff_factory("boss@console.test", tenants={acme: "admin"})


@pytest.fixture
def ann(acme):
    return make_user(acme, "ann@example.test", name="Ann", password=make_password("plum-kettle-harbour-42"))


def _link(to: str, kind: str = "email_change") -> str:
    body = OutboxMessage.objects.get(to=to, kind=kind).body
    return re.search(r"https?://\S+/email-change/\S+/", body).group(0).split("testserver", 1)[-1]


def _tokens(acme, **filters):
    return ActionToken.objects.using(tenant_db.using(acme)).filter(**filters)


def test_a_staff_email_change_is_pending_until_the_new_address_confirms(acme, admin, ann):
    confirmed_at = ann.email_confirmed_at
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="Ann.New@Example.test")
    stored = reload(acme, ann)
    assert (stored.email, stored.email_confirmed_at) == ("ann@example.test", confirmed_at)
    token = _tokens(acme, purpose="email_change").get()
    assert (token.user_id, token.new_email, token.created_by) == (ann.pk, "ann.new@example.test", admin.pk)
    # The new address gets the link, the old one is told.
    assert "/email-change/" in OutboxMessage.objects.get(to="ann.new@example.test", kind="email_change").body
    notice = OutboxMessage.objects.get(to="ann@example.test", kind="email_change_notice")
    assert "ann.new@example.test" in notice.body and "/email-change/" not in notice.body
    (entry,) = AuditEntry.objects.filter(event="app_user.email_change_requested", object_pk=str(ann.pk))
    assert entry.actor == admin and entry.additional_data["new_email"] == "ann.new@example.test"
    assert not AuditEntry.objects.filter(event="app_user.update", object_pk=str(ann.pk)).exists()
    # The takeover of the issue: a recovery for the new address finds no account, so no link goes there.
    Client().post(f"/p/{acme.slug}/recover/", {"email": "ann.new@example.test"})
    assert not OutboxMessage.objects.filter(to="ann.new@example.test", kind="recovery").exists()


def test_the_link_makes_the_change_once_and_kills_earlier_links(acme, admin, ann):
    magic = svc.app_user_send_magic_link(actor=admin, tenant=acme, user_id=ann.pk)
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="ann.new@example.test")
    path = _link("ann.new@example.test")
    client = Client()
    page = client.get(path)
    assert page.status_code == 200 and b"ann.new@example.test" in page.content
    assert client.head(path).status_code == 200  # mail scanners: nothing used
    assert reload(acme, ann).email == "ann@example.test"
    done = client.post(path)
    assert done.status_code == 200 and b"Address changed" in done.content
    stored = reload(acme, ann)
    assert stored.email == "ann.new@example.test" and stored.email_confirmed_at is not None
    assert _tokens(acme, pk=magic.pk).get().revoked_at is not None  # issued before: dead
    (entry,) = AuditEntry.objects.filter(event="app_user.email_change", object_pk=str(ann.pk))
    assert entry.changes["email"] == ["ann@example.test", "ann.new@example.test"]
    assert entry.actor is None and entry.additional_data["links_revoked"] == 1
    again = client.post(path)
    assert again.status_code == 400 and b"invalid or has expired" in again.content


def test_a_newer_request_replaces_the_older_and_a_taken_address_changes_nothing(acme, admin, ann):
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="first@example.test")
    first = _link("first@example.test")
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="second@example.test")
    assert Client().post(first).status_code == 400
    assert reload(acme, ann).email == "ann@example.test"
    second = _link("second@example.test")
    make_user(acme, "second@example.test")  # somebody took it meanwhile
    response = Client().post(second)
    assert response.status_code == 400 and b"Another account uses this address" in response.content
    assert reload(acme, ann).email == "ann@example.test"
    assert _tokens(acme, purpose="email_change", used_at__isnull=True, revoked_at__isnull=True).count() == 1
    with raises(Conflict, "email_taken"):
        svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="second@example.test")


def test_the_console_asks_for_a_recent_otp_for_a_new_email_only(acme, admin, ann):
    url = f"/t/acme/users/{ann.pk}/edit/"
    back = {"HTTP_REFERER": f"http://testserver/t/acme/users/{ann.pk}/"}
    stale = login_verified(Client(), admin, otp_age_seconds=3600)
    response = stale.post(url, {"email": "evil@example.test", "name": "Ann", "role": "user"}, **back)
    assert response.status_code == 302 and response["Location"].startswith("/account/reverify/")
    assert not _tokens(acme, purpose="email_change").exists()
    assert not OutboxMessage.objects.filter(kind="email_change").exists()
    # A name alone needs no step-up.
    response = stale.post(url, {"email": "ANN@example.test", "name": "Ann Lee", "role": "user"}, follow=True)
    assert "Profile saved." in response.content.decode() and reload(acme, ann).name == "Ann Lee"
    fresh = login_verified(Client(), admin)
    response = fresh.post(url, {"email": "new{x}@example.test", "name": "Ann Lee", "role": "user"}, follow=True)
    page = response.content.decode()
    assert "changes to new{x}@example.test when the link" in page and "ann@example.test has been told" in page
    assert "Email change to <strong>new{x}@example.test</strong>" in page  # the pending link
    assert reload(acme, ann).email == "ann@example.test"


def test_the_confirmation_mail_is_a_tenant_template(acme, admin, ann, staff_factory):
    root = login_verified(Client(), staff_factory("root@console.test", superuser=True))
    page = root.get("/t/acme/settings/emails/email_change/")
    assert page.status_code == 200 and b"Confirm your new" in page.content
    saved = root.post("/t/acme/settings/emails/email_change/", {
        "subject": "New address for {{ tenant_name }}", "body": "Open {{ link }} to use {{ email }}."})
    assert saved.status_code == 302
    acme.refresh_from_db()
    svc.app_user_update(actor=admin, tenant=acme, user_id=ann.pk, email="ann.new@example.test")
    mail = OutboxMessage.objects.get(to="ann.new@example.test", kind="email_change")
    assert mail.subject == "New address for Acme" and mail.body.startswith("Open http")
    assert mail.body.endswith("/ to use ann.new@example.test.")
