from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from core.emails import EMAIL_MAX_LENGTH
from outbox.fields import EncryptedTextField


class OutboxMessage(models.Model):
    """A message written in the same transaction as the change that causes it; sent after commit.

    ``key`` makes enqueueing idempotent: the same key never produces a second message, so a
    retried request or batch never mails twice.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=40, db_index=True)  # invite, recovery, magic_link, staff_invite
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    from_email = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=300)
    # Encrypted at rest: until it is sent, a body holds a live link token (finding 5, issue 11).
    body = EncryptedTextField()
    # Non-empty: the message is an intent, written by a request that must not do (or be timed
    # doing) the work; the registered preparer named here ("name:argument") fills in the mail at
    # delivery, or drops it (outbox.services.register_preparer).
    prepare = models.CharField(max_length=60, blank=True, default="")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="outbox_pending")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to}"
