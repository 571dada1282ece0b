"""Sign-in (password, then the second factor) and sign-out."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import ServiceError
from portal.forms import CodeForm, LoginForm
from portal.gate import MFA_COOKIE_NAME, clear_cookie, login_redirect, portal_url, portal_view
from portal.http import PortalRequest
from portal.services import auth as services
from portal.services.common import refusal_message
from portal.services.impersonation import impersonation_stop
from portal.services.sessions import COOKIE_NAME
from portal.views._helpers import client, signed_in_response

REASONS = {
    "revoked": "You have been signed out. Sign in again.",
    "expired": "Your session has expired. Sign in again.",
    "signed_out": "You are signed out.",
    "impersonation_ended": "The impersonation has ended.",
    "password_set": "Your password is set. Sign in with it.",
}


def _reason_message(code: str | None) -> tuple[str, str] | None:
    if not code:
        return None
    if code in REASONS:
        return ("info", REASONS[code])
    if code in {"banned", "deleted", "unconfirmed"}:
        return ("error", refusal_message(code))
    return None


@require_http_methods(["GET", "POST"])
@portal_view(signed_in=False)
def login(request: PortalRequest) -> HttpResponse:
    tenant = request.portal_tenant
    if request.portal_actor is not None and request.method == "GET":
        return HttpResponseRedirect(portal_url(tenant, "account"))
    form = LoginForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            result = services.sign_in_password(
                tenant=tenant, email=form.cleaned_data["email"],
                password=form.cleaned_data["password"], client=client(request),
            )
        except ServiceError as exc:
            error = exc.message
        else:
            return signed_in_response(request, result)
    notice = _reason_message(request.GET.get("reason")) if request.method == "GET" else None
    return render(request, "portal/login.html",
                  {"tenant": tenant, "form": form, "error": error, "notice": notice},
                  status=400 if error else 200)


@require_http_methods(["GET", "POST"])
@portal_view(signed_in=False)
def login_verify(request: PortalRequest) -> HttpResponse:
    tenant = request.portal_tenant
    pending = request.COOKIES.get(MFA_COOKIE_NAME)
    if services.mfa_pending_user(tenant=tenant, pending=pending) is None:
        response = login_redirect(tenant, "expired")
        clear_cookie(response, tenant, MFA_COOKIE_NAME)
        return response
    form = CodeForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            result = services.sign_in_second_factor(
                tenant=tenant, pending=pending, code=form.cleaned_data["code"], client=client(request)
            )
        except ServiceError as exc:
            error = exc.message
        else:
            return signed_in_response(request, result)
    return render(request, "portal/login_verify.html",
                  {"tenant": tenant, "form": form, "error": error}, status=400 if error else 200)


@require_POST
@portal_view(signed_in=False)
def logout(request: PortalRequest) -> HttpResponse:
    tenant = request.portal_tenant
    actor = request.portal_actor
    if actor is not None and actor.is_impersonating:
        if actor.impersonation_id:
            impersonation_stop(impersonation_id=actor.impersonation_id, tenant=tenant)
        response = login_redirect(tenant, "impersonation_ended")
    else:
        if actor is not None:
            services.sign_out(actor=actor, tenant=tenant)
        response = login_redirect(tenant, "signed_out")
    clear_cookie(response, tenant, COOKIE_NAME)
    clear_cookie(response, tenant, MFA_COOKIE_NAME)
    return response
