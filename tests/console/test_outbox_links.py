from __future__ import annotations

import pytest

from outbox.models import OutboxMessage
from outbox.services import deliver, mail_enqueue, redact_links

pytestmark = pytest.mark.django_db

BODY = (
    "Accept: http://c.test/p/acme/accept/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcd/\n"
    "Staff: http://c.test/staff/accept/ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210-_zyxw/\n"
)


def test_redact_blanks_every_link_token():
    text = redact_links(BODY)
    assert "AbCdEf" not in text and "ZYXWV" not in text
    assert text.count("[removed]") == 2 and "/p/acme/accept/" in text


def test_production_blanks_tokens_once_sent_and_never_shows_them(settings, staff_factory, as_staff, django_capture_on_commit_callbacks):
    settings.OUTBOX_KEEP_LINKS = False
    with django_capture_on_commit_callbacks(execute=False):
        msg = mail_enqueue(key="k1", to="a@b.test", subject="Hi", body=BODY, kind="invite")
    client = as_staff(staff_factory(superuser=True))
    queued = client.get(f"/mail/{msg.pk}/").content.decode()
    assert "AbCdEf" not in queued and "[removed]" in queued  # not shown, even while queued
    assert deliver([msg.pk]) == 1
    msg.refresh_from_db()
    assert msg.status == OutboxMessage.Status.SENT and "AbCdEf" not in msg.body


def test_development_keeps_links_to_follow_them(settings, staff_factory, as_staff, django_capture_on_commit_callbacks):
    settings.OUTBOX_KEEP_LINKS = True
    with django_capture_on_commit_callbacks(execute=True):
        msg = mail_enqueue(key="k2", to="a@b.test", subject="Hi", body=BODY, kind="invite")
    msg.refresh_from_db()
    assert msg.status == OutboxMessage.Status.SENT and "AbCdEf" in msg.body
    page = as_staff(staff_factory(superuser=True)).get(f"/mail/{msg.pk}/").content.decode()
    assert "AbCdEf" in page


def test_worker_delivery_leaves_mail_queued_for_the_worker(settings, django_capture_on_commit_callbacks):
    from io import StringIO

    from django.core import mail
    from django.core.management import call_command

    settings.OUTBOX_DELIVERY = "worker"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        msg = mail_enqueue(key="k3", to="w@b.test", subject="Hi", body="x", kind="invite")
    assert callbacks == [] and len(mail.outbox) == 0
    msg.refresh_from_db()
    assert msg.status == OutboxMessage.Status.QUEUED
    out = StringIO()
    call_command("deliver_mail", "--loop", "--max-rounds", "1", "--interval", "0", stdout=out)
    msg.refresh_from_db()
    assert msg.status == OutboxMessage.Status.SENT and len(mail.outbox) == 1
    assert "Sent 1 message(s); 0 still queued." in out.getvalue()
