"""Webhook endpoints (per tenant, or instance-wide for tenant events), their deliveries (one per
endpoint and event: the log's unit of accounting) and every attempt of each."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import models
from django.utils import timezone

from events.models import Event
from outbox.fields import EncryptedTextField
from tenants.models import Tenant


class Endpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # A tenants.Tenant; null: an instance endpoint (tenant.* events of every tenant).
    tenant: models.ForeignKey[Tenant | None, Tenant | None] = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    url: models.CharField[str, str] = models.CharField(max_length=2000)
    description: models.CharField[str, str] = models.CharField(max_length=200, blank=True)
    # The event types chosen from the list; empty: every type of the endpoint's scope.
    event_types: models.JSONField = models.JSONField(default=list, blank=True)
    enabled: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    disabled_reason: models.CharField[str, str] = models.CharField(max_length=200, blank=True)
    # whsec_<base64 of 32 random bytes>; the previous one also signs until it expires (rotation).
    # Encrypted at rest (the database and its backups see ciphertext): they must be readable to
    # sign, so they cannot be hashed like API keys.
    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(blank=True)
    previous_secret_expires_at: models.DateTimeField[dt.datetime | None, dt.datetime | None] = (
        models.DateTimeField(null=True, blank=True)
    )
    # Since when every attempt has failed (cleared by a success): past the policy, disabled.
    failing_since: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    # No attempt before this (a receiver that is down is not hammered by every due delivery).
    paused_until: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    # The run_after of the task queued for this endpoint and not yet started (one at a time).
    wake_at: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    # One sender per endpoint (order per user): the run holding the lease, and until when.
    lease_owner: models.CharField[str, str] = models.CharField(max_length=40, blank=True)
    lease_until: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    created_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(default=timezone.now)
    updated_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "enabled"], name="endpoint_tenant")]

    def __str__(self) -> str:
        return self.url

    @property
    def scope(self) -> str:
        return "instance" if self.tenant_id is None else "tenant"


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"  # every retry used up

    id = models.BigAutoField(primary_key=True)
    endpoint: models.ForeignKey[Endpoint, Endpoint] = models.ForeignKey(
        Endpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event: models.ForeignKey[Event, Event] = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="+"
    )
    subject: models.CharField[str, str] = models.CharField(max_length=64, blank=True, default="")
    state: models.CharField[str, str] = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING
    )
    attempts: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    next_attempt_at: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    last_status: models.PositiveSmallIntegerField[int | None, int | None] = models.PositiveSmallIntegerField(
        null=True, blank=True
    )
    last_error: models.CharField[str, str] = models.CharField(max_length=300, blank=True)
    created_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(default=timezone.now)
    finished_at: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="delivery_once")]
        indexes = [
            models.Index(fields=["endpoint", "state", "event"], name="delivery_queue"),
            models.Index(fields=["endpoint", "-id"], name="delivery_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.state})"


class Attempt(models.Model):
    id = models.BigAutoField(primary_key=True)
    delivery: models.ForeignKey[Delivery, Delivery] = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()
    started_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(default=timezone.now)
    duration_ms: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    status_code: models.PositiveSmallIntegerField[int | None, int | None] = models.PositiveSmallIntegerField(
        null=True, blank=True
    )
    succeeded: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    # The first bytes of the answer (as text), or why there was none.
    response_head: models.CharField[str, str] = models.CharField(max_length=500, blank=True)
    error: models.CharField[str, str] = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=["delivery", "number"], name="attempt_delivery")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
