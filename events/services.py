"""Writing events: ``emit()`` turns audit entries into event rows in the caller's transaction.

``audit`` calls ``emit`` for every entry it writes (one, or a batch in bulk), so every change
that is audited produces its event with the change, or neither exists. Layers above (webhooks)
``subscribe`` to the rows just written, inside the same transaction, to fan them out.

A payload never holds a secret: it is built from the audit entry (which has none: audit drops
``SECRET_FIELDS``) through an allow-list per type; links carry their purpose, never the token.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS
from django.db.models.base import ModelState
from django.utils import timezone

from core import pgcopy
from events.models import Event, new_uid

USER_TYPES = (
    "user.created", "user.invited", "user.updated", "user.email_change_requested", "user.banned",
    "user.unbanned", "user.deleted", "user.signed_in", "user.signed_out", "session.revoked",
    "factor.enrolled", "factor.removed", "link.sent", "impersonation.started", "impersonation.ended",
)
BATCH_TYPES = ("batch.started", "batch.finished")
# The types a tenant's endpoints choose from.
TENANT_SCOPE_TYPES: tuple[str, ...] = USER_TYPES + BATCH_TYPES
# The types instance-wide endpoints receive (every tenant's lifecycle).
INSTANCE_SCOPE_TYPES: tuple[str, ...] = (
    "tenant.created", "tenant.provisioned", "tenant.create_failed", "tenant.updated",
    "tenant.settings_updated", "tenant.suspended", "tenant.resumed", "tenant.deleted",
    "tenant.restored", "tenant.purged", "tenant.migrated", "tenant.migrate_failed",
)
TEST_TYPE = "webhook.test"  # "send a test event": one endpoint, never in the feed
MAX_PAYLOAD_BYTES = 64 * 1024

# audit event -> event type (the ones that need more than a name are in _classify)
_DIRECT = {
    "app_user.create": "user.created",
    "app_user.invite": "user.invited",
    "app_user.update": "user.updated",
    "app_user.email_confirm": "user.updated",
    "app_user.profile_updated": "user.updated",
    "app_user.password_changed": "user.updated",
    "app_user.invitation_accepted": "user.updated",
    "app_user.undo": "user.updated",
    "app_user.email_change_requested": "user.email_change_requested",
    "app_user.email_change_request": "user.email_change_requested",
    "app_user.email_change": "user.updated",  # confirmed from the new address (issue 11, finding 2)
    "app_user.ban": "user.banned",
    "app_user.unban": "user.unbanned",
    "app_user.soft_delete": "user.deleted",
    "app_user.delete": "user.deleted",
    "app_user.invitation_revoke": "user.deleted",
    "app_user.sign_in": "user.signed_in",
    "app_user.sessions_end": "session.revoked",
    "app_user.factor_enrolled": "factor.enrolled",
    "app_user.factor_removed": "factor.removed",
    "app_user.factor_remove": "factor.removed",
    "impersonation.start": "impersonation.started",
    "impersonation.end": "impersonation.ended",
    "impersonation.stop": "impersonation.ended",
    "impersonation.expire": "impersonation.ended",
    "impersonation.session_ended": "impersonation.ended",
    "job.start": "batch.started",
    "job.finish": "batch.finished",
    "job.fail": "batch.finished",
    "job.cancel": "batch.finished",
    "tenant.create": "tenant.created",
    "tenant.provisioned": "tenant.provisioned",
    "tenant.create_failed": "tenant.create_failed",
    "tenant.update": "tenant.updated",
    "tenant.settings_update": "tenant.settings_updated",
    "tenant.email_template_update": "tenant.settings_updated",
    "tenant.email_template_reset": "tenant.settings_updated",
    "tenant.suspend": "tenant.suspended",
    "tenant.resume": "tenant.resumed",
    "tenant.delete": "tenant.deleted",
    "tenant.restore": "tenant.restored",
    "tenant.purge": "tenant.purged",
    "tenant.migrate": "tenant.migrated",
    "tenant.migrate_failed": "tenant.migrate_failed",
}
# audit event -> the purpose of the link it sent
_LINKS = {
    "app_user.recovery_sent": "recovery",
    "app_user.recovery_requested": "recovery",
    "app_user.magic_link_sent": "magic_link",
    "app_user.magic_link_requested": "magic_link",
    "app_user.invitation_resend": "invite",
}
# Facts of the audit entry's data that a type's payload may carry (everything else stays out).
_FACTS: dict[str, tuple[str, ...]] = {
    "user.created": ("invited", "confirmed"),
    "user.invited": ("expires_at",),
    "user.email_change_requested": ("new_email", "expires_at"),
    "user.banned": ("indefinitely", "sessions_ended", "until", "reason"),
    "user.deleted": ("hard",),
    "user.signed_in": ("method", "session"),
    "user.signed_out": ("session",),
    "session.revoked": ("sessions_ended", "session"),
    "factor.enrolled": ("factor", "kind"),
    "factor.removed": ("factors", "all", "sessions_ended"),
    "link.sent": ("expires_at",),
    "impersonation.started": ("reason", "expires_at", "impersonation"),
    "impersonation.ended": ("impersonation", "reason"),
    "batch.started": ("batch", "job", "kind", "action", "total"),
    "batch.finished": ("batch", "job", "kind", "action", "processed", "skipped", "errors", "state"),
}
_ACCESS = 3  # AuditEntry.Action.ACCESS (events sit below audit and do not import it)

Subscriber = Callable[[list[Event]], None]
_subscribers: list[Subscriber] = []


def subscribe(fn: Subscriber) -> None:
    """Call ``fn(events)`` with every batch of events just written, inside their transaction."""
    if fn not in _subscribers:
        _subscribers.append(fn)


def enabled() -> bool:
    return bool(getattr(settings, "EVENTS_ENABLED", True))


def _get(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


def _classify(row: Any) -> str | None:
    event = _get(row, "event") or ""
    if event in _DIRECT:
        return _DIRECT[event]
    if event in _LINKS:
        return "link.sent"
    if event == "app_user.sign_out":
        # The user signing out in the portal, or a staff member ending their sessions.
        data = _get(row, "additional_data") or {}
        return "user.signed_out" if data.get("via") == "portal" else "session.revoked"
    if event.startswith("app_user.batch_"):
        return "batch.finished"
    if event.startswith("app_user.") and _get(row, "action") != _ACCESS and _get(row, "object_pk"):
        return "user.updated"  # any other audited change of a user
    return None


def _actor(row: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    if _get(row, "actor_id"):
        actor = {"type": "staff", "id": str(_get(row, "actor_id")), "email": _get(row, "actor_email")}
    elif data.get("via") == "api" and data.get("credential_prefix"):
        actor = {"type": "api_key", "prefix": str(data["credential_prefix"])}
    elif data.get("via") == "portal" and data.get("app_user"):
        actor = {"type": "user", "id": str(data["app_user"])}
    else:
        actor = {"type": "system"}
    if _get(row, "impersonator_id"):
        actor["impersonator"] = str(_get(row, "impersonator_id"))
    return actor


def _user_payload(kind: str, row: Any, audit_event: str, data: Mapping[str, Any]) -> dict[str, Any]:
    changes = dict(_get(row, "changes") or {})
    out: dict[str, Any] = {"user": {"id": str(_get(row, "object_pk")), "email": _get(row, "object_repr")}}
    if kind == "user.created" or kind == "user.invited":
        out["user"].update({k: v[1] for k, v in changes.items() if isinstance(v, list) and len(v) == 2})
        out["user"]["id"] = str(_get(row, "object_pk"))
    elif kind == "user.updated":
        fields = sorted(changes)
        if audit_event == "app_user.password_changed":
            fields = ["password"]
        out["fields"] = fields
        out["changes"] = {k: {"old": v[0], "new": v[1]} for k, v in changes.items()
                          if isinstance(v, list) and len(v) == 2}
    elif kind == "user.deleted":
        out["hard"] = bool(data.get("hard", audit_event != "app_user.soft_delete"))
    elif kind == "user.banned":
        for name in ("banned_until", "ban_reason"):
            if isinstance(changes.get(name), list) and len(changes[name]) == 2:
                out[name] = changes[name][1]
    elif kind == "link.sent":
        out["purpose"] = _LINKS.get(audit_event, "")
        out["requested_by"] = "user" if audit_event.endswith("_requested") else "staff"
    return out


def _payload(kind: str, row: Any) -> tuple[dict[str, Any], str]:
    """The event's ``data`` and its ordering subject."""
    audit_event = _get(row, "event") or ""
    data = dict(_get(row, "additional_data") or {})
    out: dict[str, Any] = {"tenant": data.get("tenant"), "actor": _actor(row, data)}
    subject = ""
    if kind.startswith("tenant."):
        changes = _get(row, "changes") or {}
        out["fields"] = sorted(changes)
        if "error" in data:
            out["error"] = str(data["error"])[:300]
    elif kind.startswith("batch."):
        out["target"] = _get(row, "object_repr")
        if kind == "batch.finished" and audit_event.startswith("job."):
            out["state"] = audit_event.removeprefix("job.")
        if audit_event.startswith("app_user.batch_"):
            out["action"] = audit_event.removeprefix("app_user.batch_")
    else:
        out.update(_user_payload(kind, row, audit_event, data))
        subject = str(_get(row, "object_pk") or "")[:64]
    for key in _FACTS.get(kind, ()):
        if key in data and key not in out:
            out[key] = data[key]
    return out, subject


# What json.dumps(..., cls=DjangoJSONEncoder, separators=(",", ":")) builds on every call, built once.
_ENCODER = DjangoJSONEncoder(separators=(",", ":"))


def _serialized(envelope: dict[str, Any]) -> str:
    """The payload as JSON text. Payloads are bounded: past ``MAX_PAYLOAD_BYTES`` only the
    identifying facts are kept."""
    text = _ENCODER.encode(envelope)
    if len(text) <= MAX_PAYLOAD_BYTES:
        return text
    data = envelope["data"]
    kept = {k: data[k] for k in ("tenant", "actor", "user", "fields", "hard", "purpose") if k in data}
    if isinstance(kept.get("user"), dict):
        kept["user"] = {k: kept["user"][k] for k in ("id", "email") if k in kept["user"]}
    kept["truncated"] = True
    return _ENCODER.encode({**envelope, "data": kept})


def _event(*, kind: str, tenant_id: Any, subject: str, data: Mapping[str, Any], at: dt.datetime,
           audit_entry_id: Any = None) -> Event:
    text = _serialized({"type": kind, "timestamp": at.isoformat(), "data": dict(data)})
    # The payload stays JSON text until it is written (COPY writes the text as it is). Built
    # without Model.__init__ (every field is given; a batch builds thousands).
    event = Event.__new__(Event)
    event.__dict__.update(id=None, uid=new_uid(), type=kind, tenant_id=tenant_id, subject=subject, payload=None,
                          audit_entry_id=audit_entry_id, created_at=at, payload_text=text)
    event._state = ModelState()
    return event


def _parsed(events: list[Event]) -> list[Event]:
    for event in events:
        if event.payload is None:
            event.payload = json.loads(event.payload_text)  # type: ignore[attr-defined]
    return events


def build(kind: str, row: Any, *, at: dt.datetime) -> Event:
    data, subject = _payload(kind, row)
    return _event(kind=kind, tenant_id=_get(row, "tenant_id"), subject=subject, data=data, at=at,
                  audit_entry_id=_get(row, "id"))


def events_for(rows: Sequence[Any]) -> list[Event]:
    """The events of these audit entries (dicts or ``AuditEntry`` objects), in order. A batch's
    summary entry (``app_user.batch_*``, written last) opens the batch with ``batch.started``
    and closes it with ``batch.finished``."""
    out: list[Event] = []
    opened: list[Event] = []
    for row in rows:
        kind = _classify(row)
        if kind is None:
            continue
        at = _get(row, "timestamp") or timezone.now()
        if kind == "batch.finished" and (_get(row, "event") or "").startswith("app_user.batch_"):
            data, _ = _payload("batch.started", row)
            opened.append(_event(kind="batch.started", tenant_id=_get(row, "tenant_id"), subject="",
                                 data={k: v for k, v in data.items() if k != "processed"}, at=at))
        out.append(build(kind, row, at=at))
    return opened + out


def emit(rows: Sequence[Any]) -> int:
    """Write the events of these audit entries (in the caller's transaction) and hand them to the
    subscribers. Returns how many."""
    if not enabled():
        return 0
    events = events_for(rows)
    if not events:
        return 0
    _insert(events)
    for fn in _subscribers:
        fn(events)
    return len(events)


_COPY_COLUMNS = ("id", "uid", "type", "tenant_id", "subject", "payload", "audit_entry_id", "created_at")


def _insert(events: list[Event]) -> None:
    """One INSERT for one event; a bulk INSERT for a batch, or on PostgreSQL a COPY with ids
    taken from the sequence first (the subscribers need them)."""
    if len(events) == 1:
        _parsed(events)[0].save(using=DEFAULT_DB_ALIAS, force_insert=True)
    elif pgcopy.copies(len(events)):
        table = Event._meta.db_table
        for event, pk in zip(events, pgcopy.next_ids(table, len(events)), strict=True):
            event.pk = pk
        pgcopy.copy_rows(table, _COPY_COLUMNS, (
            [e.pk, e.uid, e.type, e.tenant_id, e.subject, e.payload_text, e.audit_entry_id,  # type: ignore[attr-defined]
             e.created_at] for e in events))
    else:
        Event.objects.using(DEFAULT_DB_ALIAS).bulk_create(_parsed(events), batch_size=1000)
        if events[0].pk is None:  # a backend that does not return ids from a bulk insert
            uids = {e.uid: e for e in events}
            for pk, uid in Event.objects.filter(uid__in=list(uids)).values_list("pk", "uid"):
                uids[uid].pk = pk


def event_create(*, type: str, tenant: Any, data: Mapping[str, Any], subject: str = "") -> Event:
    """One event written directly, not from an audit entry (the "send a test event" button), and
    not handed to the subscribers: the caller says where it goes."""
    event = _event(kind=type, tenant_id=getattr(tenant, "pk", tenant), subject=subject, data=data,
                   at=timezone.now())
    _parsed([event])[0].save(using=DEFAULT_DB_ALIAS, force_insert=True)
    return event


def types_for(scope: str) -> tuple[str, ...]:
    return INSTANCE_SCOPE_TYPES if scope == "instance" else TENANT_SCOPE_TYPES


def clean_types(values: Iterable[str], *, scope: str) -> list[str]:
    """The chosen types, in the list's order; raises ``ValueError`` naming an unknown one."""
    allowed = types_for(scope)
    chosen = {v.strip() for v in values if v and v.strip()}
    unknown = sorted(chosen - set(allowed))
    if unknown:
        raise ValueError(", ".join(unknown))
    return [t for t in allowed if t in chosen]
