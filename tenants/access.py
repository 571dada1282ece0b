"""An actor's role in a tenant: the one lookup behind every tenant gate and service check."""

from __future__ import annotations

from typing import Any

from core.access import TenantRole, is_instance_admin, role_can
from tenants.models import Tenant, TenantAdmin

VISIBLE_STATUSES = Tenant.VISIBLE_STATUSES


def actor_role(actor: Any, tenant: Tenant) -> str | None:
    """The actor's effective role in the tenant: ``admin`` for instance admins, else the
    assignment's role, else ``None`` (not assigned: the tenant must look like it does not exist).

    Cached on the actor object for the rest of the request.
    """
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_active:
        return None
    scope = getattr(actor, "tenant_scope", None)
    if scope is not None:  # a tenant service key: its role in its own tenant, nothing elsewhere
        tenant_id, role = scope
        return role if tenant_id == tenant.pk else None
    if is_instance_admin(actor):
        return TenantRole.ADMIN
    cached: dict | None = getattr(actor, "_tenant_roles", None)
    if cached is None:
        cached = {}
        actor._tenant_roles = cached
    if tenant.pk not in cached:
        cached[tenant.pk] = (
            TenantAdmin.objects.filter(user=actor, tenant=tenant).values_list("role", flat=True).first()
        )
    return cached[tenant.pk]


def visible_tenant_and_role(actor: Any, slug: str) -> tuple[Tenant | None, str | None]:
    """The visible tenant with this slug and the actor's role in it, in one query (the gate's
    lookup on every tenant page): a staff member's assignment is joined in as a subquery and
    kept in ``actor_role``'s per-request cache."""
    from django.db.models import OuterRef, Subquery

    tenants = Tenant.objects.filter(slug=slug, status__in=VISIBLE_STATUSES)
    plain_staff = (
        actor is not None and getattr(actor, "is_authenticated", False) and actor.is_active
        and getattr(actor, "tenant_scope", None) is None and not is_instance_admin(actor)
    )
    if not plain_staff:
        tenant = tenants.first()
        return tenant, actor_role(actor, tenant) if tenant is not None else None
    assigned = TenantAdmin.objects.filter(user=actor, tenant=OuterRef("pk")).values("role")[:1]
    tenant = tenants.annotate(actor_role=Subquery(assigned)).first()
    if tenant is None:
        return None, None
    cached: dict | None = getattr(actor, "_tenant_roles", None)
    if cached is None:
        cached = {}
        actor._tenant_roles = cached
    cached[tenant.pk] = tenant.actor_role
    return tenant, cached[tenant.pk]


def can(actor: Any, tenant: Tenant, action: str) -> bool:
    """Whether ``actor`` may perform ``action`` in ``tenant`` (role only; no target rules)."""
    return role_can(actor_role(actor, tenant), action)

