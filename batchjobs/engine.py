"""Running a job: claim a chunk, do it, record it, until none is left. Crash-safe, exactly once.

A job's targets are numbered 1..N at the preview and cut into chunks (``JobChunk``, in the
control database). A worker:

1. **claims** a chunk in a short control transaction: the first one that is pending, or whose
   lease ran out (its worker died or stalled), taken under a row lock with ``SKIP LOCKED`` on
   PostgreSQL (an IMMEDIATE transaction on SQLite), so two workers never take the same chunk;
2. runs the **tenant phase** (``kinds``): one transaction in the tenant's database that locks the
   chunk's targets, skips those that already have an outcome, changes the rest in bulk and writes
   each one's ``JobOutcome`` beside the change. The outcome is unique per (job, target): no
   change is ever applied twice, whoever runs the chunk and however often;
3. runs the **relay**: one transaction in the control database that locks the chunk row and,
   unless it is already done, writes the audit entries and queues the mails of its outcomes (the
   mail's link token comes from the outcome row, stored with its hash in step 2), moves the job's
   counters and marks the chunk done: audit entries and mails exist once, with exact counts.

A worker killed anywhere resumes at the right step: before 2 commits nothing happened; between 2
and 3 the next worker finds every outcome written (step 2 does nothing) and relays them; after 3
the chunk is done. The tenant database commits first because it holds the truth (the change);
the control database's part is derived from it and can always be redone from it.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import services as audit
from batchjobs import faults, runtime
from batchjobs.kinds import processor
from batchjobs.models import Job, JobChunk
from core import request_context
from core.errors import ServiceError

log = logging.getLogger("batchjobs")
MAX_CHUNK_ATTEMPTS = 5  # a chunk that failed this often fails its job (a bug, not a crash)


def lease_seconds() -> int:
    return int(getattr(settings, "JOBS_LEASE_SECONDS", 60))


def slice_seconds() -> float:
    return float(getattr(settings, "JOBS_SLICE_SECONDS", 20))


class JobFailed(Exception):
    """The job cannot go on (its tenant closed, its actor lost the right, a chunk keeps failing)."""


def bind_context(job: Job) -> None:
    """The audit entries of a job carry the address and correlation id of the request that
    started it (and, for a service key's job, the key), and links mailed in development follow
    its host."""
    request_context.activate(request_context.RequestContext(
        remote_addr=job.remote_addr, correlation_id=job.cid or job.pk.hex, base_url=job.base_url,
    ))
    if job.api_key is not None:  # a service key's job: its entries name the key as its calls do
        request_context.bind_credential({"via": "api", "credential_prefix": job.api_key.prefix,
                                         "credential_id": str(job.api_key.pk)})


def job_audit(job: Job, event: str, *, actor: Any, data: dict[str, Any] | None = None) -> None:
    from accounts.app_users.job_actions import LABELS

    label = LABELS.get(job.action, job.action.replace("_", " ").capitalize())
    audit.record(
        event=event, actor=actor, tenant=job.tenant, target_model=Job, target_pk=job.pk,
        target_repr=f"{label} job of {job.total:,} target{'s' if job.total != 1 else ''}",
        action=audit.ACCESS if event in {"job.start", "job.schedule"} else audit.UPDATE,
        data={"job": str(job.pk), "kind": job.kind, "action": job.action, **(data or {})},
    )


def claim(job: Job, worker_id: str) -> JobChunk | None:
    now = timezone.now()
    expired = Q(state=JobChunk.State.CLAIMED, lease_until__lt=now)
    claimable = expired if job.state == Job.State.CANCELLING else (Q(state=JobChunk.State.PENDING) | expired)
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        chunk = (
            JobChunk.objects.select_for_update(skip_locked=True)
            .filter(claimable, job_id=job.pk).order_by("no").first()
        )
        if chunk is None:
            return None
        if chunk.attempts >= MAX_CHUNK_ATTEMPTS:
            raise JobFailed(f"Chunk {chunk.no} failed {chunk.attempts} times; the job stops there.")
        chunk.state, chunk.claimed_by, chunk.claimed_at = JobChunk.State.CLAIMED, worker_id, now
        chunk.lease_until = now + timedelta(seconds=lease_seconds())
        chunk.attempts += 1
        chunk.save(update_fields=["state", "claimed_by", "claimed_at", "lease_until", "attempts"])
        Job.objects.filter(pk=job.pk).update(heartbeat_at=now)
    faults.reach("after_claim")
    return chunk


def process(job: Job, chunk: JobChunk, worker_id: str) -> None:
    kind = processor(job)
    kind.tenant_phase(job, chunk)
    faults.reach("after_tenant_commit")
    now = timezone.now()
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        locked = JobChunk.objects.select_for_update().get(pk=chunk.pk)
        if locked.state == JobChunk.State.DONE:
            return  # another worker relayed it (this one stalled past its lease)
        processed, skipped, errors = kind.relay(job, locked)
        locked.state, locked.done_at, locked.done_by = JobChunk.State.DONE, now, worker_id
        locked.processed, locked.skipped, locked.errors = processed, skipped, errors
        locked.save(update_fields=["state", "done_at", "done_by", "processed", "skipped", "errors"])
        Job.objects.filter(pk=job.pk).update(
            processed=F("processed") + processed, skipped=F("skipped") + skipped,
            errors=F("errors") + errors, chunks_done=F("chunks_done") + 1, heartbeat_at=now,
        )
    kind.after_relay(job, locked)


def finalize(job_id: Any) -> bool:
    """Close the job once no chunk is left to do (or, cancelling, none is in flight). True when
    the job is finished (now or before)."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        job = Job.objects.select_for_update(of=("self",)).select_related("tenant", "actor", "api_key").get(pk=job_id)
        if job.is_finished:
            return True
        open_chunks = JobChunk.objects.filter(job_id=job.pk).exclude(state=JobChunk.State.DONE)
        if job.state == Job.State.CANCELLING:
            if open_chunks.filter(state=JobChunk.State.CLAIMED).exists():
                return False
            job.state = Job.State.CANCELLED
        elif job.state in (Job.State.RUNNING, Job.State.QUEUED):
            if open_chunks.exists():
                return False
            job.state = Job.State.DONE
        else:
            return False
        job.finished_at = timezone.now()
        job.save(update_fields=["state", "finished_at"])
        job_audit(job, "job.finish", actor=job.by, data={
            "state": job.state, "processed": job.processed, "skipped": job.skipped, "errors": job.errors,
            "untouched": job.total - job.done_count,
        })
    processor(job).after_finish(job)
    return True


def fail(job_id: Any, message: str) -> None:
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        job = Job.objects.select_for_update(of=("self",)).select_related("tenant", "actor", "api_key").get(pk=job_id)
        if job.is_finished:
            return
        job.state, job.finished_at, job.last_error = Job.State.FAILED, timezone.now(), message[:2000]
        job.save(update_fields=["state", "finished_at", "last_error"])
        job_audit(job, "job.fail", actor=job.by, data={"error": message[:500], "processed": job.processed})
    log.error("Job %s failed: %s", job_id, message)


def begin(job: Job) -> Job:
    """A queued or scheduled job starts running (a scheduled one is audited as started now)."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        locked = Job.objects.select_for_update(of=("self",)).select_related("tenant", "actor", "api_key").get(pk=job.pk)
        if locked.state in (Job.State.QUEUED, Job.State.SCHEDULED):
            scheduled = locked.state == Job.State.SCHEDULED
            locked.state, locked.started_at = Job.State.RUNNING, timezone.now()
            locked.save(update_fields=["state", "started_at"])
            if scheduled:
                job_audit(locked, "job.start", actor=locked.by, data={"scheduled_for": locked.scheduled_for})
    return locked


def run(job_id: Any, *, worker_id: str, budget: float | None = None, max_chunks: int | None = None) -> str:
    """Work on the job for at most ``budget`` seconds (``None``: until it is done). Returns
    "finished", "waiting" (other workers hold its last chunks), "sliced" (time is up, or the
    worker is stopping: the caller queues a continuation), "scheduled" or "idle"."""
    deadline = None if budget is None else time.monotonic() + budget
    done_chunks = 0
    job = Job.objects.select_related("tenant", "actor", "api_key").get(pk=job_id)
    bind_context(job)
    try:
        if job.is_finished:
            return "finished"
        if job.state == Job.State.PREVIEW:
            return "idle"
        if job.state == Job.State.SCHEDULED and job.scheduled_for and job.scheduled_for > timezone.now():
            return "scheduled"
        job = begin(job)
        try:
            processor(job).check(job)
        except (JobFailed, ServiceError) as exc:
            fail(job.pk, getattr(exc, "message", str(exc)))
            return "finished"
        while True:
            job.refresh_from_db(fields=["state", "cancel_requested_at"])
            if job.is_finished:
                return "finished"
            try:
                chunk = claim(job, worker_id)
            except JobFailed as exc:
                fail(job.pk, str(exc))
                return "finished"
            if chunk is None:
                return "finished" if finalize(job.pk) else "waiting"
            process(job, chunk, worker_id)
            done_chunks += 1
            faults.reach("between_chunks")
            if runtime.stopping() or (deadline is not None and time.monotonic() > deadline) or (
                max_chunks is not None and done_chunks >= max_chunks
            ):
                return "sliced"
    finally:
        request_context.reset()
