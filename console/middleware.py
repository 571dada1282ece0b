from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from auditlog.context import set_extra_data
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, get_urlconf, resolve, reverse
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import OTPMiddleware

from accounts.models import User
from accounts.otp import has_totp
from accounts.selectors import staff_setup_required
from accounts.services.staff import staff_auth_event
from console.staff_session import OTP_VERIFIED_AT, is_verified
from core import request_context
from core.api_paths import is_api_path
from core.policy import policy

# No inline scripts or styles anywhere: everything is served from /static/.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


# The longest address kept in the sign-in page's `next`.
MAX_NEXT_LENGTH = 2000

_View = TypeVar("_View", bound=Callable[..., Any])


class StaffOTPMiddleware(OTPMiddleware):
    """django-otp's middleware, reading the session's device from the snapshot that came with the
    user (``accounts.identity``: same checks, no query); a user from elsewhere is looked up as
    django-otp does."""

    def _verify_user_sync(self, request: HttpRequest, user: Any) -> Any:
        devices = getattr(user, "_staff_devices", None)
        if devices is None or not user.is_authenticated:
            return super()._verify_user_sync(request, user)
        self._init_user_fields(user)
        persistent_id = request.session.get(DEVICE_ID_SESSION_KEY)
        device = devices.get(self._normalize_persistent_id(persistent_id)) if persistent_id else None
        user.otp_device = self._finalize_device(request, user, device)
        return user


def security_headers(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        if not request.path.startswith("/static/"):
            # Console pages carry personal data: never cache them.
            response.headers["Cache-Control"] = "no-store"
        return response

    return middleware


def bind_request_context(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Binds client address and correlation id for the audit trail (auditlog included)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        ctx = request_context.bind(request)
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
        try:
            with set_extra_data(
                context_data={"actor": actor, "remote_addr": ctx.remote_addr, "remote_port": None}
            ):
                response = get_response(request)
        finally:
            request_context.reset()
        response.headers["X-Request-ID"] = ctx.correlation_id
        return response

    return middleware


# --- Staff access: default deny (issue 3) -----------------------------------------------------

# Reachable without a verified staff session: static files, the health check and the tenant
# portal (app users have their own sessions there). Everything else needs password + TOTP,
# except the views marked with ``staff_public`` (sign-in, TOTP, enrolment, setup, sign-out,
# invitation acceptance).
PUBLIC_PREFIXES = ("/static/", "/p/", "/healthz")
SESSION_LOGIN_AT = "adminpanel_login_at"
SESSION_SEEN_AT = "adminpanel_seen_at"
_SEEN_RESOLUTION_SECONDS = 30  # refresh "last seen" at most this often (one session write)


def staff_public(view: _View) -> _View:
    """Mark a view reachable without a verified staff session (the views of signing in)."""
    view.__dict__["staff_public"] = True
    return view


def _is_public_view(path: str) -> bool:
    return _public_view(path, get_urlconf() or str(settings.ROOT_URLCONF))


@functools.lru_cache(maxsize=2048)
def _public_view(path: str, urlconf: str) -> bool:
    """Whether the view of ``path`` is marked ``staff_public`` (a resolve each time otherwise:
    the answer only changes with the URLconf, which is in the key)."""
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return False
    return bool(getattr(match.func, "staff_public", False))


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    # htmx gets a client redirect: the whole page goes to sign-in, never a fragment of it.
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def _session_expired(request: HttpRequest) -> str | None:
    """Idle and absolute limits of a staff session (SECURITY.md); returns the reason or None."""
    now = int(time.time())
    session = request.session
    login_at = session.get(SESSION_LOGIN_AT)
    seen_at = session.get(SESSION_SEEN_AT)
    if not isinstance(login_at, int):
        session[SESSION_LOGIN_AT] = login_at = now
    if now - login_at > policy().staff_session_absolute_hours * 3600:
        return "absolute"
    if isinstance(seen_at, int) and now - seen_at > policy().staff_session_idle_minutes * 60:
        return "idle"
    if not isinstance(seen_at, int) or now - seen_at >= _SEEN_RESOLUTION_SECONDS:
        session[SESSION_SEEN_AT] = now
    return None


def _end_session(request: HttpRequest, reason: str) -> None:
    user = request.user if isinstance(request.user, User) else None
    staff_auth_event(event="staff.session_end", actor=None, user=user, data={"reason": reason})
    logout(request)
    messages.info(request, "Your session has ended. Sign in again to continue.")


def require_verified_staff(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Default deny: every console URL needs a session that passed password and TOTP.

    While no staff user exists at all, every console URL leads to first-run setup. Sessions end
    after the idle and absolute limits of the policy, and when the device that verified them is
    gone (an admin reset the member's second factor).
    """
    def middleware(request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(PUBLIC_PREFIXES) or is_api_path(path):
            # The API authenticates every call with a key in a header (api.auth), never a session.
            return get_response(request)
        user = request.user
        if user.is_authenticated:
            reason = _session_expired(request)
            if reason is None and not is_verified(user) and request.session.get(OTP_VERIFIED_AT):
                reason = "device_removed"
            if reason is not None:
                _end_session(request, reason)
                user = request.user
        if _is_public_view(path):
            return get_response(request)
        if not user.is_authenticated:
            if staff_setup_required():
                return _redirect(request, reverse("console:setup"))
            login_url = reverse("console:login")
            if request.method == "GET" and not getattr(request, "htmx", False) and path != "/":
                # Back to the page after sign-in: its full address, or only its path when the
                # query string is absurdly long (Django refuses an over-long redirect with a 400).
                target = request.get_full_path()
                if len(target) > MAX_NEXT_LENGTH:
                    target = path[:MAX_NEXT_LENGTH]
                login_url += "?" + urlencode({"next": target})
            return _redirect(request, login_url)
        if not is_verified(user):
            name = "console:login-verify" if has_totp(user) else "console:login-enroll"
            return _redirect(request, reverse(name))
        return get_response(request)

    return middleware
