"""What the job worker's reaper (``jobs.worker.reap``) asks of the jobs after a worker died."""

from __future__ import annotations

from collections.abc import Iterable


def release_chunks(*, worker_ids: Iterable[str]) -> int:
    """Chunks claimed by these (dead) workers become claimable at once. Returns how many."""
    return 0


def resume_orphans() -> int:
    """Unfinished jobs with no task left to run them get one. Returns how many."""
    return 0
