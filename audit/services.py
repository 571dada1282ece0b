"""Writing the audit trail. Services call ``record()`` (one entry) or ``record_many()`` (a batch).

Entries go to the control database, whichever database the change happened in. Secrets never
reach an entry: fields named in ``SECRET_FIELDS`` are dropped from every diff and payload. Each
entry's event (``events.services.emit``: webhooks, the API's feed) is written with it, in the same
transaction, in bulk for a batch.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.utils import timezone

from audit import chain, signals
from audit.models import AuditEntry
from core import pgcopy, request_context
from core.text import UNSTORABLE
from events import services as events

CREATE = AuditEntry.Action.CREATE
UPDATE = AuditEntry.Action.UPDATE
DELETE = AuditEntry.Action.DELETE
ACCESS = AuditEntry.Action.ACCESS

SECRET_FIELDS = frozenset(
    {"password", "token", "token_hash", "key", "code", "code_hash", "secret", "otp", "backup_code"}
)
MAX_VALUE_LENGTH = 500


def _text(value: str) -> str:
    """NUL and lone surrogates (a ``%00`` in a refused URL...) become U+FFFD: PostgreSQL's
    jsonb and text columns cannot hold NUL, and no UTF-8 page or CSV can hold a surrogate."""
    return UNSTORABLE.sub("\ufffd", value)


def _plain(value: Any) -> Any:
    """A JSON-friendly rendering of a field value for a diff."""
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else _text(value[:MAX_VALUE_LENGTH])
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {_text(str(k)): _plain(v) for k, v in value.items() if str(k) not in SECRET_FIELDS}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return _text(str(value)[:MAX_VALUE_LENGTH])


def snapshot(instance: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The audited fields of a row as plain values (secrets left out)."""
    names = fields or [
        f.attname for f in instance._meta.concrete_fields if not f.primary_key
    ]
    return {name: _plain(getattr(instance, name)) for name in names if name not in SECRET_FIELDS}


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, list]:
    """``{field: [old, new]}`` for every field that differs; secrets left out."""
    before = before or {}
    after = after or {}
    changes = {}
    for name in sorted(set(before) | set(after)):
        if name in SECRET_FIELDS:
            continue
        old, new = _plain(before.get(name)), _plain(after.get(name))
        if old != new:
            changes[name] = [old, new]
    return changes


@dataclass
class Entry:
    """One audit entry to write; ``record_many`` takes a list of them."""

    event: str
    target_model: type[models.Model]
    target_pk: Any
    target_repr: str = ""
    action: int = UPDATE
    changes: dict | None = None
    data: dict = field(default_factory=dict)


def _content_type(model: type[models.Model]) -> ContentType:
    return ContentType.objects.db_manager(DEFAULT_DB_ALIAS).get_for_model(
        model, for_concrete_model=False
    )


def _data(entry: Entry, *, tenant, credential: Mapping[str, Any]) -> dict[str, Any] | None:
    data = {_text(str(k)): _plain(v) for k, v in entry.data.items() if str(k) not in SECRET_FIELDS}
    if tenant is not None:
        data.setdefault("tenant", tenant.slug)
    for key, value in credential.items():
        data.setdefault(key, value)  # the API key or token that made the change
    return data or None


def _values(
    entry: Entry, *, actor, tenant, impersonator, remote_addr, correlation_id,
    credential: Mapping[str, Any] | None = None, content_types: dict[Any, int] | None = None,
    datas: dict[int, Any] | None = None,
) -> dict[str, Any]:
    if credential is None:
        credential = request_context.current_credential() or {}
    if datas is None:
        data = _data(entry, tenant=tenant, credential=credential)
    else:  # a batch: entries that share one ``data`` object share its stored form (read only)
        found = datas.get(id(entry.data))
        if found is None or found[0] is not entry.data:
            found = datas[id(entry.data)] = (entry.data, _data(entry, tenant=tenant, credential=credential))
        data = found[1]
    if content_types is None:
        content_type_id = _content_type(entry.target_model).pk
    elif entry.target_model in content_types:  # a batch: looked up once per model
        content_type_id = content_types[entry.target_model]
    else:
        content_type_id = content_types[entry.target_model] = _content_type(entry.target_model).pk
    return {
        "event": entry.event,
        "content_type_id": content_type_id,
        "object_pk": _text(str(entry.target_pk)[:255]),
        "object_repr": _text((entry.target_repr or str(entry.target_pk))[:MAX_VALUE_LENGTH]),
        "action": entry.action,
        "changes": entry.changes or None,
        "changes_text": "",
        "actor_id": actor.pk if getattr(actor, "pk", None) else None,
        "actor_email": getattr(actor, "email", None),
        "impersonator_id": getattr(impersonator, "pk", None),
        "tenant_id": getattr(tenant, "pk", None),
        "remote_addr": remote_addr,
        "cid": correlation_id,
        "additional_data": data,
    }


def _build(entry: Entry, **facts) -> AuditEntry:
    return AuditEntry(**_values(entry, **facts))


_COPY_COLUMNS = (
    "event", "content_type_id", "object_pk", "object_repr", "action", "changes", "changes_text",
    "actor_id", "actor_email", "impersonator_id", "tenant_id", "remote_addr", "cid",
    "additional_data", "timestamp", "prev_hash", "hash",
)


def _copy(rows: list[dict[str, Any]]) -> None:
    """COPY the rows (already chained: ``prev_hash``/``hash`` set); JSON columns as their
    ``json.dumps`` text (what psycopg's ``Jsonb`` sends), the same value written once."""
    json_text = pgcopy.json_texts()
    pgcopy.copy_rows(AuditEntry._meta.db_table, _COPY_COLUMNS, (
        [json_text(row[c]) if c in ("changes", "additional_data") else row[c] for c in _COPY_COLUMNS]
        for row in rows
    ))


def _request_facts() -> tuple[str | None, str]:
    ctx = request_context.current()
    if ctx is None:
        return None, uuid.uuid4().hex
    return ctx.remote_addr, ctx.correlation_id


def record(
    *,
    event: str,
    actor,
    tenant,
    target: models.Model | None = None,
    target_model: type[models.Model] | None = None,
    target_pk: Any = None,
    target_repr: str = "",
    action: int = UPDATE,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    impersonator=None,
) -> AuditEntry:
    """Write one audit entry in the control database and return it.

    ``actor`` is the staff user (``None`` for a system action or an app user acting in the
    portal; say who in ``data``). ``target`` (or ``target_model`` + ``target_pk``) is what was
    acted on, in any database. ``before``/``after`` are ``snapshot()``s; their diff is stored.
    """
    if target is not None:
        target_model = type(target)
        target_pk = target.pk
        target_repr = target_repr or str(target)
    if target_model is None:
        raise ValueError("record() needs a target or a target_model.")
    remote_addr, cid = _request_facts()
    entry = Entry(
        event=event,
        target_model=target_model,
        target_pk=target_pk if target_pk is not None else "",
        target_repr=target_repr,
        action=action,
        changes=diff(before, after) if (before is not None or after is not None) else None,
        data=dict(data or {}),
    )
    row = _build(
        entry,
        actor=actor,
        tenant=tenant,
        impersonator=impersonator,
        remote_addr=remote_addr,
        correlation_id=cid,
    )
    row.save(using=DEFAULT_DB_ALIAS)
    signals.recorded.send(sender=AuditEntry, tenant_id=row.tenant_id, count=1, event=event)
    return row


def record_many(
    entries: Iterable[Entry], *, actor, tenant, impersonator=None, batch_size: int = 1000
) -> int:
    """Write many entries with one ``bulk_create`` per ``batch_size`` (``COPY`` on PostgreSQL
    from ``core.pgcopy.COPY_MIN`` entries), chained in bulk under one lock of the chain's head; returns
    how many."""
    remote_addr, cid = _request_facts()
    facts = {"actor": actor, "tenant": tenant, "impersonator": impersonator,
             "remote_addr": remote_addr, "correlation_id": cid,
             "credential": request_context.current_credential() or {}, "content_types": {}, "datas": {}}
    now = timezone.now()
    rows = [{**_values(entry, **facts), "timestamp": now} for entry in entries]
    if not rows:
        return 0
    with transaction.atomic(using=DEFAULT_DB_ALIAS, savepoint=False):
        if pgcopy.copies(len(rows)):
            heads = chain.link(rows)
            _copy(rows)
            chain.advance(heads)
            events.emit(rows)
        else:
            objects = [AuditEntry(**row) for row in rows]
            heads = chain.link(objects)
            AuditEntry.objects.using(DEFAULT_DB_ALIAS).bulk_create(objects, batch_size=batch_size)
            chain.advance(heads, last_ids={chain.chain_key(objects[-1].tenant_id): objects[-1].pk})
            events.emit(objects)
        signals.recorded.send(sender=AuditEntry, tenant_id=getattr(tenant, "pk", tenant), count=len(rows))
    return len(rows)
