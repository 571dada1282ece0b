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
from console.confirm import confirm_first
from console.decorators import tenant_view
from console.errors import flash, form_add
from console.http import ConsoleRequest
from core.errors import ServiceError
from tenants.models import TenantAdmin

ACTION = "manage_tenant_admins"


def _back(request: ConsoleRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:tenant-admins", args=[request.tenant.slug]))


def _page(request: ConsoleRequest, form: TenantAdminAddForm | None = None, status: int = 200
          ) -> HttpResponse:
    return render(request, "console/tenant_admins/list.html", {
        "assignments": tenant_admin_list(tenant=request.tenant),
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
            result = services.tenant_admin_add(
                actor=request.user, tenant=request.tenant, email=data["email"],
                role=data["role"], name=data["name"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            email = result.assignment.user.email
            messages.success(request, f"Invitation sent to {email}." if result.invited
                             else f"{email} is now {result.assignment.role} of this tenant.")
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
