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


def test_cancel_mid_way_leaves_the_rest_untouched_with_exact_counts(acme, admin, small_chunks):
    make_users(acme, 350, prefix="c", domain="cancel.test")
    job = start(admin, acme, "ban", everyone(q="cancel.test"), duration="24h")
    job = run_all(job, max_chunks=2)
    assert job.state == Job.State.RUNNING and job.processed == 200
    services.job_cancel(actor=admin, tenant=acme, job_id=job.pk)
    job = run_all(job)
    assert job.state == Job.State.CANCELLED
    assert (job.processed, job.skipped, job.errors) == (200, 0, 0)
    alias = tenant_db.using(acme)
    assert AppUser.objects.using(alias).filter(banned_until__isnull=False).count() == 200
    assert JobOutcome.objects.using(alias).filter(job_id=job.pk).count() == 200
    assert AuditEntry.objects.filter(event="app_user.ban", additional_data__job=str(job.pk)).count() == 200
    assert AuditEntry.objects.filter(event="job.cancel", object_pk=str(job.pk)).count() == 1
    finish = AuditEntry.objects.get(event="job.finish", object_pk=str(job.pk))
    assert finish.additional_data["state"] == "cancelled" and finish.additional_data["untouched"] == 150


def test_a_scheduled_job_waits_and_can_be_cancelled_until_it_starts(acme, admin):
    make_users(acme, 4, prefix="later")
    job = services.batch_preview(actor=admin, tenant=acme, action="ban", selection=everyone(q="later"),
                                 options={"duration": "1h"})
    at = timezone.now() + timedelta(hours=2)
    job = services.job_start(actor=admin, tenant=acme, job_id=job.pk, run_at=at)
    assert job.state == Job.State.SCHEDULED and job.scheduled_for == at
    assert run_all(job).state == Job.State.SCHEDULED  # its time has not come: nothing happens
    from django_tasks_db.models import DBTaskResult

    task = DBTaskResult.objects.get(args_kwargs__args=[str(job.pk)])
    assert task.run_after == at
    services.job_cancel(actor=admin, tenant=acme, job_id=job.pk)
    assert run_all(job).state == Job.State.CANCELLED
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(banned_until__isnull=False).exists()


def test_a_scheduled_job_runs_once_its_time_has_come(acme, admin):
    make_users(acme, 4, prefix="later")
    job = services.batch_preview(actor=admin, tenant=acme, action="ban", selection=everyone(q="later"),
                                 options={"duration": "1h"})
    job = services.job_start(actor=admin, tenant=acme, job_id=job.pk, run_at=timezone.now() + timedelta(hours=1))
    Job.objects.filter(pk=job.pk).update(scheduled_for=timezone.now() - timedelta(seconds=1))
    job = run_all(job)
    assert job.state == Job.State.DONE and job.processed == 4
    assert AuditEntry.objects.filter(event="job.schedule", object_pk=str(job.pk)).count() == 1
    assert AuditEntry.objects.filter(event="job.start", object_pk=str(job.pk)).count() == 1


def test_undo_restores_the_prior_state_and_skips_users_changed_since(acme, admin, small_chunks):
    alias = tenant_db.using(acme)
    users = make_users(acme, 150, prefix="u", domain="undo.test")
    earlier = timezone.now() + timedelta(days=3)
    AppUser.objects.using(alias).filter(pk=users[0].pk).update(banned_until=earlier - timedelta(days=10),
                                                               ban_reason="old, expired")
    job = run_all(start(admin, acme, "ban", everyone(q="undo.test"), duration="forever", reason="wave"))
    assert job.processed == 150
    # Someone changes two of them in the meantime: the undo leaves those as they are.
    AppUser.objects.using(alias).filter(pk__in=[users[1].pk, users[2].pk]).update(
        ban_reason="reviewed by hand", updated_at=timezone.now() + timedelta(seconds=1))
    undo = services.job_undo(actor=admin, tenant=acme, job_id=job.pk, inline=False)
    assert undo.kind == Job.Kind.UNDO and undo.total == 150
    undo = run_all(undo)
    assert (undo.state, undo.processed, undo.skipped) == (Job.State.DONE, 148, 2)
    first = AppUser.objects.using(alias).get(pk=users[0].pk)
    assert first.ban_reason == "old, expired" and first.banned_until == earlier - timedelta(days=10)
    assert AppUser.objects.using(alias).filter(banned_until=BANNED_FOREVER).count() == 2
    assert AppUser.objects.using(alias).filter(banned_until__isnull=True).count() == 147
    skipped = JobOutcome.objects.using(alias).filter(job_id=undo.pk, result="skipped")
    assert set(skipped.values_list("user_id", flat=True)) == {users[1].pk, users[2].pk}
    assert AuditEntry.objects.filter(event="app_user.undo", additional_data__job=str(undo.pk)).count() == 148
    assert AuditEntry.objects.filter(event="job.undo", object_pk=str(undo.pk)).count() == 1
    from core.errors import Conflict

    with pytest.raises(Conflict):  # once
        services.job_undo(actor=admin, tenant=acme, job_id=job.pk)


def test_a_ban_job_of_thousands_writes_exact_outcomes_entries_events_and_undoes(acme, admin):
    """Chunks of 1,000 (outcomes, audit entries and events by COPY on PostgreSQL): one outcome,
    one entry and one event per user, a chain that verifies, and an undo that reads each
    outcome's prior state back."""
    from audit import chain
    from events.models import Event

    alias = tenant_db.using(acme)
    users = make_users(acme, 2_400, prefix="w", domain="wave.test")
    earlier = timezone.now() - timedelta(days=2)
    AppUser.objects.using(alias).filter(pk__in=[u.pk for u in users[:5]]).update(
        banned_until=earlier, ban_reason="old, expired")
    job = run_all(start(admin, acme, "ban", everyone(q="wave.test"), duration="forever", reason="wave"))
    assert (job.chunks_total, job.processed, job.skipped, job.errors) == (3, 2_400, 0, 0)
    outcomes = JobOutcome.objects.using(alias).filter(job_id=job.pk)
    assert outcomes.filter(result="done").count() == 2_400
    assert outcomes.get(user_id=users[0].pk).before == {"banned_until": earlier.isoformat(),
                                                         "ban_reason": "old, expired"}
    assert outcomes.get(user_id=users[9].pk).before == {"banned_until": None, "ban_reason": ""}
    entries = AuditEntry.objects.filter(event="app_user.ban", additional_data__job=str(job.pk))
    assert entries.count() == 2_400
    assert entries.get(object_pk=str(users[0].pk)).changes == {
        "ban_reason": ["old, expired", "wave"], "banned_until": [earlier.isoformat(), BANNED_FOREVER.isoformat()]}
    assert Event.objects.filter(tenant_id=acme.pk, type="user.banned").count() == 2_400
    assert chain.verify(chain.chain_key(acme.pk)).ok

    undo = run_all(services.job_undo(actor=admin, tenant=acme, job_id=job.pk, inline=False))
    assert (undo.processed, undo.skipped) == (2_400, 0)
    assert AppUser.objects.using(alias).filter(banned_until=earlier, ban_reason="old, expired").count() == 5
    assert AppUser.objects.using(alias).filter(banned_until__isnull=True).count() == 2_395
    assert chain.verify(chain.chain_key(acme.pk)).ok


def test_undo_of_a_role_change(acme, admin):
    alias = tenant_db.using(acme)
    make_users(acme, 6, prefix="r", role="user")
    job = services.batch_preview(actor=admin, tenant=acme, action="change_role", selection=everyone(q="r0"),
                                 options={"role": "admin"})
    job = services.job_start(actor=admin, tenant=acme, job_id=job.pk)
    assert job.processed == 6 and AppUser.objects.using(alias).filter(role="admin").count() == 6
    services.job_undo(actor=admin, tenant=acme, job_id=job.pk)
    assert AppUser.objects.using(alias).filter(role="user").count() == 6


def test_an_old_job_cannot_be_undone(acme, admin):
    make_users(acme, 2, prefix="old")
    job = services.job_start(actor=admin, tenant=acme, job_id=services.batch_preview(
        actor=admin, tenant=acme, action="ban", selection=everyone(q="old"), options={"duration": "1h"}).pk)
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=8))
    assert "7 days" in services.undo_refusal(Job.objects.get(pk=job.pk))


@pytest.mark.parametrize("action,expected", [
    ("confirm_email", lambda u: u.email_confirmed_at is not None),
    ("delete", lambda u: u.deleted_at is not None and u.email.endswith("@deleted.invalid")),
    ("send_magic_link", lambda u: True),
    ("resend_invitation", lambda u: True),
])
def test_every_batch_action_runs_as_a_job(acme, admin, action, expected, settings):
    settings.OUTBOX_DELIVERY = "worker"
    now = timezone.now()
    make_users(acme, 3, prefix="act", email_confirmed_at=None, invited_at=now)
    job = run_all(start(admin, acme, action, everyone(q="act")))
    assert (job.state, job.processed, job.skipped, job.errors) == (Job.State.DONE, 3, 0, 0), job.skip_reasons
    alias = tenant_db.using(acme)
    assert all(expected(u) for u in AppUser.objects.using(alias).all())
    assert AuditEntry.objects.filter(additional_data__job=str(job.pk), event__startswith="app_user.").count() == 3
    if action in ("send_magic_link", "resend_invitation"):
        assert OutboxMessage.objects.filter(key__startswith=f"job:{job.pk.hex}:").count() == 3


def test_hard_delete_job(acme, admin):
    make_users(acme, 3, prefix="gone")
    job = run_all(start(admin, acme, "hard_delete", everyone(q="gone")))
    assert job.processed == 3
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()
    assert AuditEntry.objects.filter(event="app_user.delete", additional_data__job=str(job.pk)).count() == 3


def test_skips_protected_users_and_yourself(acme, admin, staff_factory):
    from accounts.app_users.tenant_settings import tenant_settings_update

    support = staff_factory("me@acme.test", tenants={acme: "support"})
    tenant_settings_update(actor=admin, tenant=acme, values={"protected_roles": ["owner"], "roles": ["user", "owner"]})
    make_user(acme, "me@acme.test")
    make_user(acme, "boss@acme.test", role="owner")
    make_users(acme, 3, prefix="plain", domain="acme.test")
    job = run_all(start(support, acme, "sign_out", everyone(q="acme.test")))
    assert (job.processed, job.skipped) == (3, 2)
    codes = set(JobOutcome.objects.using(tenant_db.using(acme)).filter(job_id=job.pk, result="skipped")
                .values_list("code", flat=True))
    assert codes == {"self_action", "protected_user"}


def test_support_cannot_start_a_ban_job_and_the_refusal_is_audited(acme, support):
    from core.errors import Refused

    make_users(acme, 2)
    with pytest.raises(Refused) as caught:
        services.batch_preview(actor=support, tenant=acme, action="ban", selection=everyone(),
                               options={"duration": "1h"})
    assert caught.value.code == "role"
    assert AuditEntry.objects.filter(event="app_user.refused", actor=support).exists()
    assert not Job.objects.exists()


def test_a_job_of_one_tenant_is_not_found_in_another(acme, globex, admin):
    from core.errors import NotFound

    make_users(acme, 2)
    job = services.batch_preview(actor=admin, tenant=acme, action="sign_out", selection=everyone())
    with pytest.raises(NotFound):
        services.job_start(actor=admin, tenant=globex, job_id=job.pk)
    with pytest.raises(NotFound):
        services.job_cancel(actor=admin, tenant=globex, job_id=job.pk)
    with pytest.raises(NotFound):
        services.job_start(actor=admin, tenant=acme, job_id="not-a-uuid")


def test_a_job_whose_actor_lost_the_role_stops(acme, admin, small_chunks):
    from tenants.models import TenantAdmin

    make_users(acme, 150, prefix="x")
    job = start(admin, acme, "ban", everyone(q="x"), duration="1h")
    job = run_all(job, max_chunks=1)
    TenantAdmin.objects.filter(user=admin, tenant=acme).update(role="viewer")
    admin._tenant_roles = {}
    job = run_all(Job.objects.get(pk=job.pk))
    assert job.state == Job.State.FAILED and job.processed == 100
    assert "may no longer" in job.last_error


def test_import_job_invites_new_rows_once(acme, admin, settings):
    from accounts.app_users.batches import InviteRow

    settings.OUTBOX_DELIVERY = "worker"
    make_user(acme, "known@acme.test")
    rows = [InviteRow(line=i + 2, email=f"new{i}@acme.test", name=f"New {i}") for i in range(5)]
    rows += [InviteRow(line=8, email="known@acme.test"), InviteRow(line=9, email="bad"),
             InviteRow(line=10, email="new0@acme.test")]
    job = services.import_preview(actor=admin, tenant=acme, rows=rows)
    assert job.total == 8 and job.preview_skipped == 3  # bad address, duplicate in the file, existing
    job = run_all(services.job_start(actor=admin, tenant=acme, job_id=job.pk, inline=False))
    assert (job.processed, job.skipped, job.errors) == (5, 2, 1)
    alias = tenant_db.using(acme)
    assert AppUser.objects.using(alias).filter(email__startswith="new", invited_at__isnull=False).count() == 5
    assert OutboxMessage.objects.filter(key__startswith=f"job:{job.pk.hex}:", kind="invite").count() == 5
    assert AuditEntry.objects.filter(event="app_user.invite", additional_data__job=str(job.pk)).count() == 5


def test_migrate_all_runs_as_a_job(acme, globex, staff_factory):
    from tenants import db as tenants_db

    root = staff_factory("root@console.test", superuser=True)
    tenants_db.migrate_database(acme, target=[("accounts", "0001_initial")])  # acme is behind
    acme.schema_version = tenants_db.applied_schema_version(acme)
    acme.save(update_fields=["schema_version"])
    job = services.migrate_all_start(actor=root)
    job = run_all(job)
    assert (job.state, job.processed, job.errors) == (Job.State.DONE, 2, 0)
    # globex, recorded as current, is answered without opening its database (nor an entry).
    assert list(AuditEntry.objects.filter(event="tenant.migrate").values_list("tenant__slug", flat=True)) == ["acme"]
    acme.refresh_from_db()
    assert not tenants_db.is_behind(acme)
