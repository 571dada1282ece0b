"""Fault points for the crash tests: ``JOBS_FAULT=<point>:<n>`` makes a worker stop dead the
n-th time it reaches ``point`` (it writes ``JOBS_FAULT_FILE`` and waits there, so the test can
kill it with SIGKILL exactly at that point). Unset, ``reach()`` costs one dictionary lookup."""

from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = frozenset({
    "after_claim",  # a chunk claimed, nothing done yet
    "mid_chunk",  # inside the tenant transaction: users changed, outcomes not written
    "after_tenant_commit",  # changes and outcomes committed, audit and mails not yet
    "mail_enqueue",  # inside the control transaction: audit written, mails half queued
    "between_chunks",  # a chunk fully done, the next not claimed
})
_seen: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get("JOBS_FAULT", "")
    if not spec:
        return None
    point, _, count = spec.partition(":")
    return point, int(count or "1")


def reach(point: str) -> None:
    armed = _armed()
    if armed is None or armed[0] != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] != armed[1]:
        return
    marker = os.environ.get("JOBS_FAULT_FILE", "")
    if marker:
        Path(marker).write_text(f"{point}:{os.getpid()}")
    while True:  # the test sends SIGKILL now
        time.sleep(1)
