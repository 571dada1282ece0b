"""Staff access: first-run setup, sign-in (password, then TOTP or a backup code), enrolment,
sign-out, account security and the recent-OTP step-up."""

from __future__ import annotations

import time

from django.contrib import messages
from django.contrib.auth import authenticate, logout, update_session_auth_hash
from django.contrib.auth import login as auth_login
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from accounts import lockout, otp
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
from console.decorators import recent_otp_required
from console.middleware import SESSION_LOGIN_AT, SESSION_SEEN_AT, staff_public
from console.staff_session import mark_otp_verified

SIGN_IN_FAILED = "The email or password is not correct."
CODE_FAILED = "That code is not valid. Enter the current code from your authenticator app."
SESSION_NEXT = "adminpanel_next"
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


def _complete_sign_in(request: HttpRequest, user: User, device, method: str, **data) -> None:
    otp_login(request, device)
    request.session.cycle_key()  # a new key once the session is fully privileged
    mark_otp_verified(request)
    lockout.reset(user.email)
    staff_services.staff_auth_event(
        event="staff.login", actor=user, user=user, data={"method": method, **data}
    )


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
        except staff_services.SetupAlreadyDone:
            raise Http404("Setup is done.") from None
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Your instance admin account is ready. Sign in to set up "
                                      "your authenticator app.")
            return HttpResponseRedirect(
                reverse("console:login") + "?" + urlencode({"email": user.email})
            )
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
    if request.user.is_authenticated and request.user.is_verified():
        return HttpResponseRedirect(next_url)
    form = LoginForm(request.POST or None, initial={"email": request.GET.get("email", "")[:254]})
    error = None
    if request.method == "POST" and form.is_valid():
        email = lockout.normalize_email(form.cleaned_data["email"])
        password = form.cleaned_data["password"]
        user = authenticate(request, email=email, password=password)
        if user is None:
            locked = bool(getattr(request, "axes_locked_out", False))
            if locked:
                make_password(password)  # as slow as a wrong password: no timing tell
            staff_services.staff_auth_event(
                event="staff.login_failed", actor=None,
                user=User.objects.filter(email__iexact=email).first(), email=email,
                data={"reason": "locked" if locked else "invalid_credentials"},
            )
            error = SIGN_IN_FAILED
        else:
            auth_login(request, user)  # new session key
            now = int(time.time())
            request.session[SESSION_LOGIN_AT] = now
            request.session[SESSION_SEEN_AT] = now
            request.session[SESSION_NEXT] = next_url
            name = "console:login-verify" if otp.has_totp(user) else "console:login-enroll"
            return HttpResponseRedirect(reverse(name))
    return render(request, "accounts/auth/login.html",
                  {"form": form, "error": error, "next": next_url})


@staff_public
@never_cache
@require_http_methods(["GET", "POST"])
def login_verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return HttpResponseRedirect(reverse("console:login"))
    if user.is_verified():
        return HttpResponseRedirect(_safe_next(request, request.session.get(SESSION_NEXT)))
    if not otp.has_totp(user):
        return HttpResponseRedirect(reverse("console:login-enroll"))
    backup = request.GET.get("method") == "backup"
    form = (BackupCodeForm if backup else CodeForm)(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if lockout.is_locked(request, user.email):
            return _session_ended(request)
        result = otp.verify(user, form.cleaned_data["code"])
        if result.ok:
            _complete_sign_in(request, user, result.device, result.method)
            if result.method == "backup_code":
                staff_services.staff_auth_event(
                    event="staff.backup_code_used", actor=user, user=user,
                    data={"backup_codes_left": result.backup_codes_left},
                )
                if (result.backup_codes_left or 0) <= LOW_BACKUP_CODES:
                    messages.warning(request, f"You have {result.backup_codes_left} backup codes "
                                              "left. Generate new ones in Account security.")
            return HttpResponseRedirect(_safe_next(request, request.session.pop(SESSION_NEXT, None)))
        staff_services.staff_auth_event(
            event="staff.otp_failed", actor=None, user=user,
            data={"method": result.method or "unknown"},
        )
        lockout.count_failure(request, user.email)
        if getattr(request, "axes_locked_out", False):
            return _session_ended(request)
        form.add_error("code", "That backup code is not valid." if backup else CODE_FAILED)
    return render(request, "accounts/auth/verify.html", {"form": form, "backup": backup})


@staff_public
@never_cache
@require_http_methods(["GET", "POST"])
def login_enroll(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated:
        return HttpResponseRedirect(reverse("console:login"))
    if user.is_verified() or otp.has_totp(user):
        return HttpResponseRedirect(reverse("console:login-verify"))
    secret = otp.pending_from_session(request.session.get(SESSION_PENDING_SECRET))
    if secret is None:
        secret = otp.new_pending_secret()
        request.session[SESSION_PENDING_SECRET] = secret.hex_key
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if lockout.is_locked(request, user.email):
            return _session_ended(request)
        try:
            device, codes = staff_services.staff_totp_enrol(
                actor=user, secret=secret, code=form.cleaned_data["code"]
            )
        except ValidationError as exc:
            form.add_error("code", exc)
        else:
            request.session.pop(SESSION_PENDING_SECRET, None)
            _complete_sign_in(request, user, device, "enrol")
            return render(request, "accounts/auth/backup_codes.html", {
                "codes": [otp.format_backup_code(c) for c in codes],
                "next": _safe_next(request, request.session.pop(SESSION_NEXT, None)),
                "first_time": True,
            })
    return render(request, "accounts/auth/enroll.html", {
        "form": form, "secret": secret, "qr": secret.qr_svg(user.email),
    })


@staff_public
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        staff_services.staff_auth_event(
            event="staff.logout", actor=request.user, user=request.user
        )
    logout(request)
    messages.info(request, "You are signed out.")
    return HttpResponseRedirect(reverse("console:login"))


# --- Invitation ------------------------------------------------------------------------------


@staff_public
@never_cache
@sensitive_post_parameters("password", "password_confirm")
@require_http_methods(["GET", "POST"])
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
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if request.user.is_authenticated:
                logout(request)
            messages.success(request, "Your password is set. Sign in, then set up your "
                                      "authenticator app.")
            return HttpResponseRedirect(
                reverse("console:login") + "?" + urlencode({"email": user.email})
            )
    return render(request, "accounts/auth/accept.html",
                  {"form": form, "invitation": invitation})


# --- Account security ------------------------------------------------------------------------


def _security_context(request: HttpRequest, **extra) -> dict:
    user = request.user
    return {
        "device": otp.totp_device(user),
        "backup_left": otp.backup_codes_left(user),
        "password_form": extra.pop("password_form", None) or PasswordChangeForm(user=user),
        **extra,
    }


@never_cache
@require_http_methods(["GET"])
def account_security(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/security/index.html", _security_context(request))


@never_cache
@sensitive_post_parameters("current_password", "password", "password_confirm")
@require_POST
def account_password(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            staff_services.staff_password_change(
                actor=request.user, current_password=form.cleaned_data["current_password"],
                new_password=form.cleaned_data["password"],
            )
        except ValidationError as exc:
            form.add_error("current_password", exc)
        else:
            update_session_auth_hash(request, request.user)  # keeps this session, new key
            messages.success(request, "Your password was changed.")
            return HttpResponseRedirect(reverse("console:account-security"))
    return render(request, "accounts/security/index.html",
                  _security_context(request, password_form=form), status=200)


@never_cache
@recent_otp_required
@require_POST
def account_backup_codes(request: HttpRequest) -> HttpResponse:
    codes = staff_services.staff_backup_codes_regenerate(actor=request.user)
    return render(request, "accounts/auth/backup_codes.html", {
        "codes": [otp.format_backup_code(c) for c in codes],
        "next": reverse("console:account-security"),
        "first_time": False,
    })


@never_cache
@recent_otp_required
@require_http_methods(["GET", "POST"])
def account_authenticator(request: HttpRequest) -> HttpResponse:
    user = request.user
    secret = otp.pending_from_session(request.session.get(SESSION_REPLACE_SECRET))
    if secret is None:
        secret = otp.new_pending_secret()
        request.session[SESSION_REPLACE_SECRET] = secret.hex_key
    form = ReplaceDeviceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = staff_services.staff_totp_replace(
                actor=user, current_code=form.cleaned_data["current_code"], secret=secret,
                new_code=form.cleaned_data["new_code"],
            )
        except ValidationError as exc:
            field = "current_code" if exc.code == "bad_current_code" else "new_code"
            form.add_error(field, exc)
        else:
            request.session.pop(SESSION_REPLACE_SECRET, None)
            otp_login(request, device)  # this session stays verified, by the new device
            request.session.cycle_key()
            mark_otp_verified(request)
            messages.success(request, "Your new authenticator app is set up; the old one no "
                                      "longer works.")
            return HttpResponseRedirect(reverse("console:account-security"))
    return render(request, "accounts/security/authenticator.html", {
        "form": form, "secret": secret, "qr": secret.qr_svg(user.email),
    })


@never_cache
@require_http_methods(["GET", "POST"])
def reverify(request: HttpRequest) -> HttpResponse:
    """Step-up: a fresh TOTP (or backup) code before a destructive action."""
    user = request.user
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if lockout.is_locked(request, user.email):
            return _session_ended(request)
        result = otp.verify(user, form.cleaned_data["code"])
        if result.ok:
            request.session.cycle_key()  # step-up is a privilege change: a new session key
            mark_otp_verified(request)
            staff_services.staff_auth_event(
                event="staff.otp_reverified", actor=user, user=user,
                data={"method": result.method},
            )
            if result.method == "backup_code":
                staff_services.staff_auth_event(
                    event="staff.backup_code_used", actor=user, user=user,
                    data={"backup_codes_left": result.backup_codes_left},
                )
            return HttpResponseRedirect(next_url)
        staff_services.staff_auth_event(
            event="staff.otp_failed", actor=user, user=user,
            data={"method": result.method or "unknown", "step_up": True},
        )
        lockout.count_failure(request, user.email)
        if getattr(request, "axes_locked_out", False):
            return _session_ended(request)
        form.add_error("code", CODE_FAILED)
    return render(request, "accounts/auth/reverify.html", {"form": form, "next": next_url})
