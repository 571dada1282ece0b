"""Keeps tenant models in tenant databases and everything else in the control database."""

from __future__ import annotations

from accounts.models import TENANT_MODEL_LABELS
from tenants.db import is_tenant_alias


class TenantAliasRequired(RuntimeError):
    """A tenant model was queried without ``.using(tenant alias)``: a bug, never a fallback."""


def is_tenant_model(model) -> bool:
    """``model`` is a model class or instance (``request.user`` is a lazy proxy of one). The
    database cache routes a bare stand-in model whose ``_meta`` has no ``label_lower``."""
    return getattr(getattr(model, "_meta", None), "label_lower", None) in TENANT_MODEL_LABELS


class TenantRouter:
    def _db_for(self, model, **hints):
        if not is_tenant_model(model):
            return None
        instance = hints.get("instance")
        db = getattr(getattr(instance, "_state", None), "db", None)
        if is_tenant_alias(db):
            return db
        raise TenantAliasRequired(
            f"{model._meta.label} lives in tenant databases: query it with "
            f".using(tenant.db_alias); it never falls back to the control database."
        )

    def db_for_read(self, model, **hints):
        return self._db_for(model, **hints)

    def db_for_write(self, model, **hints):
        return self._db_for(model, **hints)

    def allow_relation(self, obj1, obj2, **hints):
        if is_tenant_model(obj1) or is_tenant_model(obj2):
            return obj1._state.db == obj2._state.db
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        tenant_db = is_tenant_alias(db)
        if model_name is not None:
            return (f"{app_label}.{model_name}" in TENANT_MODEL_LABELS) == tenant_db
        if hints.get("tenant"):
            return tenant_db
        return not tenant_db
