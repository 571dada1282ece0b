"""What each kind of job does with one chunk (``engine`` drives them; see its docstring):

- ``tenant_phase``: one transaction in the tenant database: the changes and their outcomes;
- ``relay``: inside the engine's control transaction: audit entries and mails from the outcomes,
  returning (processed, skipped, errors) for the job's counters;
- ``after_relay`` / ``after_finish``: blank the link tokens the outcomes held;
- ``check``: before each run, whether the job may go on (tenant open, actor still allowed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone

from accounts.app_users import job_actions
from accounts.models import ActionToken, AppUser, JobOutcome, JobTarget
from accounts.tokens import token_issue_many
from audit import services as audit
from batchjobs import faults
from batchjobs.models import Job, JobChunk, JobItem
from core import pgcopy
from core.access import is_instance_admin
from core.errors import Refused, ServiceError
from outbox.services import Mail, mail_enqueue_many
from tenants import db as tenant_db
from tenants.access import can
from tenants.config import tenant_settings
from tenants.models import Tenant

DONE, SKIPPED, ERROR = JobOutcome.Result.DONE, JobOutcome.Result.SKIPPED, JobOutcome.Result.ERROR
ACTOR_GONE = "The staff member or service key that started this job may no longer do it; it stops here."


class Kind(Protocol):
    def check(self, job: Job) -> None: ...
    def tenant_phase(self, job: Job, chunk: JobChunk) -> None: ...
    def relay(self, job: Job, chunk: JobChunk) -> tuple[int, int, int]: ...
    def after_relay(self, job: Job, chunk: JobChunk) -> None: ...
    def after_finish(self, job: Job) -> None: ...


def mail_key(job: Job, user_pk: Any) -> str:
    """One mail per job and user, whatever happens (the outbox ignores a second one)."""
    return f"job:{job.pk.hex}:{user_pk}"


def _counts(results: Sequence[str]) -> tuple[int, int, int]:
    return results.count(DONE), results.count(SKIPPED), results.count(ERROR)


def _enqueue(mails: list[Mail], tenant: Tenant) -> None:
    half = len(mails) // 2
    mail_enqueue_many(mails[:half], tenant=tenant)
    faults.reach("mail_enqueue")
    mail_enqueue_many(mails[half:], tenant=tenant)


def _outcome(job: Job, seq: int, user_id: Any, email: str, result: str, code: str = "", reason: str = "",
             **extra: Any) -> JobOutcome:
    return JobOutcome(job_id=job.pk, seq=seq, user_id=user_id, email=email, result=result, code=code,
                      reason=reason, **extra)


_OUTCOME_COLUMNS = ("job_id", "seq", "user_id", "email", "result", "code", "reason", "before", "after_updated_at",
                    "payload", "created_at")


def _write_outcomes(alias: str, outcomes: list[JobOutcome]) -> None:
    """One COPY on PostgreSQL (``before`` as its ``json.dumps`` text, as the JSONField writes
    it), a bulk INSERT elsewhere."""
    if not pgcopy.copies(len(outcomes), using=alias):
        JobOutcome.objects.using(alias).bulk_create(outcomes, batch_size=500)
        return
    before = pgcopy.json_texts()
    pgcopy.copy_rows(JobOutcome._meta.db_table, _OUTCOME_COLUMNS, (
        [o.job_id, o.seq, o.user_id, o.email, o.result, o.code, o.reason, before(o.before), o.after_updated_at,
         o.payload, o.created_at] for o in outcomes
    ), using=alias)


class _TenantKind:
    """Shared by the kinds whose targets and outcomes live in the tenant's database."""

    permission = ""

    def permission_of(self, job: Job) -> str:
        return self.permission

    def links_of(self, job: Job) -> bool:
        """Whether the outcomes hold link tokens until their mails are queued."""
        return False

    def check(self, job: Job) -> None:
        assert job.tenant is not None
        tenant_db.using(job.tenant)  # refuses a tenant that is deleted or purged
        actor = job.by  # a staff member, or a service key (revoked or expired: no role)
        if actor is None or not can(actor, job.tenant, self.permission_of(job)):
            raise Refused(ACTOR_GONE, code="actor_refused")

    def _range(self, model: type[Any], job: Job, chunk: JobChunk) -> Any:
        assert job.tenant is not None
        return model.objects.using(tenant_db.using(job.tenant)).filter(
            job_id=job.pk, seq__gte=chunk.first_seq, seq__lte=chunk.last_seq
        )

    def _pending(self, job: Job, chunk: JobChunk, fields: Sequence[str]) -> list[dict[str, Any]]:
        """The chunk's targets without an outcome, their rows locked until the transaction ends
        (a second worker on the same chunk waits here, then finds the outcomes written)."""
        targets = list(self._range(JobTarget, job, chunk).select_for_update().order_by("seq").values(*fields))
        done = set(self._range(JobOutcome, job, chunk).values_list("seq", flat=True))
        return [t for t in targets if t["seq"] not in done]

    def after_relay(self, job: Job, chunk: JobChunk) -> None:
        if self.links_of(job):
            self._range(JobOutcome, job, chunk).exclude(payload="").update(payload="")

    def after_finish(self, job: Job) -> None:
        if self.links_of(job) and job.tenant is not None and job.tenant.is_usable:
            JobOutcome.objects.using(tenant_db.using(job.tenant)).filter(job_id=job.pk).exclude(
                payload=""
            ).update(payload="")


class UsersKind(_TenantKind):
    """A batch action on app users (ban, unban, links, sign out, delete, role, confirm), and the
    undo of a ban, an unban or a role change."""

    def __init__(self, undo: bool = False) -> None:
        self.undo = undo

    def action_of(self, job: Job) -> str:
        return str(job.options.get("undone_action", "")) if self.undo else job.action

    def permission_of(self, job: Job) -> str:
        return job_actions.ACTIONS[self.action_of(job)]

    def links_of(self, job: Job) -> bool:
        return not self.undo and self.action_of(job) in job_actions.LINK_PURPOSES

    def tenant_phase(self, job: Job, chunk: JobChunk) -> None:
        assert job.tenant is not None
        tenant, actor, action = job.tenant, job.by, self.action_of(job)
        alias = tenant_db.using(tenant)
        now = timezone.now()
        with transaction.atomic(using=alias):
            pending = self._pending(job, chunk, (
                "seq", "user_id", "email", "skip_result", "skip_code", "skip_reason", "restore",
                "expected_updated_at",
            ))
            if not pending:
                return
            users = job_actions.load(alias, [t["user_id"] for t in pending if t["user_id"]])
            rules = job_actions.rules("undo" if self.undo else action, actor=actor, tenant=tenant,
                                      options=job.options, now=now)
            outcomes: list[JobOutcome] = []
            ready: list[tuple[dict[str, Any], AppUser]] = []
            for target in pending:
                seq, email = target["seq"], target["email"]
                user = users.get(target["user_id"])
                skip: tuple[str, str] | None = None
                if target["skip_result"]:
                    outcomes.append(_outcome(job, seq, target["user_id"], email, target["skip_result"],
                                             target["skip_code"], target["skip_reason"]))
                    continue
                if user is None:
                    skip = job_actions.GONE
                elif self.undo and user.updated_at != target["expected_updated_at"]:
                    skip = job_actions.CHANGED_SINCE_JOB
                elif not self.undo and user.updated_at > job.created_at:
                    skip = job_actions.CHANGED
                else:
                    rule = next((r for r in rules if r.applies(user)), None)
                    skip = (rule.code, rule.reason) if rule is not None else None
                if skip is not None:
                    outcomes.append(_outcome(job, seq, target["user_id"], email, SKIPPED, *skip))
                else:
                    assert user is not None
                    ready.append((target, user))
            raws: dict[Any, str] = {}
            if self.undo:
                befores: dict[Any, dict[str, Any] | None] = {
                    u.pk: audit.snapshot(u, list(t["restore"] or {})) for t, u in ready
                }
                job_actions.undo_apply(alias=alias, users=[(u, t["restore"] or {}) for t, u in ready], now=now)
            else:
                befores = {u.pk: job_actions.before(action, u) for _, u in ready}
                raws = job_actions.apply(action, alias=alias, tenant=tenant, users=[u for _, u in ready],
                                         now=now, options=job.options, actor=actor)
            touches = self.undo or action in job_actions.TOUCHES_ROW
            for target, user in ready:
                outcomes.append(_outcome(
                    job, target["seq"], user.pk, user.email, DONE, before=befores[user.pk],
                    after_updated_at=now if touches else None, payload=raws.get(user.pk, ""),
                ))
            faults.reach("mid_chunk")
            _write_outcomes(alias, outcomes)

    def relay(self, job: Job, chunk: JobChunk) -> tuple[int, int, int]:
        assert job.tenant is not None
        tenant, action = job.tenant, self.action_of(job)
        rows = list(self._range(JobOutcome, job, chunk).values(
            "seq", "user_id", "email", "result", "before", "after_updated_at", "payload"
        ))
        done = [r for r in rows if r["result"] == DONE]
        data = {"job": str(job.pk)}
        if self.undo:
            restores = dict(self._range(JobTarget, job, chunk).values_list("seq", "restore"))
            data["undo_of"] = str(job.undo_of_id)
            entries = [job_actions.undo_entry(user_pk=r["user_id"], email=r["email"], before=r["before"],
                                              restore=restores.get(r["seq"]) or {}, data=data)
                       for r in done]
        else:
            diffs: dict[Any, Any] = {}  # one diff per distinct prior state (most share one)
            entries = [job_actions.audit_entry(action, user_pk=r["user_id"], email=r["email"], before=r["before"],
                                               options=job.options, at=r["after_updated_at"], data=data,
                                               diffs=diffs)
                       for r in done]
        if entries:
            audit.record_many(entries, actor=job.by, tenant=tenant)
        if action in job_actions.LINK_PURPOSES and not self.undo:
            settings = tenant_settings(tenant)
            names = dict(self._range(JobTarget, job, chunk).values_list("seq", "name"))
            mails = [
                m for r in done
                if (m := job_actions.mail(action, tenant=tenant, settings=settings, key=mail_key(job, r["user_id"]),
                                          user_pk=r["user_id"], email=r["email"], name=names.get(r["seq"], ""),
                                          raw=r["payload"])) is not None
            ]
            _enqueue(mails, tenant)
        return _counts([r["result"] for r in rows])


class ImportKind(_TenantKind):
    """Invite the rows of a CSV file: a user, an invitation link and its mail per valid new row."""

    permission = "import_users"

    def links_of(self, job: Job) -> bool:
        return True

    def tenant_phase(self, job: Job, chunk: JobChunk) -> None:
        assert job.tenant is not None
        tenant = job.tenant
        alias = tenant_db.using(tenant)
        now = timezone.now()
        with transaction.atomic(using=alias):
            pending = self._pending(job, chunk, ("seq", "email", "name", "role", "skip_result", "skip_code",
                                                 "skip_reason"))
            if not pending:
                return
            emails = [t["email"] for t in pending if not t["skip_result"]]
            existing = set(
                AppUser.objects.using(alias).filter(email__in=emails).values_list("email", flat=True)
            )
            outcomes, new = [], []
            for target in pending:
                if target["skip_result"]:
                    outcomes.append(_outcome(job, target["seq"], None, target["email"], target["skip_result"],
                                             target["skip_code"], target["skip_reason"]))
                elif target["email"] in existing:
                    outcomes.append(_outcome(job, target["seq"], None, target["email"], SKIPPED, "exists",
                                             "Already a user of this tenant."))
                else:
                    existing.add(target["email"])
                    new.append((target, AppUser(
                        email=target["email"], name=target["name"], role=target["role"], created_at=now,
                        updated_at=now, invited_at=now, invited_by=getattr(job.actor, "pk", None),
                    )))
            if new:
                AppUser.objects.using(alias).bulk_create([u for _, u in new], batch_size=500)
                raws = token_issue_many(tenant=tenant, user_ids=[u.pk for _, u in new],
                                        purpose=ActionToken.Purpose.INVITE, created_by=job.actor)
                outcomes.extend(
                    _outcome(job, t["seq"], u.pk, u.email, DONE, after_updated_at=now, payload=raws[u.pk],
                             before={"name": u.name, "role": u.role})
                    for t, u in new
                )
            faults.reach("mid_chunk")
            _write_outcomes(alias, outcomes)

    def relay(self, job: Job, chunk: JobChunk) -> tuple[int, int, int]:
        assert job.tenant is not None
        tenant = job.tenant
        rows = list(self._range(JobOutcome, job, chunk).values(
            "seq", "user_id", "email", "result", "before", "after_updated_at", "payload"
        ))
        done = [r for r in rows if r["result"] == DONE]
        entries = [
            audit.Entry(
                event="app_user.invite", target_model=AppUser, target_pk=r["user_id"], target_repr=r["email"],
                action=audit.CREATE,
                changes=audit.diff(None, {"email": r["email"], **(r["before"] or {}),
                                          "invited_at": r["after_updated_at"]}),
                data={"job": str(job.pk), "source": "csv"},
            )
            for r in done
        ]
        if entries:
            audit.record_many(entries, actor=job.by, tenant=tenant)
        settings = tenant_settings(tenant)
        mails = [
            m for r in done
            if (m := job_actions.mail("resend_invitation", tenant=tenant, settings=settings,
                                      key=mail_key(job, r["user_id"]), user_pk=r["user_id"], email=r["email"],
                                      name=(r["before"] or {}).get("name", ""), raw=r["payload"])) is not None
        ]
        _enqueue(mails, tenant)
        return _counts([r["result"] for r in rows])


class MigrateKind:
    """``migrate --all``: one tenant per chunk; its items (and outcomes) live in the control
    database. Migrating is idempotent, so a tenant migrated twice after a crash is harmless."""

    def check(self, job: Job) -> None:
        if job.actor is not None and not is_instance_admin(job.actor):
            raise Refused(ACTOR_GONE, code="actor_refused")

    def tenant_phase(self, job: Job, chunk: JobChunk) -> None:
        from tenants.services import tenant_migrate

        items = JobItem.objects.filter(job_id=job.pk, seq__gte=chunk.first_seq, seq__lte=chunk.last_seq, result="")
        for item in items:
            tenant = Tenant.objects.filter(pk=item.ref).first()
            try:
                if tenant is None:
                    raise ServiceError("This tenant no longer exists.", code="not_found")
                # Recorded as current: answered without opening its database (as the command does).
                outcome = tenant_migrate(actor=job.actor, tenant=tenant, skip_current=True)
            except ServiceError as exc:
                item.result, item.reason = ERROR, exc.message[:2000]
            else:
                item.result, item.data = DONE, audit._plain(outcome)
                versions = ", ".join(f"{k} {v}" for k, v in (outcome.get("to") or {}).items())
                moved = outcome.get("from") != outcome.get("to")
                item.reason = ("Migrated to " if moved else "Already current: ") + versions
            item.done_at = timezone.now()
            with transaction.atomic(using=DEFAULT_DB_ALIAS):
                item.save(update_fields=["result", "reason", "data", "done_at"])

    def relay(self, job: Job, chunk: JobChunk) -> tuple[int, int, int]:
        results = list(JobItem.objects.filter(job_id=job.pk, seq__gte=chunk.first_seq,
                                              seq__lte=chunk.last_seq).values_list("result", flat=True))
        return _counts(results)

    def after_relay(self, job: Job, chunk: JobChunk) -> None:
        return None

    def after_finish(self, job: Job) -> None:
        return None


def processor(job: Job) -> Kind:
    if job.kind == Job.Kind.USERS:
        return UsersKind()
    if job.kind == Job.Kind.UNDO:
        return UsersKind(undo=True)
    if job.kind == Job.Kind.IMPORT:
        return ImportKind()
    if job.kind == Job.Kind.MIGRATE:
        return MigrateKind()
    raise ValueError(f"unknown job kind {job.kind!r}")
