from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest

from console.staff_session import is_verified
from core.access import is_instance_admin
from tenants.models import Tenant, TenantAdmin


def console(request: HttpRequest) -> dict[str, Any]:
    """The header's tenant switcher: the tenants the signed-in staff member can reach, with role."""
    user = getattr(request, "user", None)
    if user is None or not is_verified(user):
        return {}

    @functools.cache  # evaluated lazily, at most once per request (the header reads it thrice)
    def reachable() -> list[dict[str, str]]:
        if user.is_superuser:
            return [
                {"slug": t.slug, "name": t.name, "role": "admin", "status": t.status}
                for t in Tenant.objects.filter(status__in=Tenant.VISIBLE_STATUSES).order_by("-is_default", "name")[:200]
            ]
        rows = (
            TenantAdmin.objects.filter(user=user, tenant__status__in=Tenant.VISIBLE_STATUSES)
            .select_related("tenant")
            .order_by("tenant__name")
        )
        return [
            {"slug": r.tenant.slug, "name": r.tenant.name, "role": r.role, "status": r.tenant.status}
            for r in rows
        ]

    return {"nav_tenants": reachable, "nav_is_instance_admin": is_instance_admin(user)}
