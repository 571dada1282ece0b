"""The one audit trail: django-auditlog's entry, with the columns this product filters on.

``AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"``: auditlog writes its automatic entries for the
control-plane models here, and ``audit.services.record()`` writes the tenant-side ones.
"""

from __future__ import annotations

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.db import models


class AuditEntryManager(LogEntryManager):
    def log_create(self, instance, force_log: bool = False, **kwargs):
        # auditlog's automatic entries: derive the columns we filter on from the instance.
        label = instance._meta.model_name
        action = kwargs.get("action")
        verb = {0: "create", 1: "update", 2: "delete", 3: "access"}.get(action, "change")
        kwargs.setdefault("event", f"{instance._meta.app_label}.{label}.{verb}")
        tenant_id = getattr(instance, "audit_tenant_id", None)
        if tenant_id is None and instance._meta.label_lower == "tenants.tenant":
            tenant_id = instance.pk
        elif tenant_id is None:
            tenant_id = getattr(instance, "tenant_id", None)
        kwargs.setdefault("tenant_id", tenant_id)
        return super().log_create(instance, force_log=force_log, **kwargs)


class AuditEntry(AbstractLogEntry):
    # What happened, as "<entity>.<verb>" ("app_user.ban", "staff.login_failed", ...).
    event = models.CharField(max_length=80, db_index=True)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,  # tenants are never deleted from the control database
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    impersonator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    objects = AuditEntryManager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "-timestamp", "-id"], name="audit_tenant_time"),
            models.Index(fields=["actor", "-timestamp", "-id"], name="audit_actor_time"),
            models.Index(fields=["object_pk", "-timestamp"], name="audit_target_time"),
            models.Index(fields=["-timestamp", "-id"], name="audit_time"),
            models.Index(
                fields=["-timestamp", "-id"],
                name="audit_impersonated",
                condition=models.Q(impersonator__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.object_repr}"
