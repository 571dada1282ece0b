"""Staff management for instance admins: ``/staff/``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.forms import StaffInviteForm, TenantRoleForm
from accounts.models import User
from accounts.selectors import assignable_tenants, staff_get, staff_list, staff_roles
from accounts.services import staff as services
from console.confirm import confirm_first
from console.decorators import instance_admin_required, recent_otp_required
from console.errors import flash, form_add
from console.http import StaffRequest
from core.emails import EMAIL_MAX_LENGTH
from core.errors import ServiceError
from core.text import search_term
from tenants.selectors import tenant_get


def _member(pk: uuid.UUID) -> User:
    member = staff_get(pk=pk)
    if member is None:
        raise Http404("No such staff member.")
    return member


def _back(member: User) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:staff-detail", args=[member.pk]))


def _list_context(request: StaffRequest, form: StaffInviteForm | None = None) -> dict[str, Any]:
    query = search_term(request.GET.get("q"), max_length=EMAIL_MAX_LENGTH)
    return {
        "members": list(staff_list(query=query)), "query": query,
        "form": form or StaffInviteForm(tenants=assignable_tenants()),
    }


@instance_admin_required
@require_GET
def staff_index(request: StaffRequest) -> HttpResponse:
    return render(request, "console/staff/list.html", _list_context(request))


@instance_admin_required
@require_POST
def staff_invite(request: StaffRequest) -> HttpResponse:
    form = StaffInviteForm(request.POST, tenants=assignable_tenants())
    if form.is_valid():
        data = form.cleaned_data
        try:
            # One transaction: the member, their tenant role (if any) and the invitation.
            member = services.staff_invite(
                actor=request.user, email=data["email"], name=data["name"],
                is_superuser=data["is_superuser"], tenant=data["tenant"],
                role=data["role"] if data["tenant"] is not None else None,
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, f"Invitation sent to {member.email}.")
            return _back(member)
    return render(request, "console/staff/list.html", _list_context(request, form), status=400)


def _detail_context(request: StaffRequest, member: User, **extra: Any) -> dict[str, Any]:
    return {
        "member": member,
        "roles": staff_roles(user=member),
        "role_form": extra.pop("role_form", None)
        or TenantRoleForm(tenants=assignable_tenants(exclude_user=member)),
        "is_self": member.pk == request.user.pk,
        **extra,
    }


@instance_admin_required
@require_GET
def staff_detail(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    return render(request, "console/staff/detail.html", _detail_context(request, member))


def _run(request: StaffRequest, member: User, action: Callable[[], object], done: str
         ) -> HttpResponseRedirect:
    """A one-click action: its service call, then back to the member with the outcome."""
    try:
        action()
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, done)
    return _back(member)


@instance_admin_required
@confirm_first
@recent_otp_required
@require_POST
def staff_deactivate(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    return _run(request, member,
                lambda: services.staff_deactivate(actor=request.user, user=member),
                f"{member.email} is deactivated and can no longer sign in.")


@instance_admin_required
@require_POST
def staff_reactivate(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    return _run(request, member,
                lambda: services.staff_reactivate(actor=request.user, user=member),
                f"{member.email} is active again.")


@instance_admin_required
@confirm_first
@recent_otp_required
@require_POST
def staff_otp_reset(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    return _run(request, member,
                lambda: services.staff_otp_reset(actor=request.user, user=member),
                f"The authenticator of {member.email} is removed; they set up a new one at their "
                "next sign-in.")


@instance_admin_required
@confirm_first
@recent_otp_required
@require_POST
def staff_instance_admin(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    value = request.POST.get("value") == "1"
    done = (f"{member.email} is now an instance admin." if value
            else f"{member.email} is no longer an instance admin.")
    return _run(request, member,
                lambda: services.staff_set_instance_admin(actor=request.user, user=member,
                                                          value=value), done)


@instance_admin_required
@require_POST
def staff_resend(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    return _run(request, member,
                lambda: services.staff_invitation_resend(actor=request.user, user=member),
                f"A new invitation was sent to {member.email}; earlier links no longer work.")


@instance_admin_required
@require_POST
def staff_role_assign(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    member = _member(pk)
    form = TenantRoleForm(request.POST, tenants=assignable_tenants())
    if form.is_valid():
        tenant, role = form.cleaned_data["tenant"], form.cleaned_data["role"]
        return _run(request, member,
                    lambda: services.tenant_admin_assign(actor=request.user, tenant=tenant,
                                                         user=member, role=role),
                    f"{member.email} is {role} of {tenant.name}.")
    return render(request, "console/staff/detail.html",
                  _detail_context(request, member, role_form=form), status=400)


@instance_admin_required
@require_POST
@confirm_first
def staff_role_remove(request: StaffRequest, pk: uuid.UUID, slug: str) -> HttpResponse:
    member = _member(pk)
    tenant = tenant_get(slug=slug)
    if tenant is None:
        raise Http404("No such tenant.")
    return _run(request, member,
                lambda: services.tenant_admin_remove(actor=request.user, tenant=tenant,
                                                     user=member),
                f"{member.email} no longer has a role in {tenant.name}.")
