"""The one audit trail: django-auditlog's entry, with the columns this product filters on.

``AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"``: auditlog writes its automatic entries for the
control-plane models here, and ``audit.services.record()`` writes the tenant-side ones.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

_VERBS = {0: "create", 1: "update", 2: "delete", 3: "access"}


class AuditEntryManager(LogEntryManager):
    def log_create(self, instance: models.Model, force_log: bool = False, **kwargs: Any) -> Any:
        # auditlog's automatic entries: derive the columns we filter on from the instance.
        label = instance._meta.model_name
        action = kwargs.get("action")
        verb = _VERBS.get(action, "change") if isinstance(action, int) else "change"
        kwargs.setdefault("event", f"{instance._meta.app_label}.{label}.{verb}")
        tenant_id = getattr(instance, "audit_tenant_id", None)
        if tenant_id is None and instance._meta.label_lower == "tenants.tenant":
            tenant_id = instance.pk
        elif tenant_id is None:
            tenant_id = getattr(instance, "tenant_id", None)
        kwargs.setdefault("tenant_id", tenant_id)
        return super().log_create(instance, force_log=force_log, **kwargs)


class AuditEntry(AbstractLogEntry):
    # auditlog indexes several columns one by one; the composite indexes in Meta serve every
    # lookup this product makes, and each index dropped makes batch inserts cheaper.
    # (auditlog ships no types, so the fields are annotated here: its base class is opaque.)
    content_type: models.ForeignKey[ContentType, ContentType] = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE, related_name="+",
        verbose_name="content type", db_index=False,
    )
    object_pk: models.CharField[str, str] = models.CharField(max_length=255, verbose_name="object pk")
    object_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        blank=True, null=True, verbose_name="object id"
    )
    action: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=AbstractLogEntry.Action.choices, verbose_name="action"
    )
    actor: models.ForeignKey[AbstractBaseUser | None, AbstractBaseUser | None] = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, blank=True, null=True,
        related_name="+", verbose_name="actor", db_index=False,
    )
    timestamp: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(
        default=timezone.now, verbose_name="timestamp"
    )
    # What happened, as "<entity>.<verb>" ("app_user.ban", "staff.login_failed", ...).
    event: models.CharField[str, str] = models.CharField(max_length=80)
    # A tenants.Tenant: the audit layer sits below tenants and names it by label only.
    tenant: models.ForeignKey[models.Model | None, models.Model | None] = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,  # tenants are never deleted from the control database
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    impersonator: models.ForeignKey[AbstractBaseUser | None, AbstractBaseUser | None] = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the partial index "audit_impersonated" serves the filter
    )

    objects = AuditEntryManager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "-timestamp", "-id"], name="audit_tenant_time"),
            models.Index(fields=["actor", "-timestamp", "-id"], name="audit_actor_time"),
            models.Index(fields=["object_pk", "-timestamp"], name="audit_target_time"),
            models.Index(fields=["event", "-timestamp"], name="audit_event_time"),
            models.Index(fields=["-timestamp", "-id"], name="audit_time"),
            models.Index(
                fields=["-timestamp", "-id"],
                name="audit_impersonated",
                condition=models.Q(impersonator__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.object_repr}"
