"""What the job worker's reaper (``jobs.worker.reap``) asks of the jobs after a worker died, and
the housekeeping it does on the way (previews nobody started)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from batchjobs import snapshot, tasks
from batchjobs.models import Job, JobChunk
from core.policy import policy
from tenants import db as tenant_db

RUNNER = tasks.job_run.module_path


def release_chunks(*, worker_ids: Iterable[str]) -> int:
    """Chunks claimed by these (dead) workers become claimable at once. Returns how many."""
    ids = list(worker_ids)
    if not ids:
        return 0
    return JobChunk.objects.filter(state=JobChunk.State.CLAIMED, claimed_by__in=ids).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )


def _jobs_with_a_task() -> set[str]:
    rows = DBTaskResult.objects.filter(task_path=RUNNER, status__in=["READY", "RUNNING"]).values_list(
        "args_kwargs", flat=True
    )
    found = set()
    for args_kwargs in rows:
        args = (args_kwargs or {}).get("args") or []
        job_id = args[0] if args else (args_kwargs or {}).get("kwargs", {}).get("job_id")
        if job_id:
            found.add(str(job_id).replace("-", ""))
    return found


def resume_orphans() -> int:
    """Unfinished jobs with no task left to run them get one (their task died with its worker,
    or failed, or the request that ran a small job inline never finished it). Returns how many."""
    unfinished = list(
        Job.objects.filter(state__in=[*Job.ACTIVE, Job.State.SCHEDULED]).values_list("pk", "state", "scheduled_for")
    )
    if not unfinished:
        return 0
    covered = _jobs_with_a_task()
    resumed = 0
    for pk, state, scheduled_for in unfinished:
        if pk.hex in covered:
            continue
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            runner = tasks.job_run
            if state == Job.State.SCHEDULED and scheduled_for and scheduled_for > timezone.now():
                runner = runner.using(run_after=scheduled_for)
            runner.enqueue(str(pk))
        resumed += 1
    return resumed


def expire_previews() -> int:
    """Previews older than the policy allows can no longer start: their targets go."""
    limit = timezone.now() - timedelta(minutes=policy().job_preview_minutes)
    expired = 0
    for job in Job.objects.filter(state=Job.State.PREVIEW, created_at__lt=limit).select_related("tenant")[:50]:
        if job.tenant is not None and job.tenant.is_usable:
            snapshot.discard(job, tenant_db.using(job.tenant))
        Job.objects.filter(pk=job.pk, state=Job.State.PREVIEW).update(state=Job.State.EXPIRED,
                                                                        finished_at=timezone.now())
        expired += 1
    return expired
