"""Real ``manage.py jobs_worker`` processes: one killed with SIGKILL at each fault point of a chunk
(``batchjobs.faults``), then a fresh worker that finishes the job, exactly once (each user's change,
audit entry and mail once); and two workers sharing one job's chunks, never the same one twice.

PostgreSQL only: the workers are other processes and need the test database on a server (the
SQLite pass keeps the control database in memory). The tests commit for real (transactional).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connections
from django.db.models import Count

from accounts.models import ActionToken, AppUser, JobOutcome
from audit.models import AuditEntry
from batchjobs.models import Job, JobChunk
from jobs.models import WorkerBeat
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_users
from tests.jobs.conftest import everyone, start

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
USERS, CHUNK = 600, 100


def _database_url() -> str:
    s = connections["default"].settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Workers:
    """Starts ``jobs_worker`` processes on the test database; kills what is left at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, fault: str = "") -> subprocess.Popen:
        env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _database_url(),
            "OUTBOX_DELIVERY": "worker", "JOBS_HEARTBEAT_SECONDS": "1", "JOBS_FAULT": fault,
            "JOBS_FAULT_FILE": str(self.tmp / f"{name}.fault"),
        }
        log = (self.tmp / f"{name}.log").open("w")
        proc = subprocess.Popen(  # noqa: S603 (our own command)
            [sys.executable, "manage.py", "jobs_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1",
             "--worker-id", name], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def wait_for(self, what, *, timeout: float = 60, about: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp.glob("*.log"))
                raise AssertionError(f"timed out waiting for {about}\n{logs}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path):
    made = Workers(tmp_path)
    yield made
    made.stop_all()


@pytest.fixture
def chunks_of_100(settings):
    settings.JOBS_CHUNK_SIZE = CHUNK


def _finished(job: Job):
    def check() -> bool:
        job.refresh_from_db()
        return job.is_finished
    return check


def _up(*names: str):
    return lambda: WorkerBeat.objects.filter(worker_id__in=names, stopped_at__isnull=True).count() == len(names)


def assert_exactly_once(tenant, job: Job, users: int) -> None:
    job.refresh_from_db()
    assert job.state == Job.State.DONE, job.last_error
    assert (job.processed, job.skipped, job.errors, job.chunks_done) == (users, 0, 0, job.chunks_total)
    alias = tenant_db.using(tenant)
    outcomes = JobOutcome.objects.using(alias).filter(job_id=job.pk)
    assert outcomes.count() == users and outcomes.values("user_id").distinct().count() == users
    # The change: one recovery link per user (a second run would have issued a second one).
    tokens = ActionToken.objects.using(alias).filter(purpose=ActionToken.Purpose.RECOVERY)
    assert tokens.count() == users and tokens.values("user_id").distinct().count() == users
    entries = AuditEntry.objects.filter(additional_data__job=str(job.pk)).exclude(event__startswith="job.")
    assert entries.count() == users and entries.values("object_pk").distinct().count() == users
    mails = OutboxMessage.objects.filter(key__startswith=f"job:{job.pk.hex}:")
    assert mails.count() == users and mails.values("to").distinct().count() == users
    assert AuditEntry.objects.filter(event="job.finish", object_pk=str(job.pk)).count() == 1
    assert set(JobChunk.objects.filter(job=job).values_list("state", flat=True)) == {"done"}


@pytest.mark.parametrize("point", ["after_claim", "mid_chunk", "after_tenant_commit", "mail_enqueue",
                                   "between_chunks"])
def test_a_worker_killed_at_any_point_is_resumed_exactly_once(acme, admin, chunks_of_100, workers, point):
    make_users(acme, USERS, prefix="breach", domain="breach.test")
    victim = workers.start("victim", fault=f"{point}:2")  # the second time it gets there
    workers.wait_for(_up("victim"), about="the first worker")
    job = start(admin, acme, "send_recovery", everyone(q="breach.test"))
    marker = workers.tmp / "victim.fault"
    workers.wait_for(marker.exists, about=f"the fault point {point}")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed_at = Job.objects.get(pk=job.pk).done_count
    assert killed_at < USERS
    workers.start("rescuer")  # finds the dead worker at once (its pid is gone) and takes over
    workers.wait_for(_finished(job), about="the job to finish after the kill")
    assert_exactly_once(acme, job, USERS)
    assert WorkerBeat.objects.get(worker_id="victim").end == "lost"
    # The chunk the victim held was done once more by the rescuer, the others once.
    attempts = dict(JobChunk.objects.filter(job=job).values_list("no", "attempts"))
    assert max(attempts.values()) <= 2 and sum(attempts.values()) <= job.chunks_total + 1


def test_two_workers_share_one_job_and_never_take_the_same_chunk(acme, admin, settings, workers):
    settings.JOBS_CHUNK_SIZE = 50
    make_users(acme, 2_000, prefix="pair", domain="pair.test")
    workers.start("left")
    workers.start("right")
    workers.wait_for(_up("left", "right"), about="both workers")
    job = start(admin, acme, "send_recovery", everyone(q="pair.test"))  # two tasks: one each
    workers.wait_for(_finished(job), about="the shared job")
    assert_exactly_once(acme, job, 2_000)
    chunks = JobChunk.objects.filter(job=job)
    assert chunks.count() == 40 and set(chunks.values_list("attempts", flat=True)) == {1}
    shares = dict(chunks.values("done_by").annotate(n=Count("id")).values_list("done_by", "n"))
    assert set(shares) == {"left", "right"}, shares
    assert sum(shares.values()) == 40
    assert AppUser.objects.using(tenant_db.using(acme)).count() == 2_000
