from __future__ import annotations

from django.db.models import Q, QuerySet

from core.text import search_term
from tenants.models import Tenant


def tenant_list(*, include_purged: bool = False, query: str = "") -> QuerySet[Tenant]:
    """Tenants, default first then by slug; ``query``: slug, name or database name contains it."""
    qs = Tenant.objects.all().order_by("-is_default", "slug")
    if not include_purged:
        qs = qs.exclude(status=Tenant.Status.PURGED)
    query = search_term(query)
    if query:
        qs = qs.filter(Q(slug__icontains=query) | Q(name__icontains=query) | Q(db_name__icontains=query))
    return qs


def tenants_behind(*, latest: dict) -> int:
    """How many usable tenants have a recorded schema other than ``latest`` (one query)."""
    return Tenant.objects.filter(status__in=Tenant.VISIBLE_STATUSES).exclude(schema_version=latest).count()


def tenant_get(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()
