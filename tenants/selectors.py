from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import Tenant


def tenant_list(*, include_purged: bool = False) -> QuerySet[Tenant]:
    qs = Tenant.objects.all().order_by("-is_default", "slug")
    if not include_purged:
        qs = qs.exclude(status=Tenant.Status.PURGED)
    return qs


def tenant_get(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()
