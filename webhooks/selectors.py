"""Reading endpoints and their delivery log (always through the endpoint's tenant)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from tenants.models import Tenant
from webhooks.models import Attempt, Delivery, Endpoint

PAGE = 50


def endpoint_list(*, tenant: Tenant | None) -> list[Endpoint]:
    return list(
        Endpoint.objects.filter(tenant=tenant).order_by("created_at").annotate(
            delivered=Count("deliveries", filter=Q(deliveries__state=Delivery.State.SUCCEEDED)),
            pending=Count("deliveries", filter=Q(deliveries__state=Delivery.State.PENDING)),
            failed=Count("deliveries", filter=Q(deliveries__state=Delivery.State.FAILED)),
        )
    )


def endpoint_find(*, tenant: Tenant | None, endpoint_id: Any) -> Endpoint | None:
    return Endpoint.objects.filter(pk=endpoint_id, tenant=tenant).first()


def delivery_page(*, endpoint: Endpoint, before: int | None = None, state: str = "") -> list[Delivery]:
    """Newest first, ``PAGE`` at a time (keyset on the id)."""
    qs = Delivery.objects.filter(endpoint=endpoint).select_related("event").order_by("-id")
    if before:
        qs = qs.filter(id__lt=before)
    if state in Delivery.State.values:
        qs = qs.filter(state=state)
    return list(qs[:PAGE])


def delivery_find(*, endpoint: Endpoint, delivery_id: int) -> Delivery | None:
    return Delivery.objects.filter(pk=delivery_id, endpoint=endpoint).select_related("event").first()


def attempt_list(*, delivery: Delivery) -> list[Attempt]:
    return list(Attempt.objects.filter(delivery=delivery).order_by("-number"))
