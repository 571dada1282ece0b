"""Fan-out: each event just written gets one delivery per enabled endpoint that wants it, in the
same transaction (``events.services.subscribe``), and each such endpoint a queued run."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q
from django.utils import timezone

from core import pgcopy
from events.models import Event
from events.services import INSTANCE_SCOPE_TYPES, TEST_TYPE
from webhooks.models import Delivery, Endpoint

_INSTANCE = frozenset(INSTANCE_SCOPE_TYPES)
_COPY_COLUMNS = ("endpoint_id", "event_id", "subject", "state", "attempts", "next_attempt_at", "last_error",
                 "created_at")


def wants(endpoint: Endpoint, event: Event) -> bool:
    if event.type == TEST_TYPE:
        return False  # a test event goes to the one endpoint it was sent to
    if endpoint.tenant_id is None:
        in_scope = event.type in _INSTANCE
    else:
        in_scope = event.tenant_id == endpoint.tenant_id and event.type not in _INSTANCE
    return in_scope and (not endpoint.event_types or event.type in endpoint.event_types)


def on_events(events: list[Event]) -> None:
    from webhooks.delivery import wake

    tenant_ids = {e.tenant_id for e in events if e.tenant_id is not None}
    endpoints = list(
        Endpoint.objects.using(DEFAULT_DB_ALIAS).filter(enabled=True)
        .filter(Q(tenant_id__in=tenant_ids) | Q(tenant__isnull=True))
        .only("id", "tenant_id", "event_types", "wake_at")
    )
    if not endpoints:
        return
    now = timezone.now()
    pairs = [(endpoint.pk, event) for endpoint in endpoints for event in events if wants(endpoint, event)]
    if not pairs:
        return
    if pgcopy.copies(len(pairs)):
        pgcopy.copy_rows(Delivery._meta.db_table, _COPY_COLUMNS, (
            [endpoint_id, event.pk, event.subject, Delivery.State.PENDING, 0, now, "", now]
            for endpoint_id, event in pairs))
    else:
        Delivery.objects.using(DEFAULT_DB_ALIAS).bulk_create(
            [Delivery(endpoint_id=endpoint_id, event_id=event.pk, subject=event.subject, next_attempt_at=now)
             for endpoint_id, event in pairs], batch_size=1000, ignore_conflicts=True)
    queued = {e.pk for e in endpoints if e.wake_at is not None and e.wake_at <= now}  # a run is due already
    for endpoint_id in {endpoint_id for endpoint_id, _ in pairs} - queued:
        wake(endpoint_id, at=now)
