"""The mail outbox: enqueue inside the caller's transaction, deliver after commit, retry later."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from core.redaction import redact_tokens
from outbox.models import OutboxMessage

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10


def redact_links(body: str) -> str:
    """The body with every link token blanked (what production keeps and shows): the portal's
    /p/<slug>/accept|recover|magic/<token>/, a staff invitation's /staff/accept/<token>/."""
    return redact_tokens(body)


def keeps_links() -> bool:
    return bool(getattr(settings, "OUTBOX_KEEP_LINKS", False))


def delivers_inline() -> bool:
    """"inline": sent right after the transaction commits, inside the request. "worker": left
    queued for ``manage.py deliver_mail --loop``, so no request waits for (or is timed by) SMTP."""
    return getattr(settings, "OUTBOX_DELIVERY", "inline") == "inline"


@dataclass(frozen=True)
class Mail:
    key: str
    to: str
    subject: str
    body: str
    kind: str
    from_email: str = ""


@dataclass(frozen=True)
class Prepared:
    """What a preparer makes of an intent: the real message."""

    to: str
    subject: str
    body: str
    kind: str


# name → preparer(message, argument) -> Prepared | None (None: nothing to send, the row goes).
# Registered by the apps above (AppConfig.ready): the outbox imports none of them.
_PREPARERS: dict[str, Callable[[OutboxMessage, str], Prepared | None]] = {}


def register_preparer(name: str, preparer: Callable[[OutboxMessage, str], Prepared | None]) -> None:
    _PREPARERS[name] = preparer


def _prepare(message: OutboxMessage) -> bool:
    """Run the message's preparer (inside the caller's transaction). False: dropped (deleted)."""
    name, _, argument = message.prepare.partition(":")
    prepared = _PREPARERS[name](message, argument)
    if prepared is None:
        message.delete()
        return False
    message.to, message.subject, message.body, message.kind = (
        prepared.to, prepared.subject[:300], prepared.body, prepared.kind
    )
    message.prepare = ""
    message.save(update_fields=["to", "subject", "body", "kind", "prepare"])
    return True


def mail_enqueue(
    *, key: str, to: str, subject: str, body: str, kind: str, tenant=None, from_email: str = "",
    prepare: str = "",
) -> OutboxMessage:
    """Queue one message (idempotent by ``key``) and deliver it once the transaction commits.

    ``prepare``: the message is an intent completed at delivery by that preparer. With inline
    delivery (development) it is prepared at once; with the mail worker (production) the
    request that queued it did nothing else, whatever the preparer will find.
    """
    message, _ = OutboxMessage.objects.using(DEFAULT_DB_ALIAS).get_or_create(
        key=key,
        defaults={
            "to": to, "subject": subject[:300], "body": body, "kind": kind,
            "tenant": tenant, "from_email": from_email, "prepare": prepare,
        },
    )
    if message.status == OutboxMessage.Status.QUEUED and delivers_inline():
        if message.prepare:
            with transaction.atomic(using=DEFAULT_DB_ALIAS):
                if not _prepare(message):
                    return message
        transaction.on_commit(lambda: deliver([message.pk]), using=DEFAULT_DB_ALIAS)
    return message


def mail_enqueue_many(mails: Iterable[Mail], *, tenant=None) -> int:
    """Queue many messages with one bulk insert (batches); existing keys are left alone."""
    rows = [
        OutboxMessage(
            key=m.key, to=m.to, subject=m.subject[:300], body=m.body, kind=m.kind,
            tenant=tenant, from_email=m.from_email,
        )
        for m in mails
    ]
    if not rows:
        return 0
    OutboxMessage.objects.using(DEFAULT_DB_ALIAS).bulk_create(
        rows, batch_size=500, ignore_conflicts=True
    )
    keys = [r.key for r in rows]
    if delivers_inline():
        transaction.on_commit(lambda: deliver_keys(keys), using=DEFAULT_DB_ALIAS)
    return len(rows)


def deliver_keys(keys: list[str]) -> int:
    ids = list(
        OutboxMessage.objects.filter(key__in=keys, status=OutboxMessage.Status.QUEUED)
        .values_list("pk", flat=True)
    )
    return deliver(ids)


def deliver(ids: list | None = None, *, limit: int = 500) -> int:
    """Send queued messages (the given ones, or the oldest ``limit``). Returns how many were sent.

    Each message is claimed under a row lock and marked sent in the same transaction as the
    send, so two workers never send the same message twice.
    """
    qs = OutboxMessage.objects.filter(status=OutboxMessage.Status.QUEUED, attempts__lt=MAX_ATTEMPTS)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    pending = list(qs.order_by("created_at").values_list("pk", flat=True)[:limit])
    if not pending:
        return 0
    sent = 0
    connection = get_connection(fail_silently=False)
    try:
        for pk in pending:
            with transaction.atomic():
                msg = (
                    OutboxMessage.objects.select_for_update(skip_locked=True)
                    .filter(pk=pk, status=OutboxMessage.Status.QUEUED)
                    .first()
                )
                if msg is None:
                    continue
                if msg.prepare:
                    try:
                        with transaction.atomic():  # a savepoint: a failed preparer undoes itself
                            kept = _prepare(msg)
                        if not kept:
                            continue
                    except Exception as exc:  # noqa: BLE001 - stays queued; retried like a send
                        log.warning("Mail %s could not be prepared: %s", msg.pk, exc)
                        msg.attempts += 1
                        msg.last_error = f"prepare: {exc}"[:2000]
                        if msg.attempts >= MAX_ATTEMPTS:
                            msg.status = OutboxMessage.Status.FAILED
                        msg.save(update_fields=["attempts", "last_error", "status"])
                        continue
                msg.attempts += 1
                try:
                    EmailMessage(
                        subject=msg.subject,
                        body=msg.body,
                        from_email=msg.from_email or settings.DEFAULT_FROM_EMAIL,
                        to=[msg.to],
                        headers={"X-Idempotency-Key": msg.key},
                        connection=connection,
                    ).send()
                except Exception as exc:  # noqa: BLE001 - stays queued; deliver_mail retries
                    log.warning("Mail %s to %s failed: %s", msg.pk, msg.to, exc)
                    msg.last_error = str(exc)[:2000]
                    if msg.attempts >= MAX_ATTEMPTS:
                        msg.status = OutboxMessage.Status.FAILED
                    msg.save(update_fields=["attempts", "last_error", "status"])
                    continue
                msg.status = OutboxMessage.Status.SENT
                msg.sent_at = timezone.now()
                msg.last_error = ""
                if not keeps_links():
                    msg.body = redact_links(msg.body)
                msg.save(update_fields=["attempts", "status", "sent_at", "last_error", "body"])
                sent += 1
    finally:
        connection.close()
    return sent
