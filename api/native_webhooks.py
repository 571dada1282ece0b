"""Native API: a tenant's event feed (``GET /api/v1/tenants/<slug>/events?after=``, a cursor for
consumers that poll instead of receiving webhooks) and its webhook endpoints (CRUD, secret
rotation, test event, delivery log, replay). Endpoints need a personal token of a tenant admin:
a leaked service key must not be able to point the tenant's events at a server of its choosing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse

from api.http import ApiError
from api.native import BASE, ERRORS, caller_for, ok, router, tenant_for
from api.native_users import Envelope, Strict
from api.serializers import ts
from core.access import is_instance_admin
from events import selectors as event_selectors
from tenants.models import Tenant
from webhooks import selectors, services
from webhooks.models import Delivery, Endpoint

FEED = f"{BASE}/tenants/{{slug}}/events"
HOOKS = f"{BASE}/tenants/{{slug}}/webhooks"
IHOOKS = f"{BASE}/webhooks"  # the instance's endpoints: tenant.* events of every tenant


def _endpoint(e: Endpoint) -> dict[str, Any]:
    return {"id": str(e.pk), "url": e.url, "description": e.description, "event_types": e.event_types,
            "enabled": e.enabled, "disabled_reason": e.disabled_reason or None,
            "failing_since": ts(e.failing_since), "previous_secret_valid_until": ts(e.previous_secret_expires_at),
            "created_at": ts(e.created_at), "updated_at": ts(e.updated_at)}


def _delivery(d: Delivery) -> dict[str, Any]:
    return {"id": d.pk, "event_id": d.event.uid, "event_type": d.event.type, "state": d.state,
            "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error or None,
            "next_attempt_at": ts(d.next_attempt_at) if d.state == Delivery.State.PENDING else None,
            "created_at": ts(d.created_at), "finished_at": ts(d.finished_at)}


def _admin(request: HttpRequest, slug: str | None) -> tuple[Any, Tenant | None]:
    """A tenant admin's personal token for the tenant's endpoints, an instance admin's for the
    instance's (``slug`` None)."""
    caller = caller_for(request, keys_allowed=False)
    if slug is None:
        if not is_instance_admin(caller.actor):
            raise ApiError(403, "not_admin", "Instance admins only.")
        return caller.actor, None
    return caller.actor, tenant_for(request, caller, slug, "manage_webhooks")


def _base(tenant: Tenant | None) -> str:
    return IHOOKS if tenant is None else f"{BASE}/tenants/{tenant.slug}/webhooks"


def _uuid(value: str, what: str = "webhook endpoint") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ApiError(404, "not_found", f"No such {what}.") from exc


@router.get(FEED, response={200: Envelope, **ERRORS}, tags=["events"], operation_id="native_events")
def event_feed(request: HttpRequest, slug: str, after: str | None = None, limit: int = 100,
               type: str | None = None) -> HttpResponse:  # noqa: A002 - the query parameter's name
    """The tenant's events oldest first, after the cursor ``after`` (an event id ``evt_...`` or a
    sequence number; ``meta.next_cursor`` of the previous page). Ids follow commit order within a
    tenant, so passing the last cursor back never misses an event. ``type``: comma-separated."""
    caller = caller_for(request)
    tenant = tenant_for(request, caller, slug, "view_audit")
    if not 1 <= limit <= event_selectors.FEED_MAX:
        raise ApiError(422, "validation_failed", f"limit must be between 1 and {event_selectors.FEED_MAX}")
    types = [t.strip() for t in (type or "").split(",") if t.strip()] or None
    try:
        events, cursor = event_selectors.event_feed(tenant=tenant, after=after, limit=limit, types=types)
    except ValueError as exc:
        raise ApiError(422, "validation_failed", str(exc)) from exc
    return ok([event_selectors.event_document(e) for e in events],
              extra_meta={"limit": limit, "next_cursor": cursor or after})


class EndpointIn(Strict):
    url: str
    event_types: list[str] = []
    description: str = ""
    enabled: bool = True


class EndpointPatch(Strict):
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


class ReplayIn(Strict):
    since: dt.datetime
    failed_only: bool = True


# Each operation is written once (``_op(request, slug_or_None, ...)``) and routed twice below: under
# the tenant's path and, for instance admins, under /api/v1/webhooks.
R = {**ERRORS}


def _list(request: HttpRequest, slug: str | None) -> HttpResponse:
    _actor, tenant = _admin(request, slug)
    return ok([{**_endpoint(e), "delivered": e.delivered, "pending": e.pending,  # type: ignore[attr-defined]
                "failed": e.failed} for e in selectors.endpoint_list(tenant=tenant)])  # type: ignore[attr-defined]


def _create(request: HttpRequest, slug: str | None, body: EndpointIn) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    endpoint, secret = services.endpoint_create(actor=actor, tenant=tenant, url=body.url,
                                                event_types=body.event_types, description=body.description,
                                                enabled=body.enabled)
    return ok({**_endpoint(endpoint), "secret": secret}, status=201,
              headers={"Location": f"{_base(tenant)}/{endpoint.pk}"})


def _get(request: HttpRequest, slug: str | None, endpoint_id: str) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    return ok(_endpoint(services.endpoint_get(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))))


def _update(request: HttpRequest, slug: str | None, endpoint_id: str, body: EndpointPatch) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    current = services.endpoint_get(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))
    endpoint = services.endpoint_update(
        actor=actor, tenant=tenant, endpoint_id=current.pk,
        url=current.url if body.url is None else body.url,
        event_types=current.event_types if body.event_types is None else body.event_types,
        description=current.description if body.description is None else body.description,
        enabled=current.enabled if body.enabled is None else body.enabled,
    )
    return ok(_endpoint(endpoint))


def _delete(request: HttpRequest, slug: str | None, endpoint_id: str) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    services.endpoint_delete(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))
    return ok({})


def _rotate(request: HttpRequest, slug: str | None, endpoint_id: str) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    secret = services.endpoint_rotate_secret(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))
    endpoint = services.endpoint_get(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))
    return ok({**_endpoint(endpoint), "secret": secret})


def _test(request: HttpRequest, slug: str | None, endpoint_id: str) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    return ok(_delivery(services.endpoint_send_test(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))),
              status=202)


def _deliveries(request: HttpRequest, slug: str | None, endpoint_id: str, cursor: int | None,
                state: str) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    endpoint = services.endpoint_get(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))
    rows = selectors.delivery_page(endpoint=endpoint, before=cursor, state=state)
    more = str(rows[-1].pk) if len(rows) == selectors.PAGE else None
    return ok([_delivery(d) for d in rows], extra_meta={"limit": selectors.PAGE, "next_cursor": more})


def _delivery_get(request: HttpRequest, slug: str | None, endpoint_id: str, delivery_id: int) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    endpoint = services.endpoint_get(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id))
    delivery = selectors.delivery_find(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", "No such delivery.")
    attempts = [{"number": a.number, "started_at": ts(a.started_at), "duration_ms": a.duration_ms,
                 "status_code": a.status_code, "succeeded": a.succeeded, "response_head": a.response_head,
                 "error": a.error or None} for a in selectors.attempt_list(delivery=delivery)]
    return ok({**_delivery(delivery), "payload": delivery.event.payload, "attempt_log": attempts})


def _delivery_replay(request: HttpRequest, slug: str | None, endpoint_id: str, delivery_id: int) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    delivery = services.delivery_replay(actor=actor, tenant=tenant, endpoint_id=_uuid(endpoint_id),
                                        delivery_id=delivery_id)
    return ok(_delivery(delivery), status=202)


def _replay(request: HttpRequest, slug: str | None, endpoint_id: str, body: ReplayIn) -> HttpResponse:
    actor, tenant = _admin(request, slug)
    count = services.deliveries_replay(actor=actor, tenant=tenant, since=body.since, failed_only=body.failed_only,
                                       endpoint_id=_uuid(endpoint_id))
    return ok({"queued": count}, status=202)


TAGS = ["webhooks"]
ONE = HOOKS + "/{endpoint_id}"
IONE = IHOOKS + "/{endpoint_id}"

# The tenant's endpoints.
@router.get(HOOKS, response={200: Envelope, **R}, tags=TAGS, operation_id="native_webhooks")
def list_t(request: HttpRequest, slug: str) -> HttpResponse:
    """The endpoints with their delivery counts (never a secret)."""
    return _list(request, slug)


@router.post(HOOKS, response={201: Envelope, **R}, tags=TAGS, operation_id="native_webhook_create")
def create_t(request: HttpRequest, slug: str, body: EndpointIn) -> HttpResponse:
    """Creates the endpoint; ``data.secret`` (``whsec_...``) is in this answer only."""
    return _create(request, slug, body)


@router.get(ONE, response={200: Envelope, **R}, tags=TAGS, operation_id="native_webhook_get")
def get_t(request: HttpRequest, slug: str, endpoint_id: str) -> HttpResponse:
    return _get(request, slug, endpoint_id)


@router.patch(ONE, response={200: Envelope, **R}, tags=TAGS, operation_id="native_webhook_update")
def update_t(request: HttpRequest, slug: str, endpoint_id: str, body: EndpointPatch) -> HttpResponse:
    return _update(request, slug, endpoint_id, body)


@router.delete(ONE, response={200: Envelope, **R}, tags=TAGS, operation_id="native_webhook_delete")
def delete_t(request: HttpRequest, slug: str, endpoint_id: str) -> HttpResponse:
    return _delete(request, slug, endpoint_id)


@router.post(ONE + "/rotate-secret", response={200: Envelope, **R}, tags=TAGS, operation_id="native_webhook_rotate")
def rotate_t(request: HttpRequest, slug: str, endpoint_id: str) -> HttpResponse:
    """A new secret (in this answer only); the previous one keeps signing for 24 hours."""
    return _rotate(request, slug, endpoint_id)


@router.post(ONE + "/test", response={202: Envelope, **R}, tags=TAGS, operation_id="native_webhook_test")
def test_t(request: HttpRequest, slug: str, endpoint_id: str) -> HttpResponse:
    return _test(request, slug, endpoint_id)


@router.get(ONE + "/deliveries", response={200: Envelope, **R}, tags=TAGS, operation_id="native_webhook_deliveries")
def deliveries_t(request: HttpRequest, slug: str, endpoint_id: str, cursor: int | None = None,
                 state: str = "") -> HttpResponse:
    """The delivery log, newest first (``meta.next_cursor``)."""
    return _deliveries(request, slug, endpoint_id, cursor, state)


@router.get(ONE + "/deliveries/{delivery_id}", response={200: Envelope, **R}, tags=TAGS,
            operation_id="native_webhook_delivery")
def delivery_t(request: HttpRequest, slug: str, endpoint_id: str, delivery_id: int) -> HttpResponse:
    """One delivery with every attempt (status, duration, the first bytes of the answer)."""
    return _delivery_get(request, slug, endpoint_id, delivery_id)


@router.post(ONE + "/deliveries/{delivery_id}/replay", response={202: Envelope, **R}, tags=TAGS,
             operation_id="native_webhook_delivery_replay")
def delivery_replay_t(request: HttpRequest, slug: str, endpoint_id: str, delivery_id: int) -> HttpResponse:
    return _delivery_replay(request, slug, endpoint_id, delivery_id)


@router.post(ONE + "/replay", response={202: Envelope, **R}, tags=TAGS, operation_id="native_webhook_replay")
def replay_t(request: HttpRequest, slug: str, endpoint_id: str, body: ReplayIn) -> HttpResponse:
    """Every event since ``since`` sent again under its id (only those whose last attempt
    failed, unless ``failed_only`` is false)."""
    return _replay(request, slug, endpoint_id, body)


# The instance's endpoints (instance admins' personal tokens).
@router.get(IHOOKS, response={200: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhooks")
def list_i(request: HttpRequest) -> HttpResponse:
    return _list(request, None)


@router.post(IHOOKS, response={201: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhook_create")
def create_i(request: HttpRequest, body: EndpointIn) -> HttpResponse:
    return _create(request, None, body)


@router.get(IONE, response={200: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhook_get")
def get_i(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    return _get(request, None, endpoint_id)


@router.patch(IONE, response={200: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhook_update")
def update_i(request: HttpRequest, endpoint_id: str, body: EndpointPatch) -> HttpResponse:
    return _update(request, None, endpoint_id, body)


@router.delete(IONE, response={200: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhook_delete")
def delete_i(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    return _delete(request, None, endpoint_id)


@router.post(IONE + "/rotate-secret", response={200: Envelope, **R}, tags=TAGS,
             operation_id="native_instance_webhook_rotate")
def rotate_i(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    return _rotate(request, None, endpoint_id)


@router.post(IONE + "/test", response={202: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhook_test")
def test_i(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    return _test(request, None, endpoint_id)


@router.get(IONE + "/deliveries", response={200: Envelope, **R}, tags=TAGS,
            operation_id="native_instance_webhook_deliveries")
def deliveries_i(request: HttpRequest, endpoint_id: str, cursor: int | None = None,
                 state: str = "") -> HttpResponse:
    return _deliveries(request, None, endpoint_id, cursor, state)


@router.get(IONE + "/deliveries/{delivery_id}", response={200: Envelope, **R}, tags=TAGS,
            operation_id="native_instance_webhook_delivery")
def delivery_i(request: HttpRequest, endpoint_id: str, delivery_id: int) -> HttpResponse:
    return _delivery_get(request, None, endpoint_id, delivery_id)


@router.post(IONE + "/deliveries/{delivery_id}/replay", response={202: Envelope, **R}, tags=TAGS,
             operation_id="native_instance_webhook_delivery_replay")
def delivery_replay_i(request: HttpRequest, endpoint_id: str, delivery_id: int) -> HttpResponse:
    return _delivery_replay(request, None, endpoint_id, delivery_id)


@router.post(IONE + "/replay", response={202: Envelope, **R}, tags=TAGS, operation_id="native_instance_webhook_replay")
def replay_i(request: HttpRequest, endpoint_id: str, body: ReplayIn) -> HttpResponse:
    return _replay(request, None, endpoint_id, body)
