"""Keeps tenant models in tenant databases and everything else in the control database."""

from __future__ import annotations

import functools
from typing import Any

from tenants.db import is_tenant_alias


class TenantAliasRequired(RuntimeError):
    """A tenant model was queried without ``.using(tenants.db.using(tenant))``: a bug, never a
    fallback to the control database."""


def is_tenant_model(model: Any) -> bool:
    """``model`` is a model class or instance (``request.user`` is a lazy proxy of one) of a
    ``tenants.models.TenantModel``. The database cache routes a bare stand-in without one."""
    return bool(getattr(model, "lives_in_tenant_database", False))


@functools.cache
def tenant_model_labels() -> frozenset[str]:
    """``app_label.model_name`` of every tenant model (migrations route historical models, which
    keep no class attributes, by label)."""
    from django.apps import apps

    return frozenset(m._meta.label_lower for m in apps.get_models() if is_tenant_model(m))


class TenantRouter:
    def _db_for(self, model: Any, **hints: Any) -> str | None:
        if not is_tenant_model(model):
            return None
        instance = hints.get("instance")
        db = getattr(getattr(instance, "_state", None), "db", None)
        if is_tenant_alias(db):
            return db
        raise TenantAliasRequired(
            f"{model._meta.label} lives in tenant databases: query it with "
            ".using(tenants.db.using(tenant)); it never falls back to the control database."
        )

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self._db_for(model, **hints)

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self._db_for(model, **hints)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        if is_tenant_model(obj1) or is_tenant_model(obj2):
            return bool(obj1._state.db == obj2._state.db)
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        tenant_db = is_tenant_alias(db)
        if model_name is not None:
            return (f"{app_label}.{model_name}" in tenant_model_labels()) == tenant_db
        if hints.get("tenant"):
            return tenant_db
        return not tenant_db
