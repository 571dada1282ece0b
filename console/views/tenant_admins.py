"""A tenant's staff, managed by its admins: ``/t/<slug>/admins/``."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.forms import ROLE_CHOICES, ROLE_HELP, RoleForm, TenantAdminAddForm
from accounts.selectors import tenant_admin_get, tenant_admin_list
from accounts.services import staff as services
from accounts.services import tenant_invites
from console.confirm import confirm_first
from console.decorators import tenant_view
from console.errors import flash, form_add
from console.http import ConsoleRequest, StaffRequest
from core.errors import NotFound, ServiceError
from tenants.models import TenantAdmin

ACTION = "manage_tenant_admins"


def _back(request: ConsoleRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:tenant-admins", args=[request.tenant.slug]))


def _page(request: ConsoleRequest, form: TenantAdminAddForm | None = None, status: int = 200
          ) -> HttpResponse:
    return render(request, "console/tenant_admins/list.html", {
        "assignments": tenant_admin_list(tenant=request.tenant),
        "invites": tenant_invites.tenant_invite_list(tenant=request.tenant),
        "form": form or TenantAdminAddForm(),
        "role_choices": ROLE_CHOICES,
        "role_help": ROLE_HELP,
    }, status=status)


@tenant_view(ACTION)
@require_GET
def tenant_admins(request: ConsoleRequest) -> HttpResponse:
    return _page(request)


@tenant_view(ACTION)
@require_POST
def tenant_admin_add(request: ConsoleRequest) -> HttpResponse:
    form = TenantAdminAddForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            invite = tenant_invites.tenant_admin_add(
                actor=request.user, tenant=request.tenant, email=data["email"],
                role=data["role"], name=data["name"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            # The same words whether or not this address has a staff account (finding 6).
            messages.success(request, f"Invitation sent to {invite.user.email}: they become "
                             f"{invite.role} of this tenant when they accept it.")
            return _back(request)
    return _page(request, form, status=400)


def _assignment(request: ConsoleRequest, user_id: uuid.UUID) -> TenantAdmin:
    assignment = tenant_admin_get(tenant=request.tenant, user_pk=user_id)
    if assignment is None:
        raise Http404("No such staff member in this tenant.")
    return assignment


@tenant_view(ACTION)
@require_POST
def tenant_admin_role(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    assignment = _assignment(request, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role: admin, support or viewer.")
        return _back(request)
    try:
        services.tenant_admin_change_role(actor=request.user, tenant=request.tenant,
                                          user=assignment.user, role=form.cleaned_data["role"])
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"{assignment.user.email} is now {form.cleaned_data['role']}.")
    return _back(request)


@tenant_view(ACTION)
@require_POST
@confirm_first
def tenant_admin_remove(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    assignment = _assignment(request, user_id)
    try:
        services.tenant_admin_remove(actor=request.user, tenant=request.tenant,
                                     user=assignment.user)
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"{assignment.user.email} no longer has access to this tenant.")
    return _back(request)


@tenant_view(ACTION)
@require_POST
def tenant_invite_withdraw(request: ConsoleRequest, invite_id: uuid.UUID) -> HttpResponse:
    try:
        tenant_invites.tenant_invite_withdraw(actor=request.user, tenant=request.tenant, invite_id=invite_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    messages.success(request, "Invitation withdrawn.")
    return _back(request)


# --- The invited member's side (console home) ------------------------------------------------


@require_POST
def tenant_invite_accept(request: StaffRequest, invite_id: uuid.UUID) -> HttpResponse:
    try:
        assignment = tenant_invites.tenant_invite_accept(actor=request.user, invite_id=invite_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ServiceError as exc:
        flash(request, exc)
        return HttpResponseRedirect(reverse("console:home"))
    messages.success(request, f"You are now {assignment.role} of {assignment.tenant.name}.")
    return HttpResponseRedirect(reverse("console:home"))


@require_POST
def tenant_invite_decline(request: StaffRequest, invite_id: uuid.UUID) -> HttpResponse:
    try:
        tenant_invites.tenant_invite_decline(actor=request.user, invite_id=invite_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    messages.success(request, "Invitation declined.")
    return HttpResponseRedirect(reverse("console:home"))
