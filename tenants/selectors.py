from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from core.text import search_term
from tenants.models import Tenant


def _listed(*, include_purged: bool, query: str) -> Q:
    where = Q() if include_purged else ~Q(status=Tenant.Status.PURGED)
    query = search_term(query)
    if query:
        where &= Q(slug__icontains=query) | Q(name__icontains=query) | Q(db_name__icontains=query)
    return where


def tenant_list(*, include_purged: bool = False, query: str = "") -> QuerySet[Tenant]:
    """Tenants, default first then by slug (index ``tenant_list_order``); ``query``: slug, name
    or database name contains it."""
    return Tenant.objects.filter(_listed(include_purged=include_purged, query=query)).order_by("-is_default", "slug")


def tenant_list_counts(*, latest: dict, include_purged: bool = False, query: str = "") -> tuple[int, int]:
    """How many tenants ``tenant_list`` gives, and how many usable tenants have a recorded
    schema other than ``latest`` (the page's two figures: one query)."""
    counts = Tenant.objects.aggregate(
        total=Count("pk", filter=_listed(include_purged=include_purged, query=query)),
        behind=Count("pk", filter=Q(status__in=Tenant.VISIBLE_STATUSES) & ~Q(schema_version=latest)),
    )
    return counts["total"], counts["behind"]


def tenant_get(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()
