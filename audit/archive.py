"""Retention: archive the start of an audit chain to a file, then delete it, keeping the rest
verifiable (the chain's new start is anchored in its ``ChainHead``).

An archive holds, per chain, a header line, the entries (every column, with ``prev_hash`` and
``hash``) and a footer naming the chain head they lead to: the hash the first entry left in
the database links to. JSONL archives can be verified on their own (``verify_archive``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.db import DEFAULT_DB_ALIAS, transaction

from audit import chain
from audit.models import AuditEntry
from core.csv_safety import safe_cell

ARCHIVE_COLUMNS = ("id", "prev_hash", "hash", *chain.CONTENT_COLUMNS)
FORMATS = ("jsonl", "csv")


class ArchiveError(Exception):
    """The chain to prune is broken (nothing was deleted), or an archive does not verify."""


@dataclass(frozen=True)
class Pruned:
    key: str
    count: int
    first_id: int | None
    last_id: int | None
    anchor_hash: str  # what the first remaining entry links to


def _segment(key: str, *, after_id: int, upto_id: int) -> Iterator[dict[str, Any]]:
    qs = AuditEntry.objects.using(DEFAULT_DB_ALIAS).filter(tenant_id=chain._tenant(key))
    last = after_id
    while True:
        rows = list(
            qs.filter(id__gt=last, id__lte=upto_id).order_by("id").values(*ARCHIVE_COLUMNS)[:2000]
        )
        if not rows:
            return
        yield from chain.export_rows(rows)
        last = rows[-1]["id"]


def _cut(key: str, head: Any, before: dt.datetime) -> int | None:
    """The id of the newest entry to prune: everything before the chain's first entry written
    on or after ``before`` (a chain is cut only at its start, never in the middle)."""
    qs = AuditEntry.objects.using(DEFAULT_DB_ALIAS).filter(
        tenant_id=chain._tenant(key), id__gt=head.anchor_id
    )
    keep_from = qs.filter(timestamp__gte=before).order_by("id").values_list("id", flat=True).first()
    older = qs.filter(id__lt=keep_from) if keep_from is not None else qs
    return older.order_by("-id").values_list("id", flat=True).first()


class _Writer:
    def __init__(self, fh: IO[str], fmt: str) -> None:
        self.fh, self.fmt = fh, fmt
        self.csv = csv.writer(fh) if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(["record", "chain", *ARCHIVE_COLUMNS])

    def _json(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")

    def header(self, key: str, anchor_id: int, anchor_hash: str) -> None:
        if self.csv is None:
            self._json({"record": "chain", "chain": key, "anchor_id": anchor_id, "anchor_hash": anchor_hash})
        else:
            self.csv.writerow(["chain", key, anchor_id, "", anchor_hash])

    def entry(self, key: str, row: dict[str, Any]) -> None:
        if self.csv is None:
            self._json({"record": "entry", "chain": key, **row})
            return
        cells = []
        for name in ARCHIVE_COLUMNS:
            value = row.get(name)
            if isinstance(value, dict | list):
                value = json.dumps(value, sort_keys=True, ensure_ascii=False)
            cells.append(safe_cell("" if value is None else str(value)))
        self.csv.writerow(["entry", key, *cells])

    def footer(self, key: str, pruned: Pruned) -> None:
        if self.csv is None:
            self._json({"record": "head", "chain": key, "count": pruned.count, "last_id": pruned.last_id,
                        "chain_head": pruned.anchor_hash})
        else:
            self.csv.writerow(["head", key, pruned.last_id, "", pruned.anchor_hash])


def prune(*, keys: list[str], before: dt.datetime, output: Path, fmt: str = "jsonl") -> list[Pruned]:
    """Archive to ``output`` the entries of each chain written before ``before``, then delete
    them and anchor each chain's new start. One transaction per chain (its head locked); a
    broken chain is refused before anything is written or deleted (``ArchiveError``)."""
    if fmt not in FORMATS:
        raise ArchiveError(f"Unknown archive format {fmt!r} (jsonl or csv).")
    done: list[Pruned] = []
    with output.open("x", encoding="utf-8", newline="") as fh:
        writer = _Writer(fh, fmt)
        for key in keys:
            with transaction.atomic(using=DEFAULT_DB_ALIAS):
                head = chain.lock_head(key)
                last_id = _cut(key, head, before)
                if last_id is None:
                    continue
                checked, walked_to, last_hash, broken, _ = chain.walk(
                    key, after_id=head.anchor_id, expected=head.anchor_hash, upto_id=last_id
                )
                if broken is not None:
                    raise ArchiveError(f"Chain {key} is {broken.describe()}; nothing was pruned.")
                writer.header(key, head.anchor_id, head.anchor_hash)
                first_id = None
                for row in _segment(key, after_id=head.anchor_id, upto_id=last_id):
                    first_id = first_id or row["id"]
                    writer.entry(key, row)
                result = Pruned(key, checked, first_id, walked_to, last_hash)
                writer.footer(key, result)
                fh.flush()
                AuditEntry.objects.using(DEFAULT_DB_ALIAS).filter(
                    tenant_id=chain._tenant(key), id__gt=head.anchor_id, id__lte=last_id
                ).delete()
                head.anchor_id, head.anchor_hash = last_id, last_hash
                if head.verified_id is None or head.verified_id <= last_id:
                    head.verified_id, head.verified_hash = last_id, last_hash
                head.save()
                done.append(result)
    return done


def verify_archive(path: Path) -> dict[str, str]:
    """Check a JSONL archive on its own: every entry links to the one before it, from the
    chain's header anchor, and hashes to what it says. Returns the chain head per chain."""
    heads: dict[str, str] = {}
    expected: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            record = json.loads(line)
            key = record["chain"]
            if record["record"] == "chain":
                expected[key] = record["anchor_hash"]
            elif record["record"] == "entry":
                linked = record["prev_hash"] == expected.get(key)
                if not linked or chain.entry_hash(record["prev_hash"], record) != record["hash"]:
                    raise ArchiveError(f"Line {number}: entry {record['id']} of chain {key} does not verify.")
                expected[key] = record["hash"]
            elif record["record"] == "head":
                if record["chain_head"] != expected.get(key):
                    raise ArchiveError(f"Line {number}: the head of chain {key} does not match its entries.")
                heads[key] = record["chain_head"]
    return heads
