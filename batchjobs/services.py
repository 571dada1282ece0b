"""Starting, scheduling, cancelling and undoing jobs: what the console, the API and the command
line call (keyword-only, actor first; each checks its permission and writes its audit entry).

A batch is two steps. ``batch_preview`` freezes the target list (``snapshot``): the exact users,
how many the preview already skips and why. ``job_start`` acts on exactly that snapshot (refused
once it is older than ``policy().job_preview_minutes``): small ones at once in the request, the
others on the runner, or at a chosen time (``run_at``). ``batch_start`` does both at once (the
API's ``202 Accepted``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.crypto import get_random_string

from accounts.app_users import job_actions
from accounts.app_users.batches import InviteRow, Selection, invite_rows_check
from accounts.app_users.selectors import app_user_filter
from accounts.app_users.services import audited_refusals, ban_until_for, clean_reason, clean_role, role_refused
from accounts.models import JobTarget
from batchjobs import engine, snapshot, tasks
from batchjobs.models import Job, JobChunk, JobItem
from core import request_context
from core.access import TenantRole, is_instance_admin, role_can
from core.errors import Conflict, Invalid, NotFound, Refused
from core.policy import policy
from tenants import db as tenant_db
from tenants import selectors as tenant_selectors
from tenants.access import actor_role
from tenants.config import tenant_settings
from tenants.models import Tenant

NO_SUCH_JOB = "No such job."


def _chunk_size() -> int:
    from django.conf import settings

    return max(1, int(getattr(settings, "JOBS_CHUNK_SIZE", 1000)))


def _key_of(actor: Any) -> Any:
    """The service key behind an API actor (``credentials.services.ApiKeyActor``), else None."""
    return getattr(actor, "key", None) if getattr(actor, "tenant_scope", None) is not None else None


def _new_job(*, actor: Any, tenant: Tenant | None, kind: str, action: str, options: dict[str, Any],
             selection: dict[str, Any], undo_of: Job | None = None) -> Job:
    ctx = request_context.current()
    return Job.objects.create(
        tenant=tenant, kind=kind, action=action, options=options, selection=selection,
        actor=actor if getattr(actor, "pk", None) else None, actor_email=getattr(actor, "email", "") or "",
        api_key=_key_of(actor),
        undo_of=undo_of, remote_addr=ctx.remote_addr if ctx else None,
        cid=ctx.correlation_id if ctx else "", base_url=(ctx.base_url if ctx else "")[:300],
        chunk_size=_chunk_size(),
    )


def _summarize(job: Job, alias: str) -> None:
    """The preview's figures: targets, and how many it already skips, by reason."""
    reasons = {
        row["skip_reason"]: row["n"]
        for row in JobTarget.objects.using(alias).filter(job_id=job.pk).exclude(skip_result="")
        .values("skip_reason").annotate(n=Count("id")).order_by()
    }
    job.skip_reasons = dict(sorted(reasons.items(), key=lambda item: -item[1]))
    job.preview_skipped = sum(reasons.values())
    job.chunks_total = math.ceil(job.total / job.chunk_size) if job.total else 0
    job.save(update_fields=["total", "skip_reasons", "preview_skipped", "chunks_total"])


def _refuse_too_large(job: Job, alias: str, cap: int) -> None:
    snapshot.discard(job, alias)
    Job.objects.filter(pk=job.pk).update(state=Job.State.EXPIRED, finished_at=timezone.now())
    raise Invalid(f"This selection holds more than {cap:,} users; one job acts on at most {cap:,}. "
                  "Narrow the search or the filters.", code="batch_too_large")


def clean_options(action: str, options: Mapping[str, Any], *, actor: Any, tenant: Tenant) -> dict[str, Any]:
    """The options of an action, checked: a ban's end (``until``, or a ``duration`` of the ban
    form) and reason, the new role, whether a recovery also signs out."""
    if action == "ban":
        until = options.get("until")
        if not isinstance(until, datetime):
            until = ban_until_for(str(options.get("duration") or ""), until=None)
        elif until <= timezone.now():
            raise Invalid("Choose a ban duration that ends in the future.", code="in_past", field="until")
        return {"until": until.isoformat(), "reason": clean_reason(options.get("reason", ""))}
    if action == "change_role":
        settings = tenant_settings(tenant)
        role = clean_role(options.get("role") or "", tenant=tenant, settings=settings)
        if not options.get("role"):
            raise Invalid("Choose the new role.", code="required", field="role")
        if role in settings.protected_roles and actor_role(actor, tenant) != TenantRole.ADMIN:
            raise Refused(f"Only a tenant admin may grant the protected role '{role}'.", code="protected_user",
                          action="change_role", target_pk="", target_repr="batch")
        return {"role": role}
    if action == "send_recovery":
        return {"sign_out": bool(options.get("sign_out"))}
    return {}


@audited_refusals
def batch_preview(*, actor: Any, tenant: Tenant, action: str, selection: Selection,
                  options: Mapping[str, Any] | None = None) -> Job:
    """Freeze the targets of a batch action: the job, in state ``preview``, with its figures.
    Raises ``Refused`` (code ``role``) when the actor's role does not allow the action,
    ``Invalid`` for bad options or a selection over ``policy().job_max_users``."""
    if action not in job_actions.ACTIONS:
        raise Invalid("Unknown batch action.", code="unknown_action", field="action")
    permission = job_actions.ACTIONS[action]
    if not role_can(actor_role(actor, tenant), permission):
        raise role_refused(permission, target_repr="batch")
    cleaned = clean_options(action, options or {}, actor=actor, tenant=tenant)
    alias = tenant_db.using(tenant)
    job = _new_job(actor=actor, tenant=tenant, kind=Job.Kind.USERS, action=action, options=cleaned,
                   selection=selection.describe())
    rules = job_actions.rules(action, actor=actor, tenant=tenant, options=cleaned, now=job.created_at)
    cap = policy().job_max_users
    if selection.filters is not None:
        qs = app_user_filter(tenant=tenant, filters=selection.filters)
        job.total = snapshot.from_queryset(job, alias, qs, rules, limit=cap + 1)
    else:
        job.total = snapshot.from_ids(job, alias, selection.ids, rules, limit=cap + 1)
    if job.total > cap:
        _refuse_too_large(job, alias, cap)
    _summarize(job, alias)
    return job


def _job_for(tenant: Tenant | None, job_id: Any, *, lock: bool = False) -> Job:
    qs = Job.objects.select_related("tenant", "actor", "api_key")
    if lock:
        qs = qs.select_for_update(of=("self",))
    try:
        job = qs.filter(pk=job_id, tenant=tenant).first()
    except (ValidationError, ValueError) as exc:  # a malformed id: not found, like a foreign one
        raise NotFound(NO_SUCH_JOB, code="job_not_found") from exc
    if job is None:
        raise NotFound(NO_SUCH_JOB, code="job_not_found")
    return job


def job_permission(job: Job) -> str:
    if job.kind == Job.Kind.IMPORT:
        return "import_users"
    if job.kind == Job.Kind.UNDO:
        return job_actions.ACTIONS[str(job.options.get("undone_action"))]
    return job_actions.ACTIONS[job.action]


def _allowed(actor: Any, job: Job) -> bool:
    if job.tenant is None:
        return is_instance_admin(actor)
    return role_can(actor_role(actor, job.tenant), job_permission(job))


def _make_chunks(job: Job) -> None:
    size = job.chunk_size
    JobChunk.objects.bulk_create(
        [JobChunk(job=job, no=n, first_seq=n * size + 1, last_seq=(n + 1) * size) for n in range(job.chunks_total)],
        batch_size=1000,
    )


def _enqueue_runners(job: Job) -> None:
    from django.conf import settings

    runners = max(1, min(int(getattr(settings, "JOBS_RUNNERS_PER_JOB", 2)), job.chunks_total or 1))
    for _ in range(runners):
        tasks.job_run.enqueue(str(job.pk))


def _run_inline(job: Job) -> Job:
    """A small job runs here and now, in the request (the runner would only add latency)."""
    engine.run(job.pk, worker_id=f"request-{get_random_string(12)}")
    job.refresh_from_db()
    return job


@audited_refusals
def job_start(*, actor: Any, tenant: Tenant, job_id: Any, run_at: datetime | None = None,
              inline: bool = True) -> Job:
    """Start a previewed job: now (small ones in this request when ``inline``), or at ``run_at``.
    Refused when the preview is someone else's, was already started, or is older than
    ``policy().job_preview_minutes`` (code ``preview_expired``: preview again)."""
    now = timezone.now()
    p = policy()
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        job = _job_for(tenant, job_id, lock=True)
        key = _key_of(actor)
        if job.actor_id != getattr(actor, "pk", None) or job.api_key_id != (key.pk if key else None):
            raise NotFound(NO_SUCH_JOB, code="job_not_found")
        if not _allowed(actor, job):
            raise role_refused(job_permission(job), target_repr="batch")
        if job.state != Job.State.PREVIEW:
            raise Conflict("This job was already started (or its preview expired).", code="job_state")
        expired = now - job.created_at > timedelta(minutes=p.job_preview_minutes)
        if not expired:
            if run_at is not None:
                if run_at <= now:
                    raise Invalid("Choose a time in the future.", code="in_past", field="run_at")
                if run_at > now + timedelta(days=p.job_schedule_max_days):
                    raise Invalid(f"A job can be scheduled at most {p.job_schedule_max_days} days ahead.",
                                  code="too_far", field="run_at")
            _make_chunks(job)
            job.heartbeat_at = now
            if run_at is not None:
                job.state, job.scheduled_for = Job.State.SCHEDULED, run_at
                job.save(update_fields=["state", "scheduled_for", "heartbeat_at"])
                engine.job_audit(job, "job.schedule", actor=actor, data={"scheduled_for": run_at})
                tasks.job_run.using(run_after=run_at).enqueue(str(job.pk))
                return job
            small = inline and job.total <= p.job_inline_max
            job.state, job.started_at = Job.State.QUEUED, now
            job.save(update_fields=["state", "started_at", "heartbeat_at"])
            engine.job_audit(job, "job.start", actor=actor, data={
                "selection": job.selection, "targets": job.total, "preview_skipped": job.preview_skipped,
                **({k: v for k, v in job.options.items()}), "inline": small,
            })
            if not small:
                _enqueue_runners(job)
    if expired:
        _expire(job)
        raise Conflict(f"This preview is more than {p.job_preview_minutes} minutes old: the users may have "
                       "changed since. Preview the batch again.", code="preview_expired")
    if job.state == Job.State.QUEUED and inline and job.total <= p.job_inline_max:
        return _run_inline(job)
    return job


def _expire(job: Job) -> None:
    if job.tenant is not None and job.tenant.is_usable:
        snapshot.discard(job, tenant_db.using(job.tenant))
    Job.objects.filter(pk=job.pk, state=Job.State.PREVIEW).update(state=Job.State.EXPIRED, finished_at=timezone.now())


def batch_start(*, actor: Any, tenant: Tenant, action: str, selection: Selection,
                options: Mapping[str, Any] | None = None, run_at: datetime | None = None,
                inline: bool = False) -> Job:
    """Preview and start in one call (the API): returns the job, queued (or scheduled). With
    ``inline`` a small job is done before this returns."""
    job = batch_preview(actor=actor, tenant=tenant, action=action, selection=selection, options=options)
    return job_start(actor=actor, tenant=tenant, job_id=job.pk, run_at=run_at, inline=inline)


@audited_refusals
def job_cancel(*, actor: Any, tenant: Tenant | None, job_id: Any) -> Job:
    """Cancel a job: a scheduled or queued one never starts; a running one stops after the
    chunks in flight (what was done stays done, the rest is untouched); a preview is discarded."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        job = _job_for(tenant, job_id, lock=True)
        if not _allowed(actor, job):
            raise role_refused(job_permission(job), target_repr="job")
        if job.is_finished or job.state == Job.State.CANCELLING:
            raise Conflict("This job has already finished.", code="job_state")
        now = timezone.now()
        previous = job.state
        if job.state == Job.State.PREVIEW:
            job.state, job.finished_at = Job.State.EXPIRED, now
        elif job.state in (Job.State.SCHEDULED, Job.State.QUEUED):
            job.state, job.finished_at = Job.State.CANCELLED, now
        else:
            job.state = Job.State.CANCELLING
        job.cancel_requested_at, job.cancelled_by = now, actor if getattr(actor, "pk", None) else None
        job.save(update_fields=["state", "finished_at", "cancel_requested_at", "cancelled_by"])
        if previous != Job.State.PREVIEW:
            engine.job_audit(job, "job.cancel", actor=actor, data={"was": previous, "processed": job.processed})
    if previous == Job.State.PREVIEW and job.tenant is not None:
        snapshot.discard(job, tenant_db.using(job.tenant))
    return job


def undo_refusal(job: Job, *, now: datetime | None = None) -> str:
    """Why this job cannot be undone ("" when it can)."""
    now = now or timezone.now()
    if job.kind != Job.Kind.USERS or job.action not in job_actions.UNDOABLE:
        return "Only a ban, an unban or a role change can be undone."
    if job.state not in (Job.State.DONE, Job.State.CANCELLED) or job.finished_at is None:
        return "Only a finished job can be undone."
    if not job.processed:
        return "This job changed nobody."
    if now - job.finished_at > timedelta(days=policy().job_undo_days):
        return f"A job can be undone for {policy().job_undo_days} days after it finished."
    if job.undos.exclude(state__in=[Job.State.FAILED, Job.State.EXPIRED]).exists():
        return "This job was already undone."
    return ""


@audited_refusals
def job_undo(*, actor: Any, tenant: Tenant, job_id: Any, inline: bool = True) -> Job:
    """Undo a finished ban, unban or role-change job (within ``policy().job_undo_days``): a new
    job puts each user it changed back to the state stored at the change, and skips (reports)
    users changed since. Sessions a ban ended stay ended. Returns the undo job, started."""
    alias = tenant_db.using(tenant)
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        original = _job_for(tenant, job_id, lock=True)
        if not _allowed(actor, original):
            raise role_refused(job_permission(original), target_repr="job")
        refusal = undo_refusal(original)
        if refusal:
            raise Conflict(refusal, code="not_undoable")
        job = _new_job(actor=actor, tenant=tenant, kind=Job.Kind.UNDO, action="undo",
                       options={"undone_action": original.action}, selection={"scope": "undo", "job": str(original.pk)},
                       undo_of=original)
        job.total = snapshot.from_outcomes(job, alias, original)
        _summarize(job, alias)
        _make_chunks(job)
        job.state, job.started_at, job.heartbeat_at = Job.State.QUEUED, timezone.now(), timezone.now()
        job.save(update_fields=["state", "started_at", "heartbeat_at"])
        engine.job_audit(job, "job.undo", actor=actor, data={"undo_of": str(original.pk), "targets": job.total,
                                                              "undone_action": original.action})
        small = inline and job.total <= policy().job_inline_max
        if not small:
            _enqueue_runners(job)
    return _run_inline(job) if small else job


# --- Import and migrate --all --------------------------------------------------------------------


_EMAIL_COLUMN = JobTarget._meta.get_field("email").max_length or 254
_NAME_COLUMN = JobTarget._meta.get_field("name").max_length or 150
_ROLE_COLUMN = JobTarget._meta.get_field("role").max_length or 32


@audited_refusals
def import_preview(*, actor: Any, tenant: Tenant, rows: list[InviteRow]) -> Job:
    """Freeze the rows of an invitation CSV (checked one by one: errors and skips decided now,
    existing addresses checked again when each chunk runs)."""
    if not role_can(actor_role(actor, tenant), "import_users"):
        raise role_refused("import_users", target_repr="import")
    cap = policy().job_max_users
    if len(rows) > cap:
        raise Invalid(f"One import invites at most {cap:,} people; split the file.", code="batch_too_large")
    invite_rows_check(actor=actor, tenant=tenant, rows=rows)
    alias = tenant_db.using(tenant)
    job = _new_job(actor=actor, tenant=tenant, kind=Job.Kind.IMPORT, action="invite", options={},
                   selection={"scope": "import", "rows": len(rows)})
    targets = (
        # A refused row keeps what was typed, cut to the columns (its error says why it was refused).
        JobTarget(job_id=job.pk, seq=seq, email=row.email[:_EMAIL_COLUMN], name=row.name[:_NAME_COLUMN],
                  role=row.role[:_ROLE_COLUMN], line=row.line,
                  skip_result="error" if row.error else ("skipped" if row.skip else ""),
                  skip_code="invalid" if row.error else ("duplicate" if row.skip else ""),
                  skip_reason=(row.error or row.skip)[:300])
        for seq, row in enumerate(rows, start=1)
    )
    with transaction.atomic(using=alias):
        JobTarget.objects.using(alias).bulk_create(targets, batch_size=1000)
    job.total = len(rows)
    _summarize(job, alias)
    return job


@audited_refusals
def migrate_all_start(*, actor: Any) -> Job:
    """``migrate --all`` on the runner: one item per tenant with a database, each migrated on
    its own (a failing tenant is reported, the others go on). Instance admins only."""
    if actor is not None and not is_instance_admin(actor):
        raise Refused("Only instance admins manage tenants.", code="forbidden")
    tenants = tenant_selectors.tenant_list()
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        job = _new_job(actor=actor, tenant=None, kind=Job.Kind.MIGRATE, action="migrate", options={},
                       selection={"scope": "tenants"})
        job.chunk_size = 1
        job.total = len(tenants)
        job.chunks_total = len(tenants)
        JobItem.objects.bulk_create(
            [JobItem(job=job, seq=seq, label=t.slug, ref=str(t.pk)) for seq, t in enumerate(tenants, start=1)]
        )
        job.state, job.started_at, job.heartbeat_at = Job.State.QUEUED, timezone.now(), timezone.now()
        job.save()
        _make_chunks(job)
        engine.job_audit(job, "job.start", actor=actor, data={"tenants": job.total})
        _enqueue_runners(job)
    return job

