"""The tamper-evident audit trail: every entry is linked to the one before it in its chain.

Chains: one per tenant (entries whose ``tenant_id`` is that tenant) and one for the instance
(``tenant_id`` NULL). Within a chain, entries are ordered by ``id``; each entry stores

    prev_hash = the hash of the entry before it (the chain's anchor for the first one)
    hash      = sha256(prev_hash + "\\n" + canonical JSON of the entry's content), hex

The canonical JSON (version 1) is ``json.dumps(doc, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8, where ``doc`` holds ``"v": 1``, ``"chain"`` (the tenant's
id or ``"instance"``) and the columns in ``CONTENT_COLUMNS`` under their column names: ids as
text, the timestamp in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``, JSON values as stored, with
every integral float written as an integer (PostgreSQL's jsonb does not keep ``1.0``). Anybody
can check an export with these rules alone.

A ``ChainHead`` row per chain holds the hash and id of its newest entry (so a deleted tail is
found too) and its anchor: the hash the first remaining entry links to (``GENESIS`` until a
prune archived the start of the chain). Writers lock the head row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's IMMEDIATE transactions already serialise writers) for the rest of their
transaction, so concurrent writers never fork a chain, and the entry and the head commit
together with the change they describe.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

GENESIS = "0" * 64
INSTANCE = "instance"
VERSION = 1
CONTENT_COLUMNS = (
    "event", "action", "content_type_id", "object_pk", "object_id", "object_repr",
    "serialized_data", "changes", "changes_text", "actor_id", "actor_email", "impersonator_id",
    "tenant_id", "remote_addr", "remote_port", "cid", "additional_data", "timestamp",
)
_IDS = ("actor_id", "impersonator_id", "tenant_id")
_INTS = ("action", "content_type_id", "object_id", "remote_port")
_JSON = ("serialized_data", "changes", "additional_data")


def chain_key(tenant_id: Any) -> str:
    return INSTANCE if tenant_id is None else str(uuid.UUID(str(tenant_id)))


def _tenant(key: str) -> str | None:
    return None if key == INSTANCE else key


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _stamp(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _address(value: Any) -> str | None:
    if not value:
        return None
    from django.utils.ipv6 import clean_ipv6_address

    text = str(value)
    if ":" in text:
        try:
            return clean_ipv6_address(text)
        except Exception:  # noqa: BLE001 - the column refuses it anyway; hash what is there
            return text
    return text


_DOC_ORDER = tuple(sorted(("v", "chain", *CONTENT_COLUMNS)))  # json.dumps(sort_keys=True)'s order
_dumps = functools.partial(json.dumps, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_string = json.encoder.encode_basestring  # a str as json.dumps(..., ensure_ascii=False) writes it


def _json_text(value: Any, memo: dict[Any, Any]) -> str:
    """A JSON column's canonical text: the stored JSON (``json.dumps``, read back), integral
    floats as integers, keys sorted. The same value recurs across a batch, hence the memo: by
    the object itself (kept in the memo, so its id is not reused) and by its JSON."""
    same = memo.get(("id", id(value)))
    if same is not None and same[0] is value:
        return same[1]
    stored = json.dumps(value)
    text = memo.get(stored)
    if text is None:
        text = memo[stored] = _dumps(_json_value(json.loads(stored)))
    memo[("id", id(value))] = (value, text)
    return text


def _fragment(name: str, value: Any, memo: dict[Any, Any]) -> str:
    if value is None:
        return "null"
    if name in _JSON:
        return _json_text(value, memo)
    if name in _INTS:
        return str(int(value))
    key: tuple[str, Any] | None = (name, value)
    try:
        text = memo.get(key)
    except TypeError:  # an unhashable value in a text column: written as its str(), unmemoized
        key, text = None, None
    if text is None:
        if name == "timestamp":
            text = _string(str(_stamp(value)))
        elif name == "remote_addr":
            address = _address(value)
            text = "null" if address is None else _string(address)
        else:  # ids and text columns
            text = _string(str(value))
        if key is not None:
            memo[key] = text
    return text


def canonical(row: Mapping[str, Any], memo: dict[Any, Any] | None = None) -> bytes:
    """The canonical JSON of one entry (a mapping of column names to values): byte for byte
    ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` of the
    module's rules, written field by field (a batch hashes thousands of entries). ``memo``
    (a dict, kept across the entries of one batch) remembers the fields' texts."""
    memo = {} if memo is None else memo
    parts = []
    for name in _DOC_ORDER:
        if name == "v":
            text = str(VERSION)
        elif name == "chain":
            tenant_id = row.get("tenant_id")
            text = memo.get(("chain", tenant_id))  # type: ignore[assignment]
            if text is None:
                text = memo[("chain", tenant_id)] = _string(chain_key(tenant_id))
        else:
            text = _fragment(name, row.get(name), memo)
        parts.append(f'"{name}":{text}')
    return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogatepass")


def entry_hash(prev_hash: str, row: Mapping[str, Any], memo: dict[Any, Any] | None = None) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(row, memo)).hexdigest()


def _values(entry: Any) -> dict[str, Any]:
    return {name: getattr(entry, name, None) for name in CONTENT_COLUMNS}


# --- Writing --------------------------------------------------------------------------------


def _head_model():
    from audit.models import ChainHead

    return ChainHead


def lock_head(key: str, *, using: str = DEFAULT_DB_ALIAS):
    """The chain's head row, created when missing, locked until the transaction ends."""
    head_model = _head_model()
    qs = head_model.objects.using(using).select_for_update()
    head = qs.filter(key=key).first()
    if head is None:
        head_model.objects.using(using).bulk_create([head_model(key=key)], ignore_conflicts=True)
        head = qs.get(key=key)
    return head


def link(entries: list[Any], *, using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """Give unsaved entries (model instances, or column dicts for COPY) their ``prev_hash`` and
    ``hash``, in order, per chain. Call inside a transaction; returns the locked heads by key,
    which ``advance`` moves once the entries are inserted."""
    heads: dict[str, Any] = {}
    memo: dict[Any, Any] = {}
    keys: dict[Any, str] = {}
    for entry in entries:
        is_dict = isinstance(entry, dict)
        tenant_id = entry.get("tenant_id") if is_dict else entry.tenant_id
        key = keys.get(tenant_id)
        if key is None:
            key = keys[tenant_id] = chain_key(tenant_id)
        if key not in heads:
            heads[key] = lock_head(key, using=using)
            heads[key].pending_hash = heads[key].head_hash
        head = heads[key]
        values = entry if is_dict else _values(entry)
        digest = entry_hash(head.pending_hash, values, memo)
        if is_dict:
            entry["prev_hash"], entry["hash"] = head.pending_hash, digest
        else:
            entry.prev_hash, entry.hash = head.pending_hash, digest
        head.pending_hash = digest
    return heads


def advance(heads: Mapping[str, Any], *, last_ids: Mapping[str, int | None] | None = None,
            using: str = DEFAULT_DB_ALIAS) -> None:
    """After the insert: each head points at its chain's newest entry (``last_ids`` when the
    insert returned the ids; else the chain's highest id, which is ours: the head is locked)."""
    from audit.models import AuditEntry

    for key, head in heads.items():
        last = (last_ids or {}).get(key)
        if last is None:
            last = (
                AuditEntry.objects.using(using).filter(tenant_id=_tenant(key))
                .order_by("-id").values_list("id", flat=True).first()
            )
        head.head_hash, head.head_id = head.pending_hash, last
        head.save(using=using, update_fields=["head_hash", "head_id", "updated_at"])


# --- Verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first broken link of a chain."""

    entry_id: int | None
    reason: str

    def describe(self) -> str:
        where = f"entry {self.entry_id}" if self.entry_id is not None else "the chain's head"
        return f"broken at {where}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    key: str
    checked: int
    last_id: int | None
    last_hash: str
    broken: Break | None
    complete: bool  # walked up to the head

    @property
    def ok(self) -> bool:
        return self.broken is None


_READ = ("id", "prev_hash", "hash", *CONTENT_COLUMNS)


def _rows(key: str, *, after_id: int, upto_id: int | None, using: str, chunk: int = 2000) -> Iterator[dict]:
    from audit.models import AuditEntry

    qs = AuditEntry.objects.using(using).filter(tenant_id=_tenant(key))
    last = after_id
    while True:
        page = qs.filter(id__gt=last)
        if upto_id is not None:
            page = page.filter(id__lte=upto_id)
        rows = list(page.order_by("id").values(*_READ)[:chunk])
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def walk(
    key: str, *, after_id: int, expected: str, upto_id: int | None, limit: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> tuple[int, int | None, str, Break | None, bool]:
    """Check the entries after ``after_id`` (whose predecessor's hash is ``expected``) up to
    ``upto_id``. Returns (checked, last id, last hash, first break, reached the end)."""
    checked, last_id = 0, None
    for row in _rows(key, after_id=after_id, upto_id=upto_id, using=using):
        if limit is not None and checked >= limit:
            return checked, last_id, expected, None, False
        if not row["hash"] or not row["prev_hash"]:
            unchained = Break(row["id"], "the entry carries no hash (written outside the chain)")
            return checked, last_id, expected, unchained, True
        if row["prev_hash"] != expected:
            return checked, last_id, expected, Break(
                row["id"], "it does not link to the entry before it (an earlier entry was deleted or altered)"
            ), True
        if entry_hash(row["prev_hash"], row) != row["hash"]:
            return checked, last_id, expected, Break(row["id"], "its content was altered after it was written"), True
        expected, last_id = row["hash"], row["id"]
        checked += 1
    return checked, last_id, expected, None, True


def verify(key: str, *, using: str = DEFAULT_DB_ALIAS) -> Verification:
    """Walk a whole chain from its anchor to its head."""
    head_model = _head_model()
    head = head_model.objects.using(using).filter(key=key).first()
    if head is None:
        head = head_model(key=key)
    checked, last_id, last_hash, broken, _ = walk(
        key, after_id=head.anchor_id, expected=head.anchor_hash, upto_id=head.head_id, using=using
    )
    if broken is None:
        broken = _tail_break(head, last_id or head.anchor_id or None, last_hash, using=using)
    return Verification(key, checked, last_id, last_hash, broken, True)


def _tail_break(head: Any, last_id: int | None, last_hash: str, *, using: str) -> Break | None:
    """The walk ended at ``last_id``: is that the head, and is nothing stored beyond it?"""
    from audit.models import AuditEntry

    if (last_id or None) != (head.head_id or None) or last_hash != head.head_hash:
        return Break(head.head_id, "the newest entries are missing or the head was altered")
    stray = (
        AuditEntry.objects.using(using).filter(tenant_id=_tenant(head.key), id__gt=head.head_id or 0)
        .order_by("id").values_list("id", flat=True).first()
    )
    if stray is None:
        return None
    # Newer than the head read at the start: a writer that committed meanwhile moved the head
    # past it; an entry inserted behind the application's back stays beyond the head.
    now_head = _head_model().objects.using(using).filter(pk=head.pk).values_list("head_id", flat=True).first()
    if now_head is None or now_head < stray:
        return Break(stray, "the entry was inserted outside the chain")
    return None


def all_keys(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Every chain that has a head or an entry: the instance chain first, then tenants."""
    from audit.models import AuditEntry

    keys = set(_head_model().objects.using(using).values_list("key", flat=True))
    keys.update(
        chain_key(t) for t in AuditEntry.objects.using(using).values_list("tenant_id", flat=True).distinct()
    )
    return sorted(keys, key=lambda k: (k != INSTANCE, k))


# --- Incremental state for the viewer -------------------------------------------------------


@dataclass(frozen=True)
class ChainState:
    key: str
    verified_id: int | None
    head_id: int | None
    broken_id: int | None
    reason: str
    pending: int  # entries newer than the verified one that this look did not reach

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def chain_state(key: str, *, budget: int = 2000, using: str = DEFAULT_DB_ALIAS) -> ChainState:
    """Verify what was written since the last look (at most ``budget`` entries), remember how
    far it got, and say so. A full walk is ``manage.py audit verify``."""
    head_model = _head_model()
    head = head_model.objects.using(using).filter(key=key).first()
    if head is None:
        return ChainState(key, None, None, None, "", 0)
    if head.broken_id is not None:
        return ChainState(key, head.verified_id, head.head_id, head.broken_id, head.broken_reason, 0)
    start_id = head.verified_id if head.verified_id is not None else head.anchor_id
    expected = head.verified_hash or head.anchor_hash
    if head.verified_id is not None and head.verified_id > head.anchor_id:
        from audit.models import AuditEntry

        # The last verified entry must still be the one that was verified.
        stored = AuditEntry.objects.using(using).filter(pk=head.verified_id).values(*_READ).first()
        if stored is None or stored["hash"] != expected or entry_hash(stored["prev_hash"], stored) != expected:
            start_id, expected = head.anchor_id, head.anchor_hash
    checked, last_id, last_hash, broken, done = walk(
        key, after_id=start_id, expected=expected, upto_id=head.head_id, limit=budget, using=using
    )
    if broken is None and done:
        broken = _tail_break(head, last_id or start_id or None, last_hash, using=using)
    verified_id = last_id if last_id is not None else (start_id or None)
    updates: dict[str, Any] = {"verified_id": verified_id, "verified_hash": last_hash,
                               "checked_at": timezone.now()}
    if broken is not None:
        updates.update(broken_id=broken.entry_id, broken_reason=broken.reason)
    head_model.objects.using(using).filter(pk=head.pk).update(**updates)
    pending = 0 if done else max(0, (head.head_id or 0) - (verified_id or 0))
    return ChainState(key, verified_id, head.head_id, updates.get("broken_id"),
                      updates.get("broken_reason", ""), pending)


def remember(result: Verification, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """A full walk's outcome becomes the viewer's state (a repaired chain shows green again)."""
    _head_model().objects.using(using).filter(key=result.key).update(
        verified_id=result.last_id if result.ok else None,
        verified_hash=result.last_hash if result.ok else "",
        broken_id=result.broken.entry_id if result.broken else None,
        broken_reason=result.broken.reason if result.broken else "",
        checked_at=timezone.now(),
    )


def export_rows(entries: Iterable[dict]) -> Iterator[dict]:
    """Entries as JSON-friendly dicts (what the prune archive holds)."""
    for row in entries:
        out = {}
        for name, value in row.items():
            if isinstance(value, dt.datetime):
                value = _stamp(value)
            elif isinstance(value, uuid.UUID):
                value = str(value)
            out[name] = value
        yield out
