"""Reading the audit trail: filters, keyset pages, the display of one entry, CSV rows.

Pages are keyset pages on ``(timestamp, id)``, newest first (indexes ``audit_time``,
``audit_tenant_time``, ``audit_actor_time``, ``audit_impersonated``): no OFFSET and no count of
the whole trail. Everything here only reads.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import SECRET_FIELDS
from core.csv_safety import safe_cell
from core.emails import canonical_email

PAGE_SIZE = 50
FILTER_MAX = 200
ACTIONS = {"create": 0, "update": 1, "delete": 2, "access": 3}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
HIDDEN = "[hidden]"
# Display-side safety net: record() already drops SECRET_FIELDS, but an entry written by other
# code (or an older release) must not show anything whose name says it is a secret.
_SECRET_SUFFIXES = (
    "password", "passwd", "token", "tokens", "secret", "_key", "apikey", "_hash", "_code", "_codes",
    "otp", "credential", "credentials", "cookie", "session_key",
)


def is_secret_name(name: str) -> bool:
    lowered = str(name).lower().rsplit(".", 1)[-1]
    return lowered in SECRET_FIELDS or lowered.endswith(_SECRET_SUFFIXES)


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: HIDDEN if is_secret_name(k) else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


@dataclass
class AuditFilters:
    actor: str = ""
    event: str = ""
    action: str = ""
    target: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    impersonated: bool = False
    tenant: str = ""  # instance viewer only: a slug, or "-" for control-plane entries
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_query(cls, data, *, allow_tenant: bool) -> AuditFilters:
        """Parse the query string; a bad value becomes an error message and is ignored."""
        f = cls()

        def text(name: str) -> str:
            value = str(data.get(name, "") or "").strip()
            if len(value) > FILTER_MAX or "\x00" in value:
                f.errors[name] = f"At most {FILTER_MAX} characters."
                return ""
            return value

        f.actor = text("actor")
        f.event = text("event")
        f.target = text("target")
        action = text("action")
        if action and action not in ACTIONS:
            f.errors["action"] = "Unknown action."
        else:
            f.action = action
        for name in ("date_from", "date_to"):
            raw = text(name)
            if raw:
                try:
                    setattr(f, name, dt.date.fromisoformat(raw))
                except ValueError:
                    f.errors[name] = "Enter a date as YYYY-MM-DD."
        if f.date_from and f.date_to and f.date_from > f.date_to:
            f.errors["date_to"] = "The end date is before the start date."
            f.date_to = None
        f.impersonated = str(data.get("impersonated", "")) in {"1", "on", "true"}
        if allow_tenant:
            f.tenant = text("tenant")
        return f

    def as_query(self) -> dict[str, str]:
        pairs = {
            "actor": self.actor, "event": self.event, "action": self.action,
            "target": self.target, "tenant": self.tenant,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "impersonated": "1" if self.impersonated else "",
        }
        return {k: v for k, v in pairs.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.as_query())


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def audit_entries(*, tenant: Any, filters: AuditFilters) -> QuerySet[AuditEntry]:
    """Entries matching ``filters``, newest first. ``tenant=None``: every tenant and the control
    plane (instance admins only: the caller checks)."""
    qs = AuditEntry.objects.select_related("actor", "impersonator", "tenant", "content_type")
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    elif filters.tenant == "-":
        qs = qs.filter(tenant__isnull=True)
    elif filters.tenant:
        qs = qs.filter(tenant__slug=filters.tenant)
    if filters.actor:
        actor_email = canonical_email(filters.actor)
        user = get_user_model().objects.filter(email=actor_email).first()
        qs = qs.filter(actor=user) if user else qs.filter(actor_email=actor_email)
    if filters.event:
        qs = qs.filter(event__startswith=filters.event.lower())
    if filters.action:
        qs = qs.filter(action=ACTIONS[filters.action])
    if filters.target:
        qs = qs.filter(Q(object_pk=filters.target) | Q(object_repr__icontains=filters.target))
    if filters.date_from:
        qs = qs.filter(timestamp__gte=_day_start(filters.date_from))
    if filters.date_to and filters.date_to < dt.date.max:
        qs = qs.filter(timestamp__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    if filters.impersonated:
        qs = qs.filter(impersonator__isnull=False)
    return qs.order_by("-timestamp", "-id")


def encode_cursor(entry: AuditEntry) -> str:
    raw = f"{entry.timestamp.isoformat()}|{entry.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int] | None:
    """The (timestamp, id) a cursor points at; ``None`` for anything malformed."""
    if not cursor or len(cursor) > 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.split("|", 1)
        moment = dt.datetime.fromisoformat(stamp)
        if timezone.is_naive(moment):
            return None
        return moment, int(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return None


@dataclass
class AuditPage:
    entries: list
    next_cursor: str | None
    is_first: bool


def audit_page(qs: QuerySet[AuditEntry], *, cursor: str = "", size: int = PAGE_SIZE) -> AuditPage:
    """One keyset page: the ``size`` entries after ``cursor`` (older ones), and the next cursor."""
    after = decode_cursor(cursor)
    if after is not None:
        stamp, pk = after
        qs = qs.filter(Q(timestamp__lt=stamp) | Q(timestamp=stamp, id__lt=pk))
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(
        entries=[present(e) for e in rows],
        next_cursor=encode_cursor(rows[-1]) if more and rows else None,
        is_first=after is None,
    )


def _parsed(text: str) -> Any:
    """A stored text that is really a dict or list (Python repr or JSON) or an ISO time, as that
    value; anything else as it is."""
    stripped = text.strip()
    if stripped[:1] in "{[" and len(stripped) <= 5000:
        import ast
        import json

        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(stripped)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict | list):
                return value
    if 16 <= len(stripped) <= 40 and stripped[4:5] == "-" and stripped[10:11] in ("T", " "):
        from django.utils.dateparse import parse_datetime

        try:
            moment = parse_datetime(stripped)
        except ValueError:
            moment = None
        if moment is not None:
            return moment
    return text


def _short(value: Any, depth: int = 0) -> str:
    """A value as a person reads it: "tier: 2, plan: pro", "Dec 1, 10:44", never ``{'tier': 2}``."""
    from datetime import datetime

    from core.templatetags.when import absolute

    if isinstance(value, str) and depth == 0:
        value = _parsed(value)
    if value is None:
        return "∅"
    if value == "":
        return '""'  # an empty text is a value too: show it, not a blank
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return absolute(value)
    if isinstance(value, dict):
        return (", ".join(f"{k}: {_short(v, depth + 1)}" for k, v in value.items()) or "(empty)")[:500]
    if isinstance(value, list | tuple):
        return (", ".join(_short(v, depth + 1) for v in value) or "(none)")[:500]
    return str(value)[:500]


def entry_diff(entry: AuditEntry) -> list[dict[str, str]]:
    """``changes`` as rows ``{"field", "old", "new"}``; secrets shown as ``[hidden]``."""
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    rows = []
    for name, value in changes.items():
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = value
        else:  # auditlog's m2m and other shapes: show them as they are
            old, new = None, value
        if is_secret_name(name):
            old = new = HIDDEN
        rows.append({"field": str(name), "old": _short(_mask(old)), "new": _short(_mask(new))})
    return rows


def entry_data(entry: AuditEntry) -> list[tuple[str, str]]:
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    return [
        (str(k), HIDDEN if is_secret_name(k) else _short(_mask(v)))
        for k, v in data.items()
        if k != "tenant"
    ]


@dataclass
class EntryView:
    entry: AuditEntry
    action: str
    actor: str
    impersonator: str
    target_type: str
    diff: list
    data: list


def present(entry: AuditEntry) -> EntryView:
    # str(staff user) is the address (the user model is AUTH_USER_MODEL, typed as its base).
    actor = str(entry.actor) if entry.actor_id and entry.actor else (entry.actor_email or "")
    impersonator = str(entry.impersonator) if entry.impersonator_id and entry.impersonator else ""
    ct = entry.content_type
    return EntryView(
        entry=entry,
        action=ACTION_NAMES.get(entry.action, str(entry.action)),
        actor=actor or "system",
        impersonator=impersonator,
        target_type=f"{ct.app_label}.{ct.model}" if ct else "",
        diff=entry_diff(entry),
        data=entry_data(entry),
    )


CSV_HEADER = [
    "timestamp", "id", "tenant", "event", "action", "actor", "impersonator", "target_type",
    "target_id", "target", "changes", "data", "remote_addr", "correlation_id",
]


def csv_rows(qs: QuerySet[AuditEntry]) -> Iterator[list[str]]:
    """Every matching entry as a CSV row, streamed in keyset chunks (no OFFSET, bounded memory)."""
    yield CSV_HEADER
    cursor = ""
    while True:
        page = audit_page(qs, cursor=cursor, size=1000)
        for view in page.entries:
            e = view.entry
            yield [
                e.timestamp.isoformat(), str(e.pk), e.tenant.slug if e.tenant_id else "",
                e.event, view.action, view.actor, view.impersonator, view.target_type,
                e.object_pk, e.object_repr,
                "; ".join(f"{d['field']}: {d['old']} -> {d['new']}" for d in view.diff),
                "; ".join(f"{k}={v}" for k, v in view.data),
                e.remote_addr or "", e.cid or "",
            ]
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def csv_safe(cell: str) -> str:
    """A cell of the audit export, formula-safe: the one rule of ``core.csv_safety``."""
    return safe_cell(cell)
