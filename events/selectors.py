"""Reading events: the cursor feed of one tenant (``GET /api/v1/tenants/<slug>/events?after=``)."""

from __future__ import annotations

from typing import Any

from events.models import Event
from events.services import INSTANCE_SCOPE_TYPES, TEST_TYPE

FEED_MAX = 500


def event_feed(*, tenant: Any, after: str | int | None = None, limit: int = 100,
               types: list[str] | None = None) -> tuple[list[Event], str | None]:
    """The tenant's events after the cursor (an event's ``uid`` or its sequence number), oldest
    first, and the cursor of the last one (``None`` when there is none). Within a tenant ids
    follow commit order, so a poller that always passes the last cursor misses nothing.
    ``ValueError`` for a cursor that names no event of this tenant."""
    limit = max(1, min(int(limit), FEED_MAX))
    # The tenant's own scope (its lifecycle events go to instance endpoints), never test events.
    qs = Event.objects.filter(tenant=tenant).exclude(type__in=(TEST_TYPE, *INSTANCE_SCOPE_TYPES)).order_by("id")
    if after is not None and after != "":
        qs = qs.filter(id__gt=_sequence(tenant, after))
    if types:
        qs = qs.filter(type__in=types)
    events = list(qs[:limit])
    return events, (events[-1].uid if events else None)


def _sequence(tenant: Any, cursor: str | int) -> int:
    text = str(cursor).strip()
    if text.isdigit():
        return int(text)
    found = Event.objects.filter(tenant=tenant, uid=text).values_list("id", flat=True).first()
    if found is None:
        raise ValueError("after: no such event in this tenant")
    return found


def event_document(event: Event) -> dict[str, Any]:
    """What the feed shows of one event: its id, sequence, and the payload a webhook carries."""
    return {"id": event.uid, "sequence": event.pk, "type": event.type,
            "timestamp": event.payload.get("timestamp"), "data": event.payload.get("data", {})}
