"""Batch jobs in the console: the preview (a frozen target list), start now or at a time, the
live progress page (htmx polling; a plain reload without JavaScript), cancel, undo, the
per-user outcomes (pages and CSV), the tenant's list of jobs and the users list's indicator.

Instance-wide jobs (``migrate --all``) have the same page under ``/jobs/``. Every
tenant job is fetched through its tenant: another tenant's job answers 404 like an unknown id.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from accounts.app_users.job_actions import DESTRUCTIVE, LABELS, UNDOABLE
from batchjobs import selectors, services
from batchjobs.models import Job
from console.decorators import instance_admin_required, recent_otp_required, tenant_view
from console.errors import flash
from console.http import ConsoleRequest, StaffRequest
from core.access import role_can
from core.errors import NotFound, Refused, ServiceError
from core.policy import policy
from tenants.models import Tenant

POLL_SECONDS = 2


class ScheduleForm(forms.Form):
    run_at = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def run_at_aware(self) -> datetime | None:
        value = self.cleaned_data.get("run_at") if self.is_valid() else None
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value


def label_of(job: Job) -> str:
    if job.kind == Job.Kind.IMPORT:
        return "Invite from CSV"
    if job.kind == Job.Kind.MIGRATE:
        return "Migrate every tenant"
    if job.kind == Job.Kind.UNDO:
        return f"Undo {LABELS.get(str(job.options.get('undone_action')), '').lower()}".strip()
    return LABELS.get(job.action, job.action)


def job_url(job: Job) -> str:
    if job.tenant is None:
        return reverse("console:instance-job", args=[job.pk])
    return reverse("console:job-detail", args=[job.tenant.slug, job.pk])


def _job_or_404(tenant: Tenant | None, job_id: uuid.UUID) -> Job:
    job = selectors.job_get(tenant=tenant, job_id=job_id)
    if job is None:
        raise Http404("No such job.")
    return job


def _context(request: StaffRequest, job: Job, *, can_act: bool) -> dict[str, Any]:
    p = policy()
    result = request.GET.get("result", "")
    result = result if result in selectors.RESULTS else ""
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    outcomes, next_after = ([], None) if job.state == Job.State.PREVIEW else selectors.job_outcomes(
        job, result=result, after=after)
    mine = job.actor_id == request.user.pk
    return {
        "job": job, "tenant": job.tenant, "label": label_of(job), "progress": selectors.job_progress(job),
        "url": job_url(job), "poll": POLL_SECONDS,
        "active": job.state in Job.ACTIVE or job.state == Job.State.SCHEDULED,
        "sample": selectors.job_sample(job) if job.state == Job.State.PREVIEW else [],
        "acting": job.total - job.preview_skipped,
        "preview_until": job.created_at + timedelta(minutes=p.job_preview_minutes),
        "preview_minutes": p.job_preview_minutes,
        "can_start": can_act and mine and job.state == Job.State.PREVIEW,
        "can_cancel": can_act and not job.is_finished and job.state != Job.State.CANCELLING,
        "undo_refusal": services.undo_refusal(job) if job.tenant is not None else "n/a",
        "undo_job": selectors.job_undo_job(job) if job.tenant is not None else None,
        "undo_until": job.finished_at + timedelta(days=p.job_undo_days) if job.finished_at else None,
        "can_undo": can_act,
        "destructive": job.action in DESTRUCTIVE,
        "undo_days": p.job_undo_days,
        "undoable": job.kind == Job.Kind.USERS and job.action in UNDOABLE,
        "can_csv": job.tenant is not None and role_can(getattr(request, "tenant_role", None), "export_users"),
        "schedule_form": ScheduleForm(),
        "outcomes": outcomes, "result": result, "results": selectors.RESULTS, "after": after,
        "next_url": f"?result={result}&after={next_after}" if next_after is not None else "",
        "base_template": "layouts/base.html" if job.tenant is None else "layouts/tenant.html",
    }


def _render(request: StaffRequest, job: Job, *, can_act: bool) -> HttpResponse:
    context = _context(request, job, can_act=can_act)
    partial = request.htmx and request.htmx.target == "job-progress"
    if partial and job.is_finished:  # once, at the end: the whole page, with its outcomes
        return HttpResponseClientRefresh()
    return render(request, "console/jobs/detail.html" + ("#job-progress" if partial else ""), context)


def _acts(request: ConsoleRequest, job: Job) -> bool:
    """Whether the viewer may start, cancel or undo this job (the services check it again)."""
    return role_can(request.tenant_role, services.job_permission(job))


# --- A tenant's jobs -----------------------------------------------------------------------------


@require_GET
@tenant_view("view_users")
def job_list(request: ConsoleRequest) -> HttpResponse:
    jobs = list(selectors.job_list(tenant=request.tenant))
    rows = [{"job": j, "label": label_of(j), "progress": selectors.job_progress(j)} for j in jobs]
    return render(request, "console/jobs/list.html", {"tenant": request.tenant, "rows": rows})


@require_GET
@tenant_view("view_users")
def job_indicator(request: ConsoleRequest) -> HttpResponse:
    """The users list's compact indicator of scheduled and running jobs (polled while any is)."""
    return render(request, "console/jobs/_indicator.html", indicator_context(request.tenant))


def indicator_context(tenant: Tenant) -> dict[str, Any]:
    jobs = selectors.active_jobs(tenant=tenant)
    return {"tenant": tenant, "poll": POLL_SECONDS, "active_jobs": [
        {"job": j, "label": label_of(j), "progress": selectors.job_progress(j), "url": job_url(j)} for j in jobs
    ]}


@require_GET
@tenant_view("view_users")
def job_detail(request: ConsoleRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _job_or_404(request.tenant, job_id)
    return _render(request, job, can_act=_acts(request, job))


@require_GET
@tenant_view("export_users")
def job_outcomes_csv(request: ConsoleRequest, job_id: uuid.UUID) -> StreamingHttpResponse:
    job = _job_or_404(request.tenant, job_id)
    response = StreamingHttpResponse(selectors.job_outcomes_csv(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk.hex[:8]}-outcomes.csv"'
    return response


def _do(request: StaffRequest, job: Job, call: Any, success: str) -> HttpResponse:
    try:
        done = call()
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except Refused as exc:  # the viewer's role does not allow it on this job
        raise PermissionDenied(exc.message) from exc
    except ServiceError as exc:
        flash(request, exc)
        return redirect(job_url(job))
    if success:
        messages.success(request, success)
    return redirect(job_url(done if isinstance(done, Job) else job))


@require_POST
@tenant_view("view_users")
@recent_otp_required
def job_start(request: ConsoleRequest, job_id: uuid.UUID) -> HttpResponse:
    """Start the previewed job now (a small one runs in this request) or at ``run_at``."""
    job = _job_or_404(request.tenant, job_id)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid date and time to schedule the job.")
        return redirect(job_url(job))
    run_at = form.run_at_aware() if request.POST.get("when") == "later" else None
    if request.POST.get("when") == "later" and run_at is None:
        messages.error(request, "Choose when the job should start.")
        return redirect(job_url(job))
    return _do(request, job, lambda: services.job_start(
        actor=request.user, tenant=request.tenant, job_id=job.pk, run_at=run_at, inline=True,
    ), f"Scheduled for {timezone.localtime(run_at):%Y-%m-%d %H:%M}." if run_at else "")


@require_POST
@tenant_view("view_users")
def job_cancel(request: ConsoleRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _job_or_404(request.tenant, job_id)
    if job.state == Job.State.PREVIEW:  # discarding a preview: back to the users
        try:
            services.job_cancel(actor=request.user, tenant=request.tenant, job_id=job.pk)
        except Refused as exc:
            raise PermissionDenied(exc.message) from exc
        except ServiceError as exc:
            flash(request, exc)
            return redirect(job_url(job))
        messages.info(request, "The preview was discarded; nothing was done.")
        return redirect(reverse("console:users-list", args=[request.tenant.slug]))
    return _do(request, job, lambda: services.job_cancel(actor=request.user, tenant=request.tenant,
                                                        job_id=job.pk), "")


@require_POST
@tenant_view("view_users")
@recent_otp_required
def job_undo(request: ConsoleRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _job_or_404(request.tenant, job_id)
    return _do(request, job, lambda: services.job_undo(actor=request.user, tenant=request.tenant,
                                                      job_id=job.pk, inline=True), "")


# --- Instance-wide jobs (migrate --all) ------------------------------------------------------------


@instance_admin_required
@require_GET
def instance_job(request: StaffRequest, job_id: uuid.UUID) -> HttpResponse:
    return _render(request, _job_or_404(None, job_id), can_act=True)


@instance_admin_required
@require_POST
def instance_job_cancel(request: StaffRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _job_or_404(None, job_id)
    return _do(request, job, lambda: services.job_cancel(actor=request.user, tenant=None, job_id=job.pk), "")
