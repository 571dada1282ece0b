"""Issue 11, finding 5: live link tokens never sit in the outbox in clear, never reach a log,
and a HEAD on a link (mail scanners) answers like GET without using it."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import connection

from accounts.models import ActionToken
from accounts.tokens import token_issue, token_link
from outbox.models import OutboxMessage
from outbox.services import deliver, mail_enqueue
from portal.services.auth import link_request
from tenants import db as tenant_db
from tests.portal.conftest import APP_PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "cobalt-lantern-orchard-5"


def _path(link: str) -> str:
    return "/" + link.split("://", 1)[1].split("/", 1)[1]


@pytest.mark.parametrize("purpose", [ActionToken.Purpose.INVITE, ActionToken.Purpose.RECOVERY,
                                     ActionToken.Purpose.MAGIC_LINK])
def test_head_on_a_link_answers_like_get_and_uses_nothing(client, tenant, app_user, purpose):
    alias = tenant_db.using(tenant)
    token, raw = token_issue(tenant=tenant, user=app_user, purpose=purpose)
    path = _path(token_link(tenant, purpose, raw))
    for _ in range(3):
        head = client.head(path)
        assert head.status_code == 200, head.status_code
        assert head.content == b""
    assert client.get(path).status_code == 200
    token.refresh_from_db(using=alias)
    assert token.used_at is None and token.revoked_at is None
    # The link still does its job afterwards.
    if purpose == ActionToken.Purpose.MAGIC_LINK:
        assert client.post(path).status_code == 302
    else:
        done = client.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert done.status_code == 302
    token.refresh_from_db(using=alias)
    assert token.used_at is not None


def test_a_staff_invitation_link_answers_head_without_using_it(client, staff_factory):
    from accounts.services import staff as staff_services

    admin = staff_factory("root@console.test", superuser=True)
    staff_services.staff_invite(actor=admin, email="new@console.test", name="New One")
    body = OutboxMessage.objects.get(to="new@console.test").body
    path = _path(re.search(r"http://\S+/staff/accept/\S+/", body).group(0))
    assert client.head(path).status_code == 200
    assert client.get(path).status_code == 200


def _stored_body(msg) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM outbox_outboxmessage WHERE id = %s",
                       [msg.pk.hex if connection.vendor == "sqlite" else msg.pk])
        (stored,) = cursor.fetchone()
    return stored


def test_a_queued_mail_holds_no_raw_token_and_the_sent_one_still_works(
    settings, client, tenant, app_user
):
    """A mail with a live link (as an admin-started recovery queues) waits for the worker,
    encrypted at rest."""
    settings.OUTBOX_DELIVERY = "worker"
    settings.OUTBOX_KEEP_LINKS = False
    token, raw = token_issue(tenant=tenant, user=app_user, purpose=ActionToken.Purpose.RECOVERY)
    link = token_link(tenant, ActionToken.Purpose.RECOVERY, raw)
    msg = mail_enqueue(key="t1", to=app_user.email, subject="Reset", body=f"Open {link} now.",
                       kind="recovery", tenant=tenant)
    stored = _stored_body(msg)
    assert stored.startswith("enc1:")
    assert raw not in stored and "/recover/" not in stored
    msg.refresh_from_db()
    assert raw in msg.body  # the application reads it back
    assert deliver() == 1
    sent = mail.outbox[-1].body
    assert raw in sent
    msg.refresh_from_db()
    assert msg.status == OutboxMessage.Status.SENT and raw not in msg.body and "[removed]" in msg.body
    assert raw not in _stored_body(msg)
    done = client.post(_path(link), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302


def test_a_portal_link_request_queues_no_token_at_all(settings, client, tenant, app_user):
    """With the mail worker, "send me a link" writes an intent only; the token is made when
    the mail is sent, and that mail works."""
    settings.OUTBOX_DELIVERY = "worker"
    settings.OUTBOX_KEEP_LINKS = False
    link_request(tenant=tenant, email=app_user.email, purpose=ActionToken.Purpose.RECOVERY)
    msg = OutboxMessage.objects.get(to=app_user.email)
    assert msg.status == OutboxMessage.Status.QUEUED and msg.body == "" and msg.prepare
    assert not ActionToken.objects.using(tenant_db.using(tenant)).exists()
    assert deliver() == 1
    link = re.search(r"http://\S+/p/acme/recover/\S+/", mail.outbox[-1].body).group(0)
    msg.refresh_from_db()
    assert msg.status == OutboxMessage.Status.SENT and "[removed]" in msg.body and not msg.prepare
    done = client.post(_path(link), {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert APP_PASSWORD != NEW_PASSWORD
