"""The deployed shape's job worker killed with SIGKILL inside a chunk (``batchjobs.faults``), in
both passes (SQLite, the embedded default, and PostgreSQL): the instance's own worker, started
again, finishes the job exactly once (each user's link, audit entry and mail once)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.deployed import conftest as deployed

pytestmark = pytest.mark.deployed
USERS, CHUNK = 900, 300

START = """
import json
from django.utils import timezone
from accounts.app_users.batches import Selection
from accounts.app_users.selectors import UserFilters
from accounts.models import AppUser, User
from batchjobs import services
from tenants import db
from tenants.models import Tenant
tenant = Tenant.objects.get(slug="acme")
AppUser.objects.using(db.using(tenant)).bulk_create([
    AppUser(email=f"k{i:05d}@kill.test", name=f"Kill {i}", email_confirmed_at=timezone.now()) for i in range(%d)
], batch_size=500)
admin = User.objects.get(email="%s")
job = services.batch_preview(actor=admin, tenant=tenant, action="send_recovery",
                             selection=Selection(filters=UserFilters(q="kill.test")), options={})
job = services.job_start(actor=admin, tenant=tenant, job_id=job.pk, inline=False)
print(json.dumps({"job": str(job.pk), "chunks": job.chunks_total}))
"""

FIGURES = """
import json, time
from accounts.models import ActionToken, JobOutcome
from audit.models import AuditEntry
from batchjobs.models import Job, JobChunk
from outbox.models import OutboxMessage
from tenants import db
deadline = time.monotonic() + %d  # wait (in this one process) for the job to finish
while not Job.objects.get(pk="%s").is_finished and time.monotonic() < deadline:
    time.sleep(0.3)
job = Job.objects.select_related("tenant").get(pk="%s")
alias = db.using(job.tenant)
entries = AuditEntry.objects.filter(additional_data__job=str(job.pk)).exclude(event__startswith="job.")
mails = OutboxMessage.objects.filter(key__startswith=f"job:{job.pk.hex}:")
print(json.dumps({
    "state": job.state, "processed": job.processed, "skipped": job.skipped, "errors": job.errors,
    "outcomes": JobOutcome.objects.using(alias).filter(job_id=job.pk).count(),
    "tokens": ActionToken.objects.using(alias).filter(purpose="recovery", user__email__endswith="@kill.test")
              .values("user_id").distinct().count(),
    "token_rows": ActionToken.objects.using(alias).filter(purpose="recovery", user__email__endswith="@kill.test").count(),
    "entries": entries.count(), "entry_users": entries.values("object_pk").distinct().count(),
    "mails": mails.count(), "mail_users": mails.values("to").distinct().count(),
    "chunks_done": JobChunk.objects.filter(job=job, state="done").count(),
}))
"""


def _shell(instance, code: str, **env: str) -> dict:
    out = instance.manage("shell", "-c", code, extra_env=env)
    return json.loads(out.strip().splitlines()[-1])


def _wait(what, *, timeout: float, about: str, instance) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {about}\n{instance.log('jobs')[-3000:]}\n{instance.log('victim')[-3000:]}")
        time.sleep(0.3)


@pytest.fixture
def instance(tmp_path):
    """An instance of its own: its worker is killed, its outbox fills with 900 mails, and the
    journeys sharing the session's instance must not see either."""
    with deployed.running_instance(tmp_path) as inst:
        yield inst


def test_a_killed_job_worker_is_resumed_exactly_once(instance):
    regular = instance.procs["jobs"]
    regular.send_signal(signal.SIGTERM)  # the victim alone takes the job's tasks
    regular.wait(timeout=30)
    marker = instance.root / "victim.fault"
    env = {**instance.env, "JOBS_FAULT": "mid_chunk:2", "JOBS_FAULT_FILE": str(marker)}
    with (instance.log_dir / "victim.log").open("ab") as log:
        victim = subprocess.Popen(deployed.SERVICES["jobs"], cwd=deployed.ROOT, env=env, stdout=log,  # noqa: S603
                                  stderr=subprocess.STDOUT)
    try:
        started = _shell(instance, START % (USERS, deployed.ADMIN_EMAIL), JOBS_CHUNK_SIZE=str(CHUNK))
        assert started["chunks"] == USERS // CHUNK
        _wait(marker.exists, timeout=90, about="the victim at its fault point", instance=instance)
        victim.send_signal(signal.SIGKILL)  # inside the second chunk's tenant transaction
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    halfway = _shell(instance, FIGURES % (0, started["job"], started["job"]))
    assert halfway["state"] == "running" and halfway["processed"] == CHUNK, halfway
    instance.start("jobs", deployed.SERVICES["jobs"])  # the instance's worker again, as after a crash
    done = _shell(instance, FIGURES % (120, started["job"], started["job"]))
    assert done == {
        "state": "done", "processed": USERS, "skipped": 0, "errors": 0, "outcomes": USERS, "tokens": USERS,
        "token_rows": USERS, "entries": USERS, "entry_users": USERS, "mails": USERS, "mail_users": USERS,
        "chunks_done": USERS // CHUNK,
    }, done
    instance.assert_running()
