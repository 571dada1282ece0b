"""Reads of the portal: a user's sessions and factors, and a tenant's impersonations."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import AppFactor, AppSession, AppUser
from portal.models import Impersonation
from tenants import db as tenant_db
from tenants.models import Tenant


def user_sessions(*, tenant: Tenant, user: AppUser) -> list[AppSession]:
    """The user's live sessions, most recently used first (at most 50)."""
    return list(
        AppSession.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .order_by("-last_seen_at")[:50]
    )


def user_factors(*, tenant: Tenant, user: AppUser) -> list[AppFactor]:
    return list(
        AppFactor.objects.using(tenant_db.using(tenant))
        .filter(user_id=user.pk, confirmed_at__isnull=False)
        .order_by("created_at")
    )


def impersonation_list(*, tenant: Tenant, limit: int = 200) -> tuple[list[Impersonation], list[Impersonation]]:
    """(active, past) impersonations of the tenant, by every admin, newest first."""
    now = timezone.now()
    qs: QuerySet[Impersonation] = Impersonation.objects.filter(tenant=tenant).select_related(
        "staff", "ended_by"
    )
    active = list(qs.filter(ended_at__isnull=True, expires_at__gt=now).order_by("-started_at")[:limit])
    past = list(qs.exclude(pk__in=[i.pk for i in active]).order_by("-started_at")[:limit])
    return active, past


def impersonation_get(*, tenant: Tenant, impersonation_id) -> Impersonation | None:
    return (
        Impersonation.objects.select_related("staff")
        .filter(tenant=tenant, pk=impersonation_id).first()
    )
