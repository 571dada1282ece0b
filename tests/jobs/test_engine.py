"""Batch jobs in this process: the frozen preview, chunks, exact counts, audit and mail once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import BANNED_FOREVER, ActionToken, AppUser, JobOutcome, JobTarget
from audit.models import AuditEntry
from batchjobs import services
from batchjobs.models import Job, JobChunk
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_user, make_users
from tests.jobs.conftest import everyone, run_all, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_chunks(settings):
    settings.JOBS_CHUNK_SIZE = 100


def test_a_ban_job_bans_every_target_once_with_one_audit_entry_each(acme, admin, small_chunks):
    make_users(acme, 250, prefix="spam", domain="spam.test")
    make_user(acme, "already@spam.test", banned_until=BANNED_FOREVER)
    job = start(admin, acme, "ban", everyone(q="spam.test"), duration="forever", reason="spam wave")
    assert job.total == 251 and job.preview_skipped == 1 and job.chunks_total == 3
    assert job.skip_reasons == {"Already banned.": 1}
    job = run_all(job)
    assert job.state == Job.State.DONE
    assert (job.processed, job.skipped, job.errors) == (250, 1, 0)
    alias = tenant_db.using(acme)
    assert AppUser.objects.using(alias).filter(banned_until=BANNED_FOREVER).count() == 251
    assert JobOutcome.objects.using(alias).filter(job_id=job.pk).count() == 251
    entries = AuditEntry.objects.filter(event="app_user.ban", additional_data__job=str(job.pk))
    assert entries.count() == 250
    assert entries.values("object_pk").distinct().count() == 250
    assert AuditEntry.objects.filter(event="job.start", object_pk=str(job.pk)).count() == 1
    assert AuditEntry.objects.filter(event="job.finish", object_pk=str(job.pk)).count() == 1
    assert set(JobChunk.objects.filter(job=job).values_list("state", flat=True)) == {"done"}


def test_a_recovery_job_mails_each_target_once(acme, admin, small_chunks, settings):
    settings.OUTBOX_DELIVERY = "worker"
    make_users(acme, 120, prefix="reset", domain="breach.test")
    job = start(admin, acme, "send_recovery", everyone(q="breach.test"), sign_out=True)
    job = run_all(job)
    assert job.processed == 120
    mails = OutboxMessage.objects.filter(key__startswith=f"job:{job.pk.hex}:")
    assert mails.count() == 120 and mails.values("to").distinct().count() == 120
    alias = tenant_db.using(acme)
    assert ActionToken.objects.using(alias).filter(purpose="recovery").count() == 120
    # The raw tokens were only held until their mails were queued.
    assert not JobOutcome.objects.using(alias).filter(job_id=job.pk).exclude(payload="").exists()
    assert "/p/acme/recover/" in mails.first().body


def test_the_preview_is_frozen_users_created_or_changed_after_it_are_not_acted_on(acme, admin, small_chunks):
    users = make_users(acme, 10, prefix="frozen", domain="wave.test")
    job = services.batch_preview(actor=admin, tenant=acme, action="ban", selection=everyone(q="wave.test"),
                                 options={"duration": "7d"})
    make_user(acme, "late@wave.test")  # created after the preview
    alias = tenant_db.using(acme)
    AppUser.objects.using(alias).filter(pk=users[0].pk).update(name="Edited", updated_at=timezone.now())
    job = services.job_start(actor=admin, tenant=acme, job_id=job.pk, inline=False)
    job = run_all(job)
    assert (job.total, job.processed, job.skipped) == (10, 9, 1)
    assert not AppUser.objects.using(alias).get(email="late@wave.test").banned_until
    assert not AppUser.objects.using(alias).get(pk=users[0].pk).banned_until
    outcome = JobOutcome.objects.using(alias).get(job_id=job.pk, user_id=users[0].pk)
    assert (outcome.result, outcome.code) == ("skipped", "changed")


def test_a_stale_preview_cannot_start(acme, admin):
    make_users(acme, 3)
    job = services.batch_preview(actor=admin, tenant=acme, action="unban", selection=everyone())
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=16))
    from core.errors import Conflict

    with pytest.raises(Conflict) as caught:
        services.job_start(actor=admin, tenant=acme, job_id=job.pk)
    assert caught.value.code == "preview_expired"
    assert Job.objects.get(pk=job.pk).state == Job.State.EXPIRED
    assert not JobTarget.objects.using(tenant_db.using(acme)).filter(job_id=job.pk).exists()


def test_a_small_job_runs_in_the_request(acme, admin):
    make_users(acme, 5, prefix="few")
    job = services.batch_preview(actor=admin, tenant=acme, action="sign_out", selection=everyone(q="few"))
    job = services.job_start(actor=admin, tenant=acme, job_id=job.pk)
    assert job.state == Job.State.DONE and job.processed == 5
