"""A tenant's settings and mail templates: ``/t/<slug>/settings/`` (tenant admins)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.app_users import tenant_settings as services
from console.decorators import tenant_view
from console.errors import form_add
from console.http import ConsoleRequest
from core.errors import ServiceError
from tenants import emails
from tenants.config import lifetime_bounds, tenant_settings
from tenants.forms import EmailTemplateForm, TenantSettingsForm
from tenants.models import Tenant

KIND_LABELS = {"invite": "Invitation", "recovery": "Password recovery", "magic_link": "Magic link",
               "email_change": "Email change"}


def _templates(tenant: Tenant) -> list[dict[str, object]]:
    custom = tenant.email_templates or {}
    return [
        {"kind": k, "label": KIND_LABELS[k], "custom": bool(custom.get(k)),
         "subject": emails.template_for(tenant, k)["subject"]}
        for k in emails.KINDS
    ]


@require_http_methods(["GET", "POST"])
@tenant_view(action="manage_settings")
def settings_edit(request: ConsoleRequest) -> HttpResponse:
    tenant = request.tenant
    current = tenant_settings(tenant)
    form = TenantSettingsForm(request.POST or None, initial=TenantSettingsForm.initial_from(current))
    if request.method == "POST" and form.is_valid():
        try:
            services.tenant_settings_update(actor=request.user, tenant=tenant, values=form.cleaned_data)
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Settings saved. New invitations and links follow them now.")
            return HttpResponseRedirect(reverse("console:tenant-settings", args=[tenant.slug]))
    return render(request, "console/tenant_settings/settings.html", {
        "form": form, "templates": _templates(tenant), "bounds": lifetime_bounds(),
    }, status=400 if form.is_bound else 200)


def _kind(kind: str) -> str:
    if kind not in emails.KINDS:
        raise Http404("No such template.")
    return kind


def _template_page(
    request: ConsoleRequest, *, kind: str, form: EmailTemplateForm,
    preview: emails.RenderedEmail | None, status: int = 200,
) -> HttpResponse:
    tenant = request.tenant
    return render(request, "console/tenant_settings/email.html", {
        "kind": kind, "label": KIND_LABELS[kind], "form": form, "preview": preview,
        "custom": bool((tenant.email_templates or {}).get(kind)),
        "placeholders": emails.PLACEHOLDERS, "default": emails.DEFAULTS[kind],
    }, status=status)


@require_http_methods(["GET", "POST"])
@tenant_view(action="manage_settings")
def email_template_edit(request: ConsoleRequest, kind: str) -> HttpResponse:
    tenant, kind = request.tenant, _kind(kind)
    if request.method == "GET":
        form = EmailTemplateForm(initial=emails.template_for(tenant, kind))
        preview = services.email_template_preview(tenant=tenant, kind=kind)
        return _template_page(request, kind=kind, form=form, preview=preview)
    form = EmailTemplateForm(request.POST)
    if form.is_valid():
        try:
            services.email_template_update(actor=request.user, tenant=tenant, kind=kind, **form.cleaned_data)
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, f"{KIND_LABELS[kind]} template saved.")
            return HttpResponseRedirect(reverse("console:tenant-email-template", args=[tenant.slug, kind]))
    return _template_page(request, kind=kind, form=form, preview=None, status=400)


@require_POST
@tenant_view(action="manage_settings")
def email_template_preview(request: ConsoleRequest, kind: str) -> HttpResponse:
    """Render the draft in the form (not saved) with sample data."""
    tenant, kind = request.tenant, _kind(kind)
    form = EmailTemplateForm(request.POST)
    preview, error = None, ""
    if form.is_valid():
        try:
            preview = services.email_template_preview(tenant=tenant, kind=kind, **form.cleaned_data)
        except ServiceError as exc:
            form_add(form, exc)
            error = " ".join(exc.messages)
    else:
        error = "Fill in the subject and the body to see a preview."
    if request.htmx:
        return render(request, "console/tenant_settings/email.html#email-preview",
                      {"preview": preview, "preview_error": error, "draft": True})
    return _template_page(request, kind=kind, form=form, preview=preview)


@require_POST
@tenant_view(action="manage_settings")
def email_template_reset(request: ConsoleRequest, kind: str) -> HttpResponse:
    tenant, kind = request.tenant, _kind(kind)
    services.email_template_reset(actor=request.user, tenant=tenant, kind=kind)
    messages.success(request, f"{KIND_LABELS[kind]} template reset to the default text.")
    return HttpResponseRedirect(reverse("console:tenant-email-template", args=[tenant.slug, kind]))
