"""The event outbox: one row per user-visible change, written in the same transaction as its audit
entry (``audit`` calls ``events.services.emit``). The source of webhooks and of the API's feed."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import models
from django.utils import timezone


def new_uid() -> str:
    return f"evt_{uuid.uuid4().hex}"


class Event(models.Model):
    # The id is the event's place in its tenant's sequence: writers of one tenant hold the lock of
    # its audit chain head while they insert, so within a tenant ids follow commit order.
    id = models.BigAutoField(primary_key=True)
    # The stable id a receiver de-duplicates on (the ``webhook-id`` header); a replay reuses it.
    uid: models.CharField[str, str] = models.CharField(max_length=40, unique=True, default=new_uid)
    type: models.CharField[str, str] = models.CharField(max_length=60)
    # A tenants.Tenant (named by label: events sit below tenants); null for instance events.
    tenant: models.ForeignKey[models.Model | None, models.Model | None] = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        db_index=False,
    )
    # Whose events must arrive in order (the app user's id); "" when order does not matter.
    subject: models.CharField[str, str] = models.CharField(max_length=64, blank=True, default="")
    # What is sent: {"type", "timestamp", "data"}. Never a secret (see events.services).
    payload: models.JSONField = models.JSONField()
    audit_entry_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )
    created_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "id"], name="event_tenant_seq"),
            models.Index(fields=["tenant", "created_at"], name="event_tenant_time"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.uid}"
