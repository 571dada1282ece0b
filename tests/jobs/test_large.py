"""One job over 50,000 users on PostgreSQL (20,000 on SQLite: 20 chunks, the same code path, at
less of the suite's time): every target processed once,
one audit entry per changed user, one mail per user the recovery was sent to. The users are
bulk-created; the job runs in this process as a worker's task would, chunk by chunk."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from accounts.models import ActionToken, AppUser, JobOutcome
from audit.models import AuditEntry
from batchjobs.models import JobChunk
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_users
from tests.jobs.conftest import everyone, run_all, start

pytestmark = pytest.mark.django_db
DELETED = 500


def test_a_recovery_job_over_tens_of_thousands_of_users(acme, admin, settings):
    USERS = 20_000 if connection.vendor == "sqlite" else 50_000  # noqa: N806
    settings.OUTBOX_DELIVERY = "worker"
    make_users(acme, USERS - DELETED, prefix="breach", domain="breach.test")
    make_users(acme, DELETED, prefix="gone", domain="breach.test", deleted_at=timezone.now())
    job = start(admin, acme, "send_recovery", everyone(q="breach.test"))
    assert (job.total, job.preview_skipped, job.chunks_total) == (USERS, DELETED, USERS // 1000)
    job = run_all(job)
    changed = USERS - DELETED
    assert (job.state, job.processed, job.skipped, job.errors) == ("done", changed, DELETED, 0)
    alias = tenant_db.using(acme)
    outcomes = JobOutcome.objects.using(alias).filter(job_id=job.pk)
    assert outcomes.count() == USERS and outcomes.values("seq").distinct().count() == USERS
    assert dict(outcomes.values("result").annotate(n=Count("id")).values_list("result", "n")) == {
        "done": changed, "skipped": DELETED}
    assert ActionToken.objects.using(alias).filter(purpose="recovery").values("user_id").distinct().count() == changed
    entries = AuditEntry.objects.filter(additional_data__job=str(job.pk)).exclude(event__startswith="job.")
    assert entries.count() == changed and entries.values("object_pk").distinct().count() == changed
    mails = OutboxMessage.objects.filter(key__startswith=f"job:{job.pk.hex}:")
    assert mails.count() == changed and mails.values("to").distinct().count() == changed
    assert not mails.filter(to__startswith="gone").exists()
    assert set(JobChunk.objects.filter(job=job).values_list("attempts", flat=True)) == {1}
    assert AppUser.objects.using(alias).count() == USERS
