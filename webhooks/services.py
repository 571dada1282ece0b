"""Webhook endpoints and their deliveries: every write, audited, permission checked here.

``tenant=None`` is an instance endpoint (tenant events of every tenant): instance admins only.
``actor=None`` is the operator at the command line (``manage.py webhooks``).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from core.access import is_instance_admin
from core.errors import Invalid, NotFound, Refused
from core.text import UNSTORABLE
from events import services as events
from events.models import Event
from tenants.access import can
from tenants.models import Tenant
from webhooks import sender
from webhooks.delivery import wake
from webhooks.models import Delivery, Endpoint

ROTATION_OVERLAP = dt.timedelta(hours=24)
URL_MAX = 2000
DESCRIPTION_MAX = 200
_URL_FIELDS = ("url", "description", "event_types", "enabled")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _authorize(actor: Any, tenant: Tenant | None) -> None:
    if actor is None:
        return  # the operator's command line
    allowed = is_instance_admin(actor) if tenant is None else can(actor, tenant, "manage_webhooks")
    if not allowed:
        raise Refused("Only the tenant's admins manage its webhooks.", code="role")


def clean_url(value: str) -> str:
    url = str(value or "").strip()
    if not url or len(url) > URL_MAX or UNSTORABLE.search(url) or any(c.isspace() for c in url):
        raise Invalid(f"Enter the endpoint's URL (at most {URL_MAX} characters, no spaces).",
                      code="url_invalid", field="url")
    parts = urlsplit(url)
    # HTTPS in production, unless private targets are allowed (a local receiver, tests).
    https_only = bool(getattr(settings, "PRODUCTION", False)) and not sender.allow_private()
    schemes = {"https"} if https_only else {"https", "http"}
    if parts.scheme not in schemes or not parts.hostname:
        raise Invalid("The URL must start with https://" + ("" if https_only else " (or http://)")
                      + " and name a host.", code="url_scheme", field="url")
    if parts.username or parts.password:
        raise Invalid("Put no user name or password in the URL: the signature authenticates.",
                      code="url_credentials", field="url")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise Invalid("The URL's port is not valid.", code="url_port", field="url") from exc
    if not sender.allow_private() and sender.literal_private(parts.hostname):
        raise Invalid("Private, loopback and link-local addresses are not allowed as webhook targets.",
                      code="private_target", field="url")
    return url


def _clean_types(values: Iterable[str], tenant: Tenant | None) -> list[str]:
    try:
        return events.clean_types(values, scope="instance" if tenant is None else "tenant")
    except ValueError as exc:
        raise Invalid(f"Unknown event type: {exc}.", code="unknown_event_type", field="event_types") from exc


def _clean_description(value: str) -> str:
    text = " ".join(str(value or "").split())
    if len(text) > DESCRIPTION_MAX or UNSTORABLE.search(text):
        raise Invalid(f"The description has at most {DESCRIPTION_MAX} characters.", code="description_invalid",
                      field="description")
    return text


def _snapshot(endpoint: Endpoint) -> dict[str, Any]:
    return audit.snapshot(endpoint, _URL_FIELDS)


def _record(event: str, *, actor: Any, endpoint: Endpoint, action: int = audit.UPDATE,
            before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
            data: dict[str, Any] | None = None) -> None:
    audit.record(
        event=event, actor=actor, tenant=endpoint.tenant, target=endpoint, target_repr=endpoint.url[:200],
        action=action, before=before, after=after, data={"endpoint": str(endpoint.pk), **(data or {})},
    )


def endpoint_get(*, actor: Any, tenant: Tenant | None, endpoint_id: Any) -> Endpoint:
    """The endpoint of this tenant (or instance); another tenant's answers like a missing one."""
    _authorize(actor, tenant)
    endpoint = Endpoint.objects.filter(pk=endpoint_id, tenant=tenant).select_related("tenant").first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="endpoint_not_found")
    return endpoint


def endpoint_create(
    *, actor: Any, tenant: Tenant | None, url: str, event_types: Iterable[str] = (),
    description: str = "", enabled: bool = True,
) -> tuple[Endpoint, str]:
    """A new endpoint and its secret (``whsec_...``), which the caller shows once."""
    _authorize(actor, tenant)
    endpoint = Endpoint(
        tenant=tenant, url=clean_url(url), event_types=_clean_types(event_types, tenant),
        description=_clean_description(description), enabled=bool(enabled), secret=new_secret(),
    )
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoint.save()
        _record("webhook.endpoint_create", actor=actor, endpoint=endpoint, action=audit.CREATE,
                after=_snapshot(endpoint))
    return endpoint, endpoint.secret


def endpoint_update(
    *, actor: Any, tenant: Tenant | None, endpoint_id: Any, url: str, event_types: Iterable[str],
    description: str, enabled: bool,
) -> Endpoint:
    cleaned = {"url": clean_url(url), "event_types": _clean_types(event_types, tenant),
               "description": _clean_description(description), "enabled": bool(enabled)}
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoint = endpoint_get(actor=actor, tenant=tenant, endpoint_id=endpoint_id)
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _snapshot(endpoint)
        changed = {k: v for k, v in cleaned.items() if getattr(endpoint, k) != v}
        if not changed:
            return endpoint
        for key, value in changed.items():
            setattr(endpoint, key, value)
        if changed.get("enabled"):
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
            endpoint.paused_until = None
        endpoint.updated_at = timezone.now()
        endpoint.save()
        _record("webhook.endpoint_update", actor=actor, endpoint=endpoint, before=before,
                after=_snapshot(endpoint))
        if endpoint.enabled:
            wake(endpoint.pk, force=bool(changed.get("enabled")))
    return endpoint


def endpoint_delete(*, actor: Any, tenant: Tenant | None, endpoint_id: Any) -> None:
    """Removes the endpoint with its delivery log (the events themselves stay)."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoint = endpoint_get(actor=actor, tenant=tenant, endpoint_id=endpoint_id)
        before = _snapshot(endpoint)
        _record("webhook.endpoint_delete", actor=actor, endpoint=endpoint, action=audit.DELETE,
                before=before)
        endpoint.delete()


def endpoint_rotate_secret(*, actor: Any, tenant: Tenant | None, endpoint_id: Any) -> str:
    """A new secret; the old one keeps signing (beside it) for 24 hours, then stops."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoint = endpoint_get(actor=actor, tenant=tenant, endpoint_id=endpoint_id)
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        now = timezone.now()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.secret = new_secret()
        endpoint.updated_at = now
        endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at", "secret", "updated_at"])
        _record("webhook.secret_rotate", actor=actor, endpoint=endpoint,
                data={"previous_valid_until": endpoint.previous_secret_expires_at})
    return endpoint.secret


def endpoint_secret_reveal(*, actor: Any, tenant: Tenant | None, endpoint_id: Any) -> str:
    """The signing secret, shown to an admin on request (audited)."""
    endpoint = endpoint_get(actor=actor, tenant=tenant, endpoint_id=endpoint_id)
    _record("webhook.secret_reveal", actor=actor, endpoint=endpoint, action=audit.ACCESS)
    return endpoint.secret


def endpoint_send_test(*, actor: Any, tenant: Tenant | None, endpoint_id: Any) -> Delivery:
    """A ``webhook.test`` event, delivered to this endpoint only (and not in the event feed)."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoint = endpoint_get(actor=actor, tenant=tenant, endpoint_id=endpoint_id)
        event = events.event_create(
            type=events.TEST_TYPE, tenant=tenant,
            data={"tenant": tenant.slug if tenant is not None else None, "endpoint": str(endpoint.pk),
                  "message": "A test event sent from the console."},
        )
        delivery = Delivery.objects.create(endpoint=endpoint, event=event, next_attempt_at=timezone.now())
        _record("webhook.test_send", actor=actor, endpoint=endpoint, action=audit.ACCESS,
                data={"event": event.uid})
        wake(endpoint.pk, force=True)
    return delivery


def _resend(deliveries: list[Delivery]) -> int:
    now = timezone.now()
    ids = [d.pk for d in deliveries]
    Delivery.objects.filter(pk__in=ids).update(
        state=Delivery.State.PENDING, next_attempt_at=now, finished_at=None
    )
    return len(ids)


def delivery_replay(*, actor: Any, tenant: Tenant | None, endpoint_id: Any, delivery_id: Any) -> Delivery:
    """Send one delivery again (its event under the same id), whatever its state."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoint = endpoint_get(actor=actor, tenant=tenant, endpoint_id=endpoint_id)
        delivery = Delivery.objects.filter(pk=delivery_id, endpoint=endpoint).select_related("event").first()
        if delivery is None:
            raise NotFound("No such delivery.", code="delivery_not_found")
        _resend([delivery])
        _record("webhook.replay", actor=actor, endpoint=endpoint, data={"deliveries": 1,
                                                                       "event": delivery.event.uid})
        wake(endpoint.pk, force=True)
    delivery.refresh_from_db()
    return delivery


def _failed_last(qs):
    """Deliveries whose last attempt failed (given up, or waiting for a retry)."""
    return qs.filter(Q(state=Delivery.State.FAILED) | Q(state=Delivery.State.PENDING, attempts__gt=0))


def deliveries_replay(
    *, actor: Any, tenant: Tenant | None, since: dt.datetime, failed_only: bool,
    endpoint_id: Any = None,
) -> int:
    """Re-send the events since ``since`` (of one endpoint, or of every endpoint of the tenant)
    under their original ids: only those whose last attempt failed, or every one (events an
    endpoint never had a delivery for get one). Returns how many deliveries were queued."""
    if timezone.is_naive(since):
        raise Invalid("Give the time with its zone (e.g. 2026-12-01T10:00:00Z).", code="naive_time",
                      field="since")
    _authorize(actor, tenant)
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        endpoints = list(Endpoint.objects.filter(tenant=tenant).select_related("tenant"))
        if endpoint_id is not None:
            endpoints = [e for e in endpoints if str(e.pk) == str(endpoint_id)]
            if not endpoints:
                raise NotFound("No such webhook endpoint.", code="endpoint_not_found")
        total = 0
        from webhooks.fanout import wants

        for endpoint in endpoints:
            queued = 0
            existing = Delivery.objects.filter(endpoint=endpoint, event__created_at__gte=since)
            if failed_only:
                chosen = list(_failed_last(existing))
            else:
                chosen = list(existing.exclude(state=Delivery.State.PENDING, attempts=0))
                have = set(existing.values_list("event_id", flat=True))
                scope = Event.objects.filter(created_at__gte=since)
                scope = scope.filter(tenant=tenant) if tenant is not None else scope
                missing = [
                    Delivery(endpoint=endpoint, event=e, subject=e.subject, next_attempt_at=timezone.now())
                    for e in scope.exclude(pk__in=have).order_by("id").iterator()
                    if wants(endpoint, e)
                ]
                Delivery.objects.bulk_create(missing, batch_size=1000, ignore_conflicts=True)
                queued += len(missing)
            queued += _resend(chosen)
            total += queued
            _record("webhook.replay", actor=actor, endpoint=endpoint,
                    data={"since": since, "failed_only": failed_only, "deliveries": queued})
            wake(endpoint.pk, force=True)
    return total


def events_prune(*, actor: Any, before: dt.datetime, batch: int = 5000) -> int:
    """Delete the events written before ``before`` (with their deliveries and attempt logs),
    except those with a delivery still pending. The audit trail keeps every change; this is
    the outbox's retention. Returns how many events went."""
    if timezone.is_naive(before):
        raise Invalid("Give the time with its zone.", code="naive_time", field="before")
    _authorize(actor, None)
    pending = Delivery.objects.filter(state=Delivery.State.PENDING).values("event_id")
    total = 0
    while True:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            ids = list(Event.objects.filter(created_at__lt=before).exclude(pk__in=pending)
                       .order_by("id").values_list("pk", flat=True)[:batch])
            if not ids:
                break
            Event.objects.filter(pk__in=ids).delete()
            total += len(ids)
    if total:
        audit.record(event="events.prune", actor=actor, tenant=None, target_model=Event, target_pk="",
                     target_repr=f"{total} events", action=audit.DELETE,
                     data={"before": before, "events": total})
    return total
