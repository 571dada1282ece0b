"""Reads of jobs: one job (scoped to its tenant: another tenant's job is not found), the lists,
the progress figures, the preview's sample, and the per-target outcomes (keyset pages, CSV)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import JobOutcome, JobTarget
from batchjobs.models import Job, JobItem
from core.csv_safety import safe_cell
from tenants import db as tenant_db
from tenants.models import Tenant

OUTCOME_PAGE = 50
RESULTS = ("done", "skipped", "error", "pending")


def job_get(*, tenant: Tenant | None, job_id: Any) -> Job | None:
    """The job with this id in this tenant (``None`` for instance-wide jobs), else ``None``:
    unknown, malformed and foreign ids alike."""
    try:
        return Job.objects.select_related("tenant", "actor", "undo_of").filter(pk=job_id, tenant=tenant).first()
    except (ValidationError, ValueError):
        return None


def job_list(*, tenant: Tenant | None, limit: int = 50) -> QuerySet[Job]:
    """The tenant's jobs (instance-wide ones for ``None``), newest first; previews nobody
    started are left out."""
    return (
        Job.objects.filter(tenant=tenant).exclude(state__in=[Job.State.PREVIEW, Job.State.EXPIRED])
        .select_related("actor").order_by("-created_at")[:limit]
    )


def active_jobs(*, tenant: Tenant) -> list[Job]:
    """What the users list shows in its compact indicator: scheduled, queued and running jobs."""
    return list(
        Job.objects.filter(tenant=tenant, state__in=[*Job.ACTIVE, Job.State.SCHEDULED]).order_by("created_at")[:5]
    )


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    processed: int
    skipped: int
    errors: int
    percent: int
    rate: float | None  # targets per second since it started
    seconds_left: int | None

    @property
    def untouched(self) -> int:
        return self.total - self.done


def job_progress(job: Job) -> Progress:
    done = job.done_count
    rate = None
    left = None
    if job.started_at and done:
        end = job.finished_at or timezone.now()
        elapsed = max((end - job.started_at).total_seconds(), 0.001)
        rate = done / elapsed
        if not job.is_finished and rate > 0:
            left = int((job.total - done) / rate) + 1
    percent = 100 if job.total == 0 and job.is_finished else int(100 * done / job.total) if job.total else 0
    return Progress(total=job.total, done=done, processed=job.processed, skipped=job.skipped, errors=job.errors,
                    percent=min(percent, 100), rate=rate, seconds_left=left)


def job_sample(job: Job, *, limit: int = 10) -> list[Any]:
    """The first users the job acts on (the preview's "first names")."""
    if job.tenant is None:
        return []
    return list(
        JobTarget.objects.using(tenant_db.using(job.tenant)).filter(job_id=job.pk, skip_result="")
        .order_by("seq").values("email", "name", "line")[:limit]
    )


def job_undo_job(job: Job) -> Job | None:
    return job.undos.exclude(state__in=[Job.State.FAILED, Job.State.EXPIRED]).order_by("-created_at").first()


@dataclass(frozen=True)
class OutcomeRow:
    seq: int
    email: str
    user_id: Any
    result: str  # done, skipped, error, pending (not reached: cancelled or still to come)
    reason: str
    line: int | None = None


def _targets(job: Job) -> QuerySet[JobTarget]:
    assert job.tenant is not None
    return JobTarget.objects.using(tenant_db.using(job.tenant)).filter(job_id=job.pk)


def _outcomes(job: Job) -> QuerySet[JobOutcome]:
    assert job.tenant is not None
    return JobOutcome.objects.using(tenant_db.using(job.tenant)).filter(job_id=job.pk)


def job_outcomes(job: Job, *, result: str = "", after: int = 0,
                 limit: int = OUTCOME_PAGE) -> tuple[list[OutcomeRow], int | None]:
    """One keyset page of the job's targets with their outcomes (by ``seq``, after ``after``),
    optionally only one result. Returns the rows and the ``after`` of the next page."""
    if job.tenant is None:
        items = JobItem.objects.filter(job_id=job.pk, seq__gt=after).order_by("seq")
        if result == "pending":
            items = items.filter(result="")
        elif result:
            items = items.filter(result=result)
        listed = list(items[: limit + 1])
        rows = [OutcomeRow(i.seq, i.label, i.ref, i.result or "pending", i.reason) for i in listed[:limit]]
        return rows, (rows[-1].seq if len(listed) > limit else None)
    if result and result != "pending":
        picked: list[Any] = list(_outcomes(job).filter(result=result, seq__gt=after).order_by("seq")
                                 .values("seq", "email", "user_id", "result", "reason")[: limit + 1])
        lines = dict(_targets(job).filter(seq__in=[o["seq"] for o in picked]).values_list("seq", "line"))
        rows = [OutcomeRow(o["seq"], o["email"], o["user_id"], o["result"], o["reason"], lines.get(o["seq"]))
                for o in picked[:limit]]
        return rows, (rows[-1].seq if len(picked) > limit else None)
    # Every target (or only those without an outcome yet: "pending"), a batch of targets at a time.
    size = limit + 1 if result != "pending" else max(500, limit + 1)
    found: list[OutcomeRow] = []
    more = False
    start = after
    while not more:
        batch = list(_targets(job).filter(seq__gt=start).order_by("seq")
                     .values("seq", "email", "user_id", "line")[:size])
        if not batch:
            break
        outcomes: dict[int, Any] = {o["seq"]: o for o in _outcomes(job).filter(seq__in=[t["seq"] for t in batch])
                    .values("seq", "email", "user_id", "result", "reason")}
        for t in batch:
            o = outcomes.get(t["seq"])
            if result == "pending" and o is not None:
                continue
            if len(found) == limit:
                more = True
                break
            found.append(OutcomeRow(t["seq"], o["email"] if o else t["email"], (o or t)["user_id"],
                                    o["result"] if o else "pending", o["reason"] if o else "", t["line"]))
        if len(batch) < size:
            break
        start = batch[-1]["seq"]
    return found, (found[-1].seq if more and found else None)


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = ("seq", "line", "user_id", "email", "result", "reason")


def job_outcomes_csv(job: Job, *, chunk: int = 2000) -> Iterator[str]:
    """Every target with its outcome, as CSV lines (formula-safe), read in keyset chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    after = 0
    while True:
        rows, after_next = job_outcomes(job, after=after, limit=chunk)
        for row in rows:
            yield writer.writerow([
                row.seq, row.line or "", safe_cell(str(row.user_id or "")), safe_cell(row.email),
                row.result, safe_cell(row.reason),
            ])
        if after_next is None:
            return
        after = after_next

