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
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.utils import timezone

from audit import chain
from events import services as events

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
    # PROTECT, not SET_NULL: clearing the actor of old entries would rewrite the hash-chained
    # trail. Staff members are deactivated, never deleted.
    actor: models.ForeignKey[AbstractBaseUser | None, AbstractBaseUser | None] = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, blank=True, null=True,
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
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # the partial index "audit_impersonated" serves the filter
    )

    # The hash chain (audit.chain): the previous entry's hash in this entry's chain, and this
    # entry's own, over that and its canonical content. Set when the entry is inserted.
    prev_hash: models.CharField[str, str] = models.CharField(max_length=64, blank=True, default="")
    hash: models.CharField[str, str] = models.CharField(max_length=64, blank=True, default="")

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
            # Walking one chain in order (audit verify, the viewer's chain state, prune).
            models.Index(fields=["tenant", "id"], name="audit_chain"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.object_repr}"

    def _save_table(self, raw: bool = False, cls: Any = None, force_insert: bool = False,
                    force_update: bool = False, using: str | None = None,
                    update_fields: Any = None) -> bool:
        """Chain every new entry, whoever saves it (``audit.record``, or auditlog's own
        ``log_create`` for the control-plane models). Here, not in ``save()``: auditlog's
        request context fills the actor and the address in a ``pre_save`` receiver, and the
        hash must cover the values that are stored."""
        if not self._state.adding or self.pk is not None or raw:
            return super()._save_table(raw, cls, force_insert, force_update, using, update_fields)
        using = using or DEFAULT_DB_ALIAS
        with transaction.atomic(using=using, savepoint=False):
            heads = chain.link([self], using=using)
            inserted = super()._save_table(raw, cls, force_insert, force_update, using, update_fields)
            chain.advance(heads, last_ids={chain.chain_key(self.tenant_id): self.pk}, using=using)
            events.emit([self])  # the change's event, in the same transaction
        return inserted


class ChainHead(models.Model):
    """The newest entry of one audit chain (a tenant's, or ``"instance"``), its anchor, and how
    far the viewer has verified it. Writers lock this row; see ``audit.chain``."""

    key: models.CharField[str, str] = models.CharField(max_length=40, primary_key=True)
    head_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(null=True, blank=True)
    head_hash: models.CharField[str, str] = models.CharField(max_length=64, default=chain.GENESIS)
    # Entries up to anchor_id were archived and pruned; the first one left links to anchor_hash.
    anchor_id: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    anchor_hash: models.CharField[str, str] = models.CharField(max_length=64, default=chain.GENESIS)
    verified_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(null=True, blank=True)
    verified_hash: models.CharField[str, str] = models.CharField(max_length=64, blank=True, default="")
    broken_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(null=True, blank=True)
    broken_reason: models.CharField[str, str] = models.CharField(max_length=200, blank=True, default="")
    checked_at: models.DateTimeField[dt.datetime | None, dt.datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    updated_at: models.DateTimeField[dt.datetime, dt.datetime] = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"audit chain {self.key}"
