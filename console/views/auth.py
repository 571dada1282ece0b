"""Staff access: first-run setup, sign-in (password, then TOTP or a backup code), enrolment,
sign-out, account security and the recent-OTP step-up.

The session steps of signing in live in ``console.flows.staff_sign_in``; these views parse the
forms, call it (or one service) and render.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import otp
from accounts.forms import (
    AcceptInvitationForm,
    BackupCodeForm,
    CodeForm,
    LoginForm,
    PasswordChangeForm,
    ReplaceDeviceForm,
    SetupForm,
)
from accounts.models import User
from accounts.selectors import staff_setup_required
from accounts.services import staff as staff_services
from console import sudo
from console.confirm import confirm_first
from console.decorators import recent_otp_required
from console.errors import flash, form_add
from console.flows import staff_sign_in as flow
from console.http import StaffRequest
from console.middleware import staff_public
from console.staff_session import is_verified
from core import time_zones
from core.emails import EMAIL_MAX_LENGTH
from core.errors import Conflict, Invalid, ServiceError

SIGN_IN_FAILED = "The email or password is not correct."
CODE_FAILED = "That code is not valid. Enter the current code from your authenticator app."
SESSION_PENDING_SECRET = "adminpanel_pending_totp"  # noqa: S105 - a name, not a secret
SESSION_REPLACE_SECRET = "adminpanel_replace_totp"  # noqa: S105 - a name, not a secret
LOW_BACKUP_CODES = 3


def _safe_next(request: HttpRequest, value: str | None) -> str:
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ) and value.startswith("/") and not value.startswith("//"):
        return value
    return reverse("console:home")


def _session_ended(request: HttpRequest) -> HttpResponseRedirect:
    """Locked out during the second step: back to the start, with the usual answer."""
    logout(request)
    messages.error(request, SIGN_IN_FAILED)
    return HttpResponseRedirect(reverse("console:login"))


def _code_refused(step: flow.SecondStep, *, backup: bool) -> str:
    if step.outcome == "throttled":
        return (f"Too many wrong codes in a row: wait {step.wait_seconds} seconds, then enter "
                "the current code.")
    return "That backup code is not valid." if backup else CODE_FAILED


def _pending_secret(request: HttpRequest, key: str) -> otp.PendingSecret:
    """The secret being enrolled, kept in the session until a code confirms it."""
    secret = otp.pending_from_session(request.session.get(key))
    if secret is None:
        secret = otp.new_pending_secret()
        request.session[key] = otp.pending_to_session(secret)
    return secret


def _signed_in_page(email: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:login") + "?" + urlencode({"email": email}))


# --- First-run setup -------------------------------------------------------------------------


@staff_public
@never_cache
@sensitive_post_parameters("password", "password_confirm")
@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    if not staff_setup_required():
        raise Http404("Setup is done.")
    form = SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = staff_services.setup_first_admin(
                actor=None, email=form.cleaned_data["email"], name=form.cleaned_data["name"],
                password=form.cleaned_data["password"],
            )
        except Conflict as exc:
            if exc.code == "already_done":
                raise Http404("Setup is done.") from None
            form_add(form, exc)
        except Invalid as exc:
            form_add(form, exc)
        else:
            messages.success(request, "Your instance admin account is ready. Sign in to set up "
                                      "your authenticator app.")
            return _signed_in_page(user.email)
    return render(request, "accounts/auth/setup.html", {"form": form})


# --- Sign-in ---------------------------------------------------------------------------------


@staff_public
@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    if staff_setup_required():
        return HttpResponseRedirect(reverse("console:setup"))
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if is_verified(request.user):
        return HttpResponseRedirect(next_url)
    form = LoginForm(request.POST or None,
                     initial={"email": request.GET.get("email", "")[:EMAIL_MAX_LENGTH]})
    error = None
    if request.method == "POST" and form.is_valid():
        user = flow.password_step(request, email=form.cleaned_data["email"],
                                  password=form.cleaned_data["password"], next_url=next_url)
        if user is not None:
            name = "console:login-verify" if otp.has_totp(user) else "console:login-enroll"
            return HttpResponseRedirect(reverse(name))
        error = SIGN_IN_FAILED
    return render(request, "accounts/auth/login.html",
                  {"form": form, "error": error, "next": next_url})


@staff_public
@never_cache
@require_http_methods(["GET", "POST"])
def login_verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not isinstance(user, User):
        return HttpResponseRedirect(reverse("console:login"))
    if is_verified(user):
        return HttpResponseRedirect(_safe_next(request, flow.peek_next(request)))
    if not otp.has_totp(user):
        return HttpResponseRedirect(reverse("console:login-enroll"))
    backup = request.GET.get("method") == "backup"
    form = (BackupCodeForm if backup else CodeForm)(request.POST or None)
    if request.method == "POST" and form.is_valid():
        step = flow.second_step(request, user=user, code=form.cleaned_data["code"])
        if step.outcome == "locked":
            return _session_ended(request)
        if step.outcome == "ok":
            if step.method == "backup_code" and (step.backup_codes_left or 0) <= LOW_BACKUP_CODES:
                messages.warning(request, f"You have {step.backup_codes_left} backup codes "
                                          "left. Generate new ones in Account security.")
            return HttpResponseRedirect(_safe_next(request, flow.pop_next(request)))
        form.add_error("code", _code_refused(step, backup=backup))
    return render(request, "accounts/auth/verify.html", {"form": form, "backup": backup})


@staff_public
@never_cache
@require_http_methods(["GET", "POST"])
def login_enroll(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not isinstance(user, User):
        return HttpResponseRedirect(reverse("console:login"))
    if is_verified(user) or otp.has_totp(user):
        return HttpResponseRedirect(reverse("console:login-verify"))
    secret = _pending_secret(request, SESSION_PENDING_SECRET)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = flow.enrol(request, user=user, secret=secret, code=form.cleaned_data["code"])
        except ServiceError as exc:
            form_add(form, exc)
        else:
            if codes is None:
                return _session_ended(request)
            request.session.pop(SESSION_PENDING_SECRET, None)
            return render(request, "accounts/auth/backup_codes.html", {
                "codes": [otp.format_backup_code(c) for c in codes],
                "next": _safe_next(request, flow.pop_next(request)),
                "first_time": True,
            })
    return render(request, "accounts/auth/enroll.html", {
        "form": form, "secret": secret, "qr": secret.qr_svg(user.email),
    })


@staff_public
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    if isinstance(user, User):
        staff_services.staff_auth_event(event="staff.logout", actor=user, user=user)
    logout(request)
    messages.info(request, "You are signed out.")
    return HttpResponseRedirect(reverse("console:login"))


# --- Invitation ------------------------------------------------------------------------------


@staff_public
@never_cache
@sensitive_post_parameters("password", "password_confirm")
@require_http_methods(["GET", "HEAD", "POST"])  # HEAD (mail scanners) answers like GET, uses nothing
def staff_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = staff_services.staff_invitation_get(token=token)
    if invitation is None:
        return render(request, "accounts/auth/invitation_invalid.html", status=404)
    form = AcceptInvitationForm(request.POST or None, user=invitation.user)
    if request.method == "POST" and form.is_valid():
        try:
            user = staff_services.staff_invitation_accept(
                token=token, password=form.cleaned_data["password"]
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            if request.user.is_authenticated:
                logout(request)
            messages.success(request, "Your password is set. Sign in, then set up your "
                                      "authenticator app.")
            return _signed_in_page(user.email)
    return render(request, "accounts/auth/accept.html",
                  {"form": form, "invitation": invitation})


# --- Account security ------------------------------------------------------------------------


def _security_context(request: StaffRequest, **extra: Any) -> dict[str, Any]:
    user = request.user
    return {
        "device": otp.totp_device(user),
        "backup_left": otp.backup_codes_left(user),
        "password_form": extra.pop("password_form", None) or PasswordChangeForm(user=user),
        "time_zones": sorted(time_zones.names()),
        **extra,
    }


@require_POST
def account_time_zone(request: StaffRequest) -> HttpResponse:
    try:
        staff_services.staff_time_zone_set(actor=request.user, time_zone=request.POST.get("time_zone", ""))
    except ServiceError as exc:
        flash(request, exc)
    else:
        zone = request.POST.get("time_zone") or "your browser's time zone"
        messages.success(request, f"Times are now shown in {zone}.")
    return HttpResponseRedirect(reverse("console:account-security") + "#time-zone-card")


@never_cache
@require_http_methods(["GET"])
def account_security(request: StaffRequest) -> HttpResponse:
    return render(request, "accounts/security/index.html", _security_context(request))


@never_cache
@sensitive_post_parameters("current_password", "password", "password_confirm")
@require_POST
def account_password(request: StaffRequest) -> HttpResponse:
    form = PasswordChangeForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            outcome = flow.password_change(
                request, user=request.user, current_password=form.cleaned_data["current_password"],
                new_password=form.cleaned_data["password"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            if outcome == "locked":
                return _session_ended(request)
            update_session_auth_hash(request, request.user)  # keeps this session, new key
            messages.success(request, "Your password was changed.")
            return HttpResponseRedirect(reverse("console:account-security"))
    return render(request, "accounts/security/index.html",
                  _security_context(request, password_form=form), status=200)


@never_cache
@confirm_first
@recent_otp_required
@require_POST
def account_backup_codes(request: StaffRequest) -> HttpResponse:
    codes = staff_services.staff_backup_codes_regenerate(actor=request.user)
    return render(request, "accounts/auth/backup_codes.html", {
        "codes": [otp.format_backup_code(c) for c in codes],
        "next": reverse("console:account-security"),
        "first_time": False,
    })


@never_cache
@recent_otp_required
@require_http_methods(["GET", "POST"])
def account_authenticator(request: StaffRequest) -> HttpResponse:
    user = request.user
    secret = _pending_secret(request, SESSION_REPLACE_SECRET)
    form = ReplaceDeviceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            flow.authenticator_replace(
                request, user=user, secret=secret,
                current_code=form.cleaned_data["current_code"],
                new_code=form.cleaned_data["new_code"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            request.session.pop(SESSION_REPLACE_SECRET, None)
            messages.success(request, "Your new authenticator app is set up; the old one no "
                                      "longer works.")
            return HttpResponseRedirect(reverse("console:account-security"))
    return render(request, "accounts/security/authenticator.html", {
        "form": form, "secret": secret, "qr": secret.qr_svg(user.email),
    })


@never_cache
@require_http_methods(["GET", "POST"])
def reverify(request: StaffRequest) -> HttpResponse:
    """Step-up: a fresh TOTP (or backup) code before a destructive action."""
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    key = request.POST.get("pending") or request.GET.get("pending") or ""
    pending = sudo.pending_get(request, key)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        step = flow.second_step(request, user=request.user, code=form.cleaned_data["code"],
                                step_up=True)
        if step.outcome == "locked":
            return _session_ended(request)
        if step.outcome == "ok":
            if pending is not None and sudo.pending_get(request, key, pop=True):
                return render(request, "accounts/auth/reverify_continue.html", {"pending": pending})
            return HttpResponseRedirect(next_url)
        form.add_error("code", _code_refused(step, backup=False))
    return render(request, "accounts/auth/reverify.html", {"form": form, "next": next_url,
                                                           "pending": pending})
