"""Console side of impersonation: start (POST, recent OTP, reason), list, end."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console.decorators import recent_otp_required, tenant_view
from console.http import ConsoleRequest
from core.errors import NotFound, ServiceError
from core.request_context import client_ip
from portal import selectors
from portal.forms import ReasonForm
from portal.gate import portal_url, set_cookie
from portal.services import impersonation as services
from portal.services.sessions import COOKIE_NAME


@require_GET
@tenant_view(action="impersonate")
def impersonation_list(request: ConsoleRequest) -> HttpResponse:
    services.impersonations_expire(tenant=request.tenant)
    active, past = selectors.impersonation_list(tenant=request.tenant)
    return render(request, "console/impersonation/list.html",
                  {"tenant": request.tenant, "active": active, "past": past})


def _refused(request: ConsoleRequest, message: str, status: int = 409) -> HttpResponse:
    return render(request, "console/impersonation/refused.html",
                  {"tenant": request.tenant, "message": message}, status=status)


@require_POST
@tenant_view(action="impersonate")
@recent_otp_required
def impersonation_start(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _refused(request, "Give a reason for impersonating this user (3 to 500 characters).", 400)
    tenant = request.tenant
    try:
        imp, raw = services.impersonation_start(
            actor=request.user, tenant=tenant, app_user_id=user_id, reason=form.cleaned_data["reason"],
            ip_address=client_ip(request), user_agent=request.headers.get("User-Agent", ""),
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ServiceError as exc:  # refused 403, reason 400, user or tenant state 409
        return _refused(request, exc.message, exc.status)
    response = HttpResponseRedirect(portal_url(tenant, "account"))
    set_cookie(response, tenant, COOKIE_NAME, raw, int((imp.expires_at - imp.started_at).total_seconds()))
    return response


@require_POST
@tenant_view(action="impersonate")
def impersonation_end(request: ConsoleRequest, impersonation_id: uuid.UUID) -> HttpResponse:
    try:
        imp = services.impersonation_end(actor=request.user, tenant=request.tenant,
                                         impersonation_id=impersonation_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    messages.success(request, f"The impersonation of {imp.app_user_email} has ended.")
    return HttpResponseRedirect(reverse("console:impersonations", args=[request.tenant.slug]))
