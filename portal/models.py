"""Control-database records of the tenant portal: impersonations.

An impersonation ties a staff member (control database) to an app user and an ``AppSession``
(tenant database) by id only: Django has no cross-database foreign keys.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Impersonation(models.Model):
    class EndReason(models.TextChoices):
        STOPPED = "stopped", "Stopped by the impersonator"
        ENDED_BY_ADMIN = "ended_by_admin", "Ended by an admin"
        EXPIRED = "expired", "Expired"
        SESSION_ENDED = "session_ended", "Session ended elsewhere"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="impersonations"
    )
    app_user_id = models.UUIDField()
    app_user_email = models.CharField(max_length=254)
    reason = models.CharField(max_length=500)
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    session_id = models.UUIDField(null=True, blank=True)  # accounts.AppSession in the tenant DB

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # One running impersonation per staff member, whatever the number of workers.
            models.UniqueConstraint(
                fields=["staff"],
                condition=models.Q(ended_at__isnull=True),
                name="impersonation_one_open_per_staff",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-started_at"], name="impersonation_tenant"),
            models.Index(
                fields=["expires_at"],
                name="impersonation_open",
                condition=models.Q(ended_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id} as {self.app_user_email}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None and self.expires_at > timezone.now()
