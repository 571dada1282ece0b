"""Tenant management for instance admins: ``/tenants/``.

Creation shows its progress: the POST writes the record (``provisioning``) and the tenant's page
runs the steps (create database → migrate → activate) as successive htmx POSTs, each showing its
result. Without JavaScript the same POST runs every step in one request. A failure shows the
error and a Retry button that resumes where it stopped.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseClientRefresh

from accounts.app_users import figures, stats
from batchjobs import selectors as job_selectors
from batchjobs import services as job_services
from console.confirm import confirm_first
from console.decorators import instance_admin_required, recent_otp_required
from console.errors import flash, form_add
from console.http import StaffRequest
from core.errors import ServiceError
from core.text import search_term
from tenants import db, selectors, services
from tenants.forms import PurgeForm, TenantCreateForm, TenantEditForm
from tenants.models import Tenant

STEP_LABELS = {
    "database": "Create the database",
    "migrate": "Apply the schema migrations",
    "activate": "Activate the tenant",
}
LIFECYCLE = {
    "suspend": (services.tenant_suspend, "suspended"),
    "resume": (services.tenant_resume, "resumed"),
    "delete": (services.tenant_delete, "deleted; its data is kept until you purge it"),
    "restore": (services.tenant_restore, "restored"),
}


def _tenant(slug: str) -> Tenant:
    tenant = selectors.tenant_get(slug=slug)
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


def _detail_url(tenant: Tenant | str) -> str:
    slug = tenant.slug if isinstance(tenant, Tenant) else tenant
    return reverse("console:tenants-detail", args=[slug])


TENANTS_PAGE_SIZE = 50


@instance_admin_required
@require_GET
def tenant_list(request: StaffRequest) -> HttpResponse:
    """A page of tenants (searchable) with their stored figures: no tenant database is opened."""
    include_purged = request.GET.get("purged") == "1"
    query = search_term(request.GET.get("q"))
    latest = db.latest_schema_version()
    tenants = selectors.tenant_list(include_purged=include_purged, query=query)
    total, behind = selectors.tenant_list_counts(latest=latest, include_purged=include_purged, query=query)
    pages = max((total + TENANTS_PAGE_SIZE - 1) // TENANTS_PAGE_SIZE, 1)
    try:
        number = min(max(int(request.GET.get("page") or 1), 1), pages)
    except ValueError:
        number = 1
    chunk = figures.listed(tenants, start=(number - 1) * TENANTS_PAGE_SIZE, stop=number * TENANTS_PAGE_SIZE)
    rows = [{"tenant": t, "figures": t.figures, "behind": t.schema_version != latest} for t in chunk]
    return render(request, "console/tenants/list.html", {
        "rows": rows, "include_purged": include_purged, "query": query, "total": total,
        "page": {"page": number, "pages": pages, "query": query, "has_previous": number > 1,
                 "has_next": number < pages},
        "migrate_jobs": list(job_selectors.job_list(tenant=None, limit=3)),
        "behind_count": behind,
    })


@instance_admin_required
@require_http_methods(["GET", "POST"])
def tenant_create(request: StaffRequest) -> HttpResponse:
    """With htmx only the record is written and the tenant's page runs the steps one by one,
    showing each result; a plain post creates the tenant in one go."""
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        create = services.tenant_register if request.htmx else services.tenant_create
        try:
            tenant = create(
                actor=request.user, slug=data["slug"], name=data["name"], metadata=data["metadata"]
            )
        except ServiceError as exc:
            if exc.code != "provisioning_failed":
                form_add(form, exc)
            else:  # the record exists, marked failed: its page shows the error and Retry
                flash(request, exc)
                return HttpResponseRedirect(_detail_url(data["slug"]))
        else:
            if request.htmx:
                return HttpResponseClientRedirect(_detail_url(tenant))
            messages.success(request, f"Tenant {tenant.slug} is active.")
            return HttpResponseRedirect(_detail_url(tenant))
    template = "console/tenants/create.html"
    if request.htmx:
        template += "#tenant-create-form"
    # htmx swaps only 2xx answers: a form with errors is a 200 there, a 400 for a plain post.
    status = 400 if form.is_bound and not request.htmx else 200
    return render(request, template, {"form": form}, status=status)


def step_states(
    tenant: Tenant, *, ran: dict[str, Any] | None = None, error: str = ""
) -> dict[str, Any]:
    """Where a creation stands, step by step, read from reality (database, schema, status)."""
    active = tenant.status == Tenant.Status.ACTIVE
    try:
        has_db = active or db.database_exists(tenant)
    except Exception:  # noqa: BLE001 - an unreachable server means "not done yet"
        has_db = False
    done = {
        "database": has_db,
        "migrate": active or (has_db and tenant.schema_version == db.latest_schema_version()),
        "activate": active,
    }
    failed = tenant.status == Tenant.Status.FAILED
    steps, next_step = [], None
    for key, label in STEP_LABELS.items():
        state = "done" if done[key] else "pending"
        if state == "pending" and next_step is None:
            next_step = key
            state = "failed" if failed else "next"
        detail = ""
        if ran and ran.get("step") == key:
            detail = _describe(ran)
        elif state == "done" and key == "database":
            detail = f"{tenant.db_name} on server {tenant.db_server}"
        elif state == "done" and key == "migrate":
            detail = "Schema " + ", ".join(f"{k} {v}" for k, v in tenant.schema_version.items())
        steps.append({"key": key, "label": label, "state": state, "detail": detail})
    # Run the next step automatically only while creating, and never the same step twice in a
    # row (a step that "worked" without taking effect would otherwise loop).
    auto = (
        tenant.status == Tenant.Status.PROVISIONING
        and next_step is not None
        and not (ran and ran.get("step") == next_step)
    )
    if ran and ran.get("step") == next_step and not failed:
        error = error or "That step did not take effect. Retry, or check the server logs."
    return {
        "tenant": tenant, "steps": steps, "next_step": next_step, "auto": auto,
        "failed": failed or bool(error), "error": error or tenant.last_error, "active": active,
    }


def _describe(ran: dict[str, Any]) -> str:
    if ran.get("skipped"):
        return "Already done."
    if ran["step"] == "database":
        return "Created." if ran.get("created") else "It already existed; kept as it is."
    if ran["step"] == "migrate":
        return "Schema " + ", ".join(f"{k} {v}" for k, v in (ran.get("schema_version") or {}).items())
    return "The tenant is active."


@instance_admin_required
@require_POST
def tenant_retry(request: StaffRequest, slug: str) -> HttpResponse:
    """One step (htmx, ``step`` in the body) or, without JavaScript, every remaining step."""
    tenant = _tenant(slug)
    step = request.POST.get("step", "")
    if request.htmx and step:
        ran, error = None, ""
        try:
            ran = services.tenant_provision_step(actor=request.user, tenant=tenant, step=step)
        except ServiceError as exc:
            error = exc.message
        tenant.refresh_from_db()
        if tenant.status == Tenant.Status.ACTIVE and step == "activate":
            messages.success(request, f"Tenant {tenant.slug} is active.")  # for the refreshed page
        # The tenant's own error (the cause) reads better here than the command-line advice.
        context = step_states(tenant, ran=ran, error=tenant.last_error or error)
        context["oob"] = True  # the page's status badge follows
        return render(request, "console/tenants/detail.html#provision-steps", context)
    try:
        services.tenant_retry(actor=request.user, tenant=tenant)
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"Tenant {tenant.slug} is active.")
    return HttpResponseRedirect(_detail_url(tenant))


@instance_admin_required
@require_GET
def tenant_detail(request: StaffRequest, slug: str) -> HttpResponse:
    tenant = _tenant(slug)
    if request.htmx:  # the progress box asks for a fresh page once the creation is done
        return HttpResponseClientRefresh()
    initial = {"name": tenant.name, "metadata": _json(tenant.metadata)}
    return render(request, "console/tenants/detail.html", _detail_context(
        tenant, edit_form=TenantEditForm(initial=initial), purge_form=PurgeForm()
    ))


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value else ""


def _detail_context(tenant: Tenant, **forms: Any) -> dict[str, Any]:
    context = {
        "tenant": tenant,
        "users": stats.user_count(tenant),
        "latest": db.latest_schema_version(),
        "behind": tenant.schema_version != db.latest_schema_version(),
        "metadata_json": _json(tenant.metadata),
        **forms,
    }
    if tenant.status in {Tenant.Status.PROVISIONING, Tenant.Status.FAILED}:
        context.update(step_states(tenant))
    return context


@instance_admin_required
@require_POST
def tenant_edit(request: StaffRequest, slug: str) -> HttpResponse:
    tenant = _tenant(slug)
    form = TenantEditForm(request.POST)
    if form.is_valid():
        try:
            services.tenant_update(
                actor=request.user, tenant=tenant,
                name=form.cleaned_data["name"], metadata=form.cleaned_data["metadata"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Saved.")
            return HttpResponseRedirect(_detail_url(tenant))
    return render(request, "console/tenants/detail.html",
                  _detail_context(tenant, edit_form=form, purge_form=PurgeForm()), status=400)


# Soft delete closes the tenant to its users and staff at once: a recent OTP, like purge.
RECENT_OTP_VERBS = frozenset({"delete"})


@instance_admin_required
@require_POST
@confirm_first
def tenant_lifecycle(request: StaffRequest, slug: str, verb: str) -> HttpResponseBase:
    if verb not in LIFECYCLE:
        raise Http404("No such action.")
    if verb in RECENT_OTP_VERBS:
        return _lifecycle_after_recent_otp(request, slug=slug, verb=verb)
    return _lifecycle(request, slug=slug, verb=verb)


def _lifecycle(request: StaffRequest, *, slug: str, verb: str) -> HttpResponse:
    tenant = _tenant(slug)
    service, done = LIFECYCLE[verb]
    try:
        service(actor=request.user, tenant=tenant)
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"Tenant {tenant.slug} {done}.")
    return HttpResponseRedirect(_detail_url(tenant))


_lifecycle_after_recent_otp = recent_otp_required(_lifecycle)


@instance_admin_required
@recent_otp_required
@require_POST
def tenant_purge(request: StaffRequest, slug: str) -> HttpResponse:
    tenant = _tenant(slug)
    form = PurgeForm(request.POST)
    if form.is_valid():
        try:
            services.tenant_purge(
                actor=request.user, tenant=tenant, confirm_slug=form.cleaned_data["confirm_slug"]
            )
        except ServiceError as exc:
            form.add_error("confirm_slug", exc.message)  # the purge box shows only this field
        else:
            messages.success(request, f"Tenant {tenant.slug} was purged: its database is gone.")
            return HttpResponseRedirect(_detail_url(tenant))
    return render(request, "console/tenants/detail.html", _detail_context(
        tenant, edit_form=TenantEditForm(initial={"name": tenant.name,
                                                   "metadata": _json(tenant.metadata)}),
        purge_form=form,
    ), status=400)


def _outcome_text(outcome: services.MigrateOutcome) -> str:
    if outcome.result is None:
        return outcome.error[:500]
    changed = outcome.result["from"] != outcome.result["to"]
    versions = ", ".join(f"{k} {v}" for k, v in (outcome.result["to"] or {}).items())
    return ("Migrated to " if changed else "Already current: ") + versions


@instance_admin_required
@require_POST
def tenant_migrate(request: StaffRequest, slug: str) -> HttpResponse:
    tenant = _tenant(slug)
    try:
        outcome = services.MigrateOutcome(
            tenant, services.tenant_migrate(actor=request.user, tenant=tenant))
    except ServiceError as exc:
        outcome = services.MigrateOutcome(tenant, error=exc.message)
    (messages.success if outcome.ok else messages.error)(
        request, f"{tenant.slug}: {_outcome_text(outcome)}")
    return HttpResponseRedirect(_detail_url(tenant))


@instance_admin_required
@require_POST
def tenant_migrate_all(request: StaffRequest) -> HttpResponse:
    """Every tenant with a database, as a job on the runner (one item per tenant; a failing one
    is reported, the others go on): its progress page shows each tenant's outcome."""
    try:
        job = job_services.migrate_all_start(actor=request.user)
    except ServiceError as exc:
        flash(request, exc)
        return HttpResponseRedirect(reverse("console:tenants-list"))
    return HttpResponseRedirect(reverse("console:instance-job", args=[job.pk]))
