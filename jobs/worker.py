"""The job worker: django-tasks-db's worker loop, plus what it lacks to survive a crash.

django-tasks-db claims a task by marking it RUNNING and never looks at it again, and it has no
lease or heartbeat: a worker killed with SIGKILL (OOM killer, a lost machine, ``kill -9``) leaves
its task RUNNING forever. This worker adds:

- a heartbeat: a ``WorkerBeat`` row, refreshed every ``JOBS_HEARTBEAT_SECONDS`` by a thread;
- a reaper, run when the worker starts and then with every few beats: a worker that missed three
  beats, or whose process is gone (same machine: checked by pid at once), is dead; its RUNNING
  tasks are queued again (READY) and the chunks it held are released (``batchjobs.recovery``);
  webhook endpoints with due deliveries and no run queued get one (``webhooks.delivery``);
- a graceful stop: SIGTERM/SIGINT set ``batchjobs.runtime.STOP``, so a job's task returns at the
  end of its current chunk and queues its own continuation.

Tasks on this runner are therefore run at least once: each must be safe to run again after a
crash (batch jobs are: their progress lives in their own tables, see ``batchjobs.engine``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker as DBWorker
from django_tasks_db.models import DBTaskResult

from accounts.app_users import figures
from batchjobs import recovery, runtime
from jobs import process
from jobs.models import WorkerBeat
from webhooks import delivery as webhook_delivery

log = logging.getLogger("jobs.worker")
MISSED_BEATS = 3  # a worker silent for this many beats is dead
REAP_EVERY = 2  # beats between two reaps


def heartbeat_seconds() -> float:
    return float(getattr(settings, "JOBS_HEARTBEAT_SECONDS", 2.0))


def register(worker_id: str, queues: list[str]) -> WorkerBeat:
    pid = os.getpid()
    beat, _ = WorkerBeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "host_key": process.host_key(), "hostname": socket.gethostname()[:255], "pid": pid,
            "proc_start": process.proc_start(pid), "queues": ",".join(queues)[:200],
            "started_at": timezone.now(), "beat_at": timezone.now(), "stopped_at": None, "end": "",
        },
    )
    return beat


def beat(worker_id: str) -> None:
    """A worker beats; one another worker took for lost (silent too long while busy) is alive again."""
    WorkerBeat.objects.filter(worker_id=worker_id).update(beat_at=timezone.now())
    WorkerBeat.objects.filter(worker_id=worker_id, end="lost").update(stopped_at=None, end="")


def dead_workers(*, now: Any = None) -> list[str]:
    """Workers that are not stopped and not alive: on this machine, those whose process is gone
    (the pid is the truth: a worker busy on a loaded machine, or waiting for SQLite's write lock,
    may miss beats and is still alive); elsewhere, those silent for ``MISSED_BEATS`` beats."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=heartbeat_seconds() * MISSED_BEATS)
    here = process.host_key()
    dead = []
    for worker_id, key, pid, started, beat_at in WorkerBeat.objects.filter(stopped_at__isnull=True).values_list(
        "worker_id", "host_key", "pid", "proc_start", "beat_at"
    ):
        if key == here:
            if pid != os.getpid() and not process.is_alive(pid, started):
                dead.append(worker_id)
        elif beat_at < stale:
            dead.append(worker_id)
    return dead


def reap(*, now: Any = None) -> dict[str, int]:
    """Recover what dead workers left: their RUNNING tasks queued again, their chunks released,
    every unfinished job given a task again if none is left. Safe to run from any number of
    workers at once. Returns what it did."""
    dead = dead_workers(now=now)
    requeued = 0
    if dead:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            marked = list(
                WorkerBeat.objects.select_for_update(skip_locked=True)
                .filter(worker_id__in=dead, stopped_at__isnull=True)
                .values_list("worker_id", flat=True)
            )
            if marked:
                WorkerBeat.objects.filter(worker_id__in=marked).update(stopped_at=timezone.now(), end="lost")
        dead = marked
    requeued += _requeue_tasks_of_gone_workers()
    if dead:
        log.warning("Workers lost: %s; %d task(s) queued again.", ", ".join(dead), requeued)
    released = recovery.release_chunks(worker_ids=dead) if dead else 0
    resumed = recovery.resume_orphans()
    expired = recovery.expire_previews()
    woken = webhook_delivery.resume_stalled()  # endpoints with due deliveries and no run queued
    return {"dead": len(dead), "requeued": requeued, "released": released, "resumed": resumed,
            "expired": expired, "webhooks_woken": woken}


def _requeue_tasks_of_gone_workers() -> int:
    """RUNNING tasks whose worker is known and no longer alive (lost now or earlier: a worker
    taken for lost may have gone on taking tasks, then died for real) are queued again."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        running = list(DBTaskResult.objects.select_for_update(skip_locked=True).filter(status="RUNNING"))
        if not running:
            return 0
        last = {task.worker_ids[-1] for task in running if task.worker_ids}
        gone = set(WorkerBeat.objects.filter(worker_id__in=last, stopped_at__isnull=False)
                   .values_list("worker_id", flat=True))
        requeued = 0
        for task in running:
            if task.worker_ids and task.worker_ids[-1] in gone:
                task.status = "READY"
                task.save(update_fields=["status"])
                requeued += 1
    return requeued


def schedule_figures_sweep() -> bool:
    """Queue the stored tenant figures' sweep (``accounts.app_users.figures``) unless one is
    queued or running already; every worker calls it every ``TENANT_FIGURES_SWEEP_SECONDS``.
    Returns whether it queued one."""
    path = figures.figures_sweep.module_path
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        if DBTaskResult.objects.filter(task_path=path, status__in=["READY", "RUNNING"]).exists():
            return False
        figures.figures_sweep.enqueue()
    return True


def _sweep_every() -> int:
    seconds = float(getattr(settings, "TENANT_FIGURES_SWEEP_SECONDS", 60))
    return max(int(seconds / max(heartbeat_seconds(), 0.01)), 1)


class Worker(DBWorker):
    """django-tasks-db's worker with a heartbeat, a reaper and a graceful stop (see above)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._beating = threading.Event()
        self._thread: threading.Thread | None = None

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        runtime.STOP.set()
        super().shutdown(signum, frame)

    def _heartbeat_loop(self) -> None:
        beats = 0
        while not self._beating.wait(heartbeat_seconds()):
            beats += 1
            try:
                beat(self.worker_id)
                if beats % REAP_EVERY == 0:
                    reap()
                if beats % _sweep_every() == 1 or _sweep_every() == 1:
                    schedule_figures_sweep()
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the heartbeat
                log.exception("Heartbeat of worker %s failed", self.worker_id)
            finally:
                connections.close_all()

    def run(self) -> None:
        register(self.worker_id, self.queue_names)
        try:
            outcome = reap()
            if any(outcome.values()):
                log.info("Recovered at start: %s", outcome)
        except Exception:  # noqa: BLE001 - the worker still starts; the heartbeat reaps again
            log.exception("Reaping at start failed")
        self._thread = threading.Thread(target=self._heartbeat_loop, name="jobs-heartbeat", daemon=True)
        self._thread.start()
        try:
            super().run()
        finally:
            self._beating.set()
            self._thread.join(timeout=5)
            WorkerBeat.objects.filter(worker_id=self.worker_id).update(
                stopped_at=timezone.now(), end="stopped"
            )
            log.info("Worker %s stopped.", self.worker_id)

