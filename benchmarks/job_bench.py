"""Batch jobs on the runner (``--skip jobs`` leaves them out): a ban job over every user of the
data set, with audit, worked by real ``manage.py jobs_worker`` processes; against a ``save()`` loop
writing auditlog's entry per user on a sample (users per second, ratio); the workers' peak memory
(VmHWM); and the time from a worker's SIGKILL to the job's next chunk done by a fresh worker (the
undo job of the ban is the victim; it also puts every user back for the next run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from accounts.app_users.batches import Selection
from accounts.app_users.selectors import UserFilters
from accounts.models import AppUser, JobOutcome, JobTarget
from batchjobs import services
from batchjobs.models import Job
from tenants import db as tenant_db

ROOT = Path(__file__).resolve().parent.parent


def _worker(name: str, log_dir: Path) -> subprocess.Popen:
    log = (log_dir / f"{name}.log").open("w")
    return subprocess.Popen(  # noqa: S603 (our own command)
        [sys.executable, "manage.py", "jobs_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2",
         "--worker-id", name, "--queue-name", "jobs"],
        cwd=ROOT, env={**os.environ, "JOBS_HEARTBEAT_SECONDS": "1"}, stdout=log, stderr=subprocess.STDOUT,
    )


def _peak_kb(proc: subprocess.Popen) -> int:
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _watch(job: Job, procs: list[subprocess.Popen], *, until, timeout: float = 3600) -> int:
    """Poll the job until ``until(job)``; returns the workers' peak resident memory (KiB)."""
    peak = 0
    deadline = time.monotonic() + timeout
    while True:
        peak = max([peak, *(_peak_kb(p) for p in procs)])
        job.refresh_from_db()
        if until(job):
            return peak
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job.pk} did not get there in {timeout:.0f}s (state {job.state})")
        time.sleep(0.2)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def _loop_users_per_second(tenant, actor, sample: int) -> float:
    """A ``save()`` loop with auditlog's per-row work on ``sample`` users (then put back)."""
    from audit.models import AuditEntry
    from audit.services import diff, snapshot

    alias = tenant_db.using(tenant)
    ids = list(AppUser.objects.using(alias).filter(deleted_at__isnull=True, banned_until__isnull=True)
               .order_by("-created_at").values_list("id", flat=True)[:sample])
    until = timezone.now() + timedelta(hours=24)
    started = time.perf_counter()
    for pk in ids:
        with transaction.atomic(using=alias), transaction.atomic(using="default"):
            user = AppUser.objects.using(alias).get(pk=pk)
            old = AppUser.objects.using(alias).get(pk=pk)
            user.banned_until, user.ban_reason = until, "benchmark"
            user.save()
            AuditEntry.objects.log_create(
                user, action=AuditEntry.Action.UPDATE, changes=diff(snapshot(old), snapshot(user)),
                event="app_user.ban", tenant=tenant, actor=actor,
            )
    elapsed = time.perf_counter() - started
    AppUser.objects.using(alias).filter(id__in=ids).update(banned_until=None, ban_reason="")
    return len(ids) / elapsed


def job_figures(bench, tenant, actor, *, workers: int, sample: int, log_dir: Path) -> None:
    from django.conf import settings

    log_dir.mkdir(parents=True, exist_ok=True)
    alias = tenant_db.using(tenant)
    settings.JOBS_RUNNERS_PER_JOB = workers
    base = _loop_users_per_second(tenant, actor, sample)  # before the ban job bans them all
    procs = [_worker(f"bench-w{i}", log_dir) for i in range(workers)]
    try:
        started = time.perf_counter()
        job = services.batch_preview(actor=actor, tenant=tenant, action="ban",
                                     selection=Selection(filters=UserFilters()),
                                     options={"duration": "7d", "reason": "benchmark"})
        preview_s = time.perf_counter() - started
        job = services.job_start(actor=actor, tenant=tenant, job_id=job.pk, inline=False)
        peak = _watch(job, procs, until=lambda j: j.is_finished)
        assert job.state == Job.State.DONE, job.last_error
        elapsed = (job.finished_at - job.started_at).total_seconds()
        ours = job.done_count / elapsed
        print(f"ban job: {job.total:,} targets ({job.processed:,} banned, {job.skipped:,} skipped) in "
              f"{elapsed:.1f}s with {workers} workers; preview (snapshot) {preview_s:.1f}s", flush=True)
        bench.add(f"ban job users/s ({workers} workers)", ours, base, unit="rps",
                  note=f"vs a save()+auditlog loop on {sample:,} users; goal >= 5,000/s")
        bench.figure("job worker peak memory", peak / 1024, "MB", note="VmHWM of the largest worker; goal <= 300")

        # The undo job is the victim: kill a worker once it has done a few chunks, time the resume.
        undo = services.job_undo(actor=actor, tenant=tenant, job_id=job.pk, inline=False)
        _watch(undo, procs, until=lambda j: j.chunks_done >= 2 or j.is_finished)
        victim = procs.pop(0)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.perf_counter()
        victim.wait()
        for p in procs:  # the survivors too: the resume is the fresh worker's
            p.send_signal(signal.SIGKILL)
            p.wait()
        undo.refresh_from_db()
        at_kill = undo.chunks_done
        procs = [_worker("bench-rescuer", log_dir)]
        _watch(undo, procs, until=lambda j: j.chunks_done > at_kill or j.is_finished)
        resume_s = time.perf_counter() - killed_at
        bench.figure("SIGKILL to resumed progress", resume_s, "s", note="to the next chunk done by a fresh worker "
                     "(its process start included)")
        _watch(undo, procs, until=lambda j: j.is_finished)
        print(f"undo job: {undo.processed:,} restored in "
              f"{(undo.finished_at - undo.started_at).total_seconds():.1f}s (one worker after the kill)", flush=True)
    finally:
        _stop(procs)
    for j in (job.pk, undo.pk):
        JobOutcome.objects.using(alias).filter(job_id=j).delete()
        JobTarget.objects.using(alias).filter(job_id=j).delete()
