"""Pending invitations of a tenant: who was invited, until when the link works; resend, revoke."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.app_users import selectors, services
from console.confirm import confirm_first
from console.decorators import tenant_view
from console.errors import flash
from console.http import ConsoleRequest
from core.access import role_can
from core.errors import NotFound, ServiceError


@require_GET
@tenant_view("view_invitations")
def invitation_list(request: ConsoleRequest) -> HttpResponse:
    return render(request, "console/invitations/list.html", {
        "tenant": request.tenant,
        "invitations": selectors.invitation_list(tenant=request.tenant),
        "can_resend": role_can(request.tenant_role, "resend_invitation"),
        "can_revoke": role_can(request.tenant_role, "revoke_invitation"),
        "can_invite": role_can(request.tenant_role, "invite_user"),
        "now": timezone.now(),
    })


def _run(request: ConsoleRequest, user_id: uuid.UUID, service: Callable[..., Any], done: str) -> HttpResponse:
    user = selectors.app_user_get(tenant=request.tenant, user_id=user_id)
    if user is None:
        raise Http404("No such invitation.")
    try:
        service(actor=request.user, tenant=request.tenant, user_id=user.pk)
    except NotFound as exc:
        raise Http404("No such invitation.") from exc
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, done.format(email=user.email))
    return redirect(reverse("console:invitations-list", args=[request.tenant.slug]))


@require_POST
@tenant_view("resend_invitation")
def invitation_resend(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _run(request, user_id, services.app_user_invitation_resend, "A new invitation was sent to {email}.")


@require_POST
@tenant_view("revoke_invitation")
@confirm_first
def invitation_revoke(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _run(request, user_id, services.app_user_invitation_revoke, "The invitation of {email} was revoked.")
