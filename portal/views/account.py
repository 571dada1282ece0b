"""The signed-in user's own account: profile, password, authenticator, sessions; and Stop."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.forms import Form
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.errors import ServiceError
from portal import selectors
from portal.forms import ChangePasswordForm, CodeForm, PasswordConfirmForm, ProfileForm
from portal.gate import MFA_COOKIE_NAME, clear_cookie, portal_url, portal_view
from portal.http import SignedInPortalRequest
from portal.services import auth as services
from portal.services import factors, sessions
from portal.services.impersonation import impersonation_stop
from tenants.config import tenant_settings


def _back(request: SignedInPortalRequest, anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(portal_url(request.portal_tenant, "account") + anchor)


def _page(request: SignedInPortalRequest, **bound: Form) -> HttpResponse:
    tenant, actor = request.portal_tenant, request.portal_actor
    user = actor.user
    context = {
        "tenant": tenant,
        "actor": actor,
        "app_user": user,
        "profile_form": bound.get("profile_form") or ProfileForm(initial={"name": user.name}),
        "password_form": bound.get("password_form") or ChangePasswordForm(tenant=tenant, user=user),
        "remove_form": bound.get("remove_form") or PasswordConfirmForm(),
        "factors": selectors.user_factors(tenant=tenant, user=user),
        "sessions": selectors.user_sessions(tenant=tenant, user=user),
        "require_mfa": tenant_settings(tenant).require_mfa,
    }
    status = 400 if bound else 200
    return render(request, "portal/account.html", context, status=status)


@require_GET
@portal_view()
def account(request: SignedInPortalRequest) -> HttpResponse:
    return _page(request)


@require_POST
@portal_view()
def profile(request: SignedInPortalRequest) -> HttpResponse:
    form = ProfileForm(request.POST)
    if not form.is_valid():
        return _page(request, profile_form=form)
    try:
        services.profile_update(actor=request.portal_actor, tenant=request.portal_tenant,
                                name=form.cleaned_data["name"])
    except ServiceError as exc:
        form.add_error("name" if "name" in exc.fields else None, exc.message)
        return _page(request, profile_form=form)
    messages.success(request, "Your profile is saved.")
    return _back(request, "#profile")


@require_POST
@portal_view()
def password(request: SignedInPortalRequest) -> HttpResponse:
    tenant, actor = request.portal_tenant, request.portal_actor
    form = ChangePasswordForm(request.POST, tenant=tenant, user=actor.user)
    if form.is_valid():
        try:
            services.password_change(actor=actor, tenant=tenant, current=form.cleaned_data["current"],
                                     new=form.cleaned_data["password1"])
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Your password is changed. Your other sessions have ended.")
            return _back(request, "#password")
    return _page(request, password_form=form)


@require_http_methods(["GET", "POST"])
@portal_view(enrolment=True)
def mfa(request: SignedInPortalRequest) -> HttpResponse:
    """GET: the enrolment page (QR code of the pending factor). POST: start a new enrolment."""
    tenant, actor = request.portal_tenant, request.portal_actor
    if request.method == "POST":
        try:
            factors.factor_enrol_start(actor=actor, tenant=tenant)
        except ServiceError as exc:
            messages.error(request, exc.message)
            return _back(request, "#mfa")
        return HttpResponseRedirect(portal_url(tenant, "mfa"))
    return _mfa_page(request, CodeForm())


def _mfa_page(request: SignedInPortalRequest, form: CodeForm, error: str | None = None) -> HttpResponse:
    tenant, actor = request.portal_tenant, request.portal_actor
    user = actor.user
    pending = None if actor.is_impersonating else factors.pending_factor(tenant=tenant, user=user)
    context = {
        "tenant": tenant, "actor": actor, "form": form, "error": error,
        "has_factor": factors.confirmed_factor(tenant=tenant, user=user) is not None,
        "require_mfa": tenant_settings(tenant).require_mfa,
        "pending": pending,
    }
    if pending is not None:
        uri = factors.otpauth_uri(tenant=tenant, user=user, factor=pending)
        context.update(qr=factors.qr_data_uri(uri), secret=factors.b32_secret(pending))
    return render(request, "portal/mfa.html", context, status=400 if error else 200)


@require_POST
@portal_view(enrolment=True)
def mfa_confirm(request: SignedInPortalRequest, factor_id: uuid.UUID) -> HttpResponse:
    """Confirm the pending factor; the recovery codes are shown in this response, once."""
    tenant, actor = request.portal_tenant, request.portal_actor
    form = CodeForm(request.POST)
    if not form.is_valid():
        return _mfa_page(request, form, error="Enter the code from your app.")
    try:
        codes = factors.factor_confirm(actor=actor, tenant=tenant, factor_id=factor_id,
                                       code=form.cleaned_data["code"])
    except ServiceError as exc:
        return _mfa_page(request, CodeForm(), error=exc.message)
    return render(request, "portal/recovery_codes.html", {"tenant": tenant, "actor": actor, "codes": codes})


@require_POST
@portal_view(enrolment=True)
def mfa_remove(request: SignedInPortalRequest, factor_id: uuid.UUID) -> HttpResponse:
    tenant, actor = request.portal_tenant, request.portal_actor
    form = PasswordConfirmForm(request.POST)
    if form.is_valid():
        try:
            factors.factor_remove(actor=actor, tenant=tenant, factor_id=factor_id,
                                  password=form.cleaned_data["password"])
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Your authenticator is removed.")
            return _back(request, "#mfa")
    return _page(request, remove_form=form)


@require_POST
@portal_view(enrolment=True)
def sessions_end(request: SignedInPortalRequest, scope: str) -> HttpResponse:
    """GoTrue's sign-out scopes: ``local`` (one session, or this one), ``others``, ``global``."""
    tenant, actor = request.portal_tenant, request.portal_actor
    if scope not in sessions.SCOPES:
        return HttpResponse(status=404)
    try:
        target = uuid.UUID(request.POST["session"]) if scope == "local" and request.POST.get("session") else None
    except ValueError:
        return HttpResponse(status=400)
    try:
        sessions.session_end(actor=actor, tenant=tenant, scope=scope, session_id=target)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return _back(request, "#sessions")
    current = actor.session.pk if actor.session is not None else None
    current_ended = scope == "global" or (scope == "local" and (target is None or target == current))
    if current_ended:
        response = HttpResponseRedirect(portal_url(tenant, "login") + "?reason=signed_out")
        clear_cookie(response, tenant, sessions.COOKIE_NAME)
        clear_cookie(response, tenant, MFA_COOKIE_NAME)
        return response
    messages.success(request, "Your other sessions have ended." if scope == "others" else "The session has ended.")
    return _back(request, "#sessions")


@require_POST
@portal_view()
def impersonation_stop_view(request: SignedInPortalRequest) -> HttpResponse:
    """The banner's Stop button: ends the impersonation and returns to the console."""
    tenant, actor = request.portal_tenant, request.portal_actor
    if not actor.is_impersonating:
        return HttpResponse(status=404)
    if actor.impersonation_id:
        impersonation_stop(impersonation_id=actor.impersonation_id, tenant=tenant)
    response = HttpResponseRedirect(reverse("console:impersonations", args=[tenant.slug]))
    clear_cookie(response, tenant, sessions.COOKIE_NAME)
    return response
