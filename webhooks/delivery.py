"""Delivering an endpoint's events: one run at a time per endpoint (a lease), oldest event first,
a user's events in order, each attempt logged, retries with backoff, and the endpoint disabled
(its admins told) after failing without a break for ``WEBHOOKS_DISABLE_AFTER_HOURS``.

A run is the task ``webhooks.tasks.deliver_endpoint`` on the job runner (queue ``webhooks``). It
is safe to run twice and to be killed at any point: a delivery is marked done only in the
transaction that logs its successful attempt, so a run killed mid-request leaves it pending and
the next run sends it again under the same ``webhook-id`` (at least once; receivers de-duplicate).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit import services as audit
from events.models import Event
from outbox.services import mail_enqueue
from tenants.models import TenantAdmin
from webhooks import sender
from webhooks.models import Attempt, Delivery, Endpoint

log = logging.getLogger("webhooks")
DEFAULT_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds before each retry
BREAK_AFTER = 3  # failures in a row that end a run (the receiver looks down)
FETCH = 200


def schedule() -> tuple[float, ...]:
    return tuple(float(s) for s in getattr(settings, "WEBHOOKS_RETRY_SCHEDULE", DEFAULT_SCHEDULE))


def lease_seconds() -> float:
    return float(getattr(settings, "WEBHOOKS_LEASE_SECONDS", 60))


def slice_seconds() -> float:
    return float(getattr(settings, "WEBHOOKS_SLICE_SECONDS", 20))


def disable_after() -> dt.timedelta:
    return dt.timedelta(hours=float(getattr(settings, "WEBHOOKS_DISABLE_AFTER_HOURS", 120)))


def body_of(event: Event) -> bytes:
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()


def signing_secrets(endpoint: Endpoint, *, now: dt.datetime) -> list[str]:
    """The current secret, and the previous one while its 24 hours of overlap last."""
    secrets = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def signed_headers(endpoint: Endpoint, event: Event, body: bytes, *, now: dt.datetime) -> dict[str, str]:
    """Standard Webhooks headers: the event's stable id, the time, one v1 signature per secret."""
    at = now.astimezone(dt.UTC)
    text = body.decode()
    signatures = [Webhook(s).sign(event.uid, at, text) for s in signing_secrets(endpoint, now=now)]
    return {
        "webhook-id": event.uid,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "Content-Type": "application/json",
        "User-Agent": "AdminConsole-Webhooks/1",
    }


# --- waking a run ------------------------------------------------------------------------------

def wake(endpoint_id: Any, *, at: dt.datetime | None = None, force: bool = False) -> bool:
    """Queue a run of the endpoint at ``at`` (now by default) unless one is already queued for
    that time or earlier. Inside the caller's transaction: the task commits with it."""
    from webhooks.tasks import deliver_endpoint

    now = timezone.now()
    at = max(at or now, now)
    rows = Endpoint.objects.filter(pk=endpoint_id)
    if not force:
        rows = rows.filter(Q(wake_at__isnull=True) | Q(wake_at__gt=at))
    if not rows.update(wake_at=at):
        return False
    task = deliver_endpoint if at <= now else deliver_endpoint.using(run_after=at)
    task.enqueue(str(endpoint_id))
    return True


def resume_stalled(*, grace_seconds: float = 60) -> int:
    """Endpoints with deliveries due and no run alive or queued (a task lost to a crash before
    it could queue its successor): queue a run. The job worker's reaper calls it."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=grace_seconds)
    due = (
        Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=stale,
                                endpoint__enabled=True)
        .filter(Q(endpoint__lease_until__isnull=True) | Q(endpoint__lease_until__lt=now))
        .filter(Q(endpoint__wake_at__isnull=True) | Q(endpoint__wake_at__lt=stale))
        .values_list("endpoint_id", flat=True).distinct()
    )
    woken = 0
    for endpoint_id in list(due)[:500]:
        with transaction.atomic():
            woken += wake(endpoint_id, force=True)
    return woken


# --- one run ------------------------------------------------------------------------------------

def _acquire(endpoint_id: Any, owner: str) -> bool:
    now = timezone.now()
    return bool(
        Endpoint.objects.filter(pk=endpoint_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner))
        .update(lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease_seconds()))
    )


def _renew(endpoint_id: Any, owner: str) -> bool:
    until = timezone.now() + dt.timedelta(seconds=lease_seconds())
    return bool(Endpoint.objects.filter(pk=endpoint_id, lease_owner=owner).update(lease_until=until))


def _release(endpoint_id: Any, owner: str) -> None:
    Endpoint.objects.filter(pk=endpoint_id, lease_owner=owner).update(lease_owner="", lease_until=None)


def _blocked(endpoint: Endpoint, now: dt.datetime) -> dict[str, int]:
    """Per user, the oldest event still waiting for a retry: their later events wait behind it."""
    rows = (
        Delivery.objects.filter(endpoint=endpoint, state=Delivery.State.PENDING, next_attempt_at__gt=now)
        .exclude(subject="").values("subject").annotate(first=Min("event_id"))
    )
    return {r["subject"]: r["first"] for r in rows}


def _notify_disabled(endpoint: Endpoint) -> None:
    tenant = endpoint.tenant
    if tenant is not None:
        emails = list(
            TenantAdmin.objects.filter(tenant=tenant, role=TenantAdmin.Role.ADMIN, user__is_active=True)
            .values_list("user__email", flat=True)
        )
        where = f"tenant {tenant.slug}"
    else:
        emails = list(get_user_model().objects.filter(is_superuser=True, is_active=True)
                      .values_list("email", flat=True))
        where = "the instance"
    since = endpoint.failing_since.isoformat() if endpoint.failing_since else ""
    for email in emails:
        mail_enqueue(
            key=f"webhook-disabled:{endpoint.pk}:{since}:{email}", to=email, kind="webhook_disabled",
            tenant=tenant,
            subject=f"Webhook endpoint disabled: {endpoint.url}"[:300],
            body=(
                f"The webhook endpoint {endpoint.url} of {where} failed every delivery since {since} "
                f"and has been disabled. Its events are kept: fix the receiver, enable the endpoint "
                f"again in the console, and replay the failed deliveries."
            ),
        )


def _outcome(endpoint: Endpoint, delivery: Delivery, *, number: int, started: dt.datetime,
             answer: sender.Answer | None, error: str) -> bool:
    """Log the attempt and move the delivery (and the endpoint's failure run) on."""
    ok = answer is not None and 200 <= answer.status < 300
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Not waiting for the WAL flush: a database crash may lose the last few outcomes, and
            # those deliveries are sent again (at least once, same ids), never lost.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        Attempt.objects.create(
            delivery=delivery, number=number, started_at=started,
            duration_ms=answer.duration_ms if answer else int((now - started).total_seconds() * 1000),
            status_code=answer.status if answer else None, succeeded=ok,
            response_head=answer.head if answer else "", error=error[:300],
        )
        delivery.attempts = number
        delivery.last_status = answer.status if answer else None
        delivery.last_error = "" if ok else (error or f"HTTP {answer.status if answer else '?'}")[:300]
        if ok:
            delivery.state = Delivery.State.SUCCEEDED
            delivery.next_attempt_at = None
            delivery.finished_at = now
            if endpoint.failing_since is not None or endpoint.paused_until is not None:
                Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None, paused_until=None)
                endpoint.failing_since = endpoint.paused_until = None
        else:
            delays = schedule()
            if number > len(delays):
                delivery.state = Delivery.State.FAILED
                delivery.next_attempt_at = None
                delivery.finished_at = now
            else:
                delivery.next_attempt_at = now + dt.timedelta(seconds=delays[number - 1])
            if endpoint.failing_since is None:
                endpoint.failing_since = now
                Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=now)
            elif now - endpoint.failing_since >= disable_after() and endpoint.enabled:
                _disable(endpoint)
        delivery.save(update_fields=["attempts", "last_status", "last_error", "state", "next_attempt_at",
                                     "finished_at"])
    return ok


def _disable(endpoint: Endpoint) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = "Failed without a break for too long."
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason=endpoint.disabled_reason,
                                                   updated_at=timezone.now())
    audit.record(
        event="webhook.endpoint_disabled", actor=None, tenant=endpoint.tenant, target=endpoint,
        target_repr=endpoint.url[:200], data={"failing_since": endpoint.failing_since},
    )
    _notify_disabled(endpoint)
    log.warning("Webhook endpoint %s disabled after failing since %s", endpoint.pk, endpoint.failing_since)


def attempt(endpoint: Endpoint, delivery: Delivery, *, pool: sender.Pool | None = None) -> bool:
    """Send one delivery now and log it. True when the receiver answered 2xx."""
    event = delivery.event
    body = body_of(event)
    started = timezone.now()
    answer: sender.Answer | None = None
    error = ""
    try:
        answer = sender.post(endpoint.url, body, signed_headers(endpoint, event, body, now=started), pool=pool)
    except sender.SendError as exc:
        error = str(exc)
    if answer is not None and not 200 <= answer.status < 300:
        error = f"HTTP {answer.status}"
    return _outcome(endpoint, delivery, number=delivery.attempts + 1, started=started, answer=answer,
                    error=error)


def run(endpoint_id: Any, *, owner: str | None = None, budget: float | None = None) -> dict[str, Any]:
    """Deliver what is due for one endpoint, for at most ``budget`` seconds; then queue the next
    run (now if work is left, else at the next retry). Returns counts."""
    owner = owner or uuid.uuid4().hex
    budget = slice_seconds() if budget is None else budget
    now = timezone.now()
    Endpoint.objects.filter(pk=endpoint_id, wake_at__lte=now).update(wake_at=None)  # this task
    if not _acquire(endpoint_id, owner):
        holder = Endpoint.objects.filter(pk=endpoint_id).values_list("lease_until", flat=True).first()
        if holder is not None:
            with transaction.atomic():  # the holder may be dead: look again when its lease ends
                wake(endpoint_id, at=holder + dt.timedelta(seconds=1))
        return {"sent": 0, "failed": 0, "state": "busy"}
    sent = failed = 0
    state = "done"
    pool = sender.Pool()
    try:
        endpoint = Endpoint.objects.select_related("tenant").filter(pk=endpoint_id).first()
        if endpoint is None or not endpoint.enabled:
            return {"sent": 0, "failed": 0, "state": "disabled"}
        stop_at = time.monotonic() + budget
        renew_at = time.monotonic() + lease_seconds() / 3
        in_a_row = 0
        after = 0
        while endpoint.paused_until is None or endpoint.paused_until <= timezone.now():
            now = timezone.now()
            blocked = _blocked(endpoint, now)
            batch = list(
                Delivery.objects.filter(endpoint=endpoint, state=Delivery.State.PENDING,
                                        next_attempt_at__lte=now, event_id__gt=after)
                .select_related("event").order_by("event_id")[:FETCH]
            )
            if not batch:
                break
            for delivery in batch:
                after = delivery.event_id
                first = blocked.get(delivery.subject)
                if first is not None and delivery.event_id > first:
                    continue  # an earlier event of this user waits for its retry
                ok = attempt(endpoint, delivery, pool=pool)
                if ok:
                    sent += 1
                    in_a_row = 0
                else:
                    failed += 1
                    in_a_row += 1
                    if delivery.subject and delivery.state == Delivery.State.PENDING:
                        blocked.setdefault(delivery.subject, delivery.event_id)
                if not endpoint.enabled:
                    return {"sent": sent, "failed": failed, "state": "disabled"}
                if in_a_row >= BREAK_AFTER:
                    pause = delivery.next_attempt_at or (timezone.now() + dt.timedelta(seconds=schedule()[0]))
                    Endpoint.objects.filter(pk=endpoint.pk).update(paused_until=pause)
                    endpoint.paused_until = pause
                    state = "paused"
                    break
                if time.monotonic() >= stop_at:
                    state = "sliced"
                    break
                if time.monotonic() >= renew_at:  # the lease is renewed long before it runs out
                    renew_at = time.monotonic() + lease_seconds() / 3
                    if not _renew(endpoint.pk, owner):
                        state = "sliced"
                        break
            if state != "done":
                break
    finally:
        pool.close()
        _release(endpoint_id, owner)
        _queue_next(endpoint_id)
    return {"sent": sent, "failed": failed, "state": state}


def _queue_next(endpoint_id: Any) -> None:
    endpoint = Endpoint.objects.filter(pk=endpoint_id, enabled=True).first()
    if endpoint is None:
        return
    pending = Delivery.objects.filter(endpoint=endpoint, state=Delivery.State.PENDING)
    first = pending.aggregate(at=Min("next_attempt_at"))["at"]
    if first is None:
        return
    if endpoint.paused_until is not None:
        first = max(first, endpoint.paused_until)
    with transaction.atomic():
        wake(endpoint_id, at=first)


def run_until_idle(endpoint_id: Any, *, rounds: int = 100) -> dict[str, int]:
    """Run the endpoint again and again in this process while something is due (tests, bench)."""
    totals = {"sent": 0, "failed": 0}
    for _ in range(rounds):
        outcome = run(endpoint_id, budget=3600)
        totals["sent"] += outcome["sent"]
        totals["failed"] += outcome["failed"]
        due = Delivery.objects.filter(endpoint_id=endpoint_id, state=Delivery.State.PENDING,
                                      next_attempt_at__lte=timezone.now())
        if outcome["state"] == "disabled" or not due.exists():
            break
    return totals
