"""Staff sign-in, one journey: the password, then the second step (a TOTP code, a backup code,
or the first enrolment), plus the recent-OTP step-up and a replaced authenticator.

What the session gets at each step lives here once:

- after the password: ``auth_login`` (a new session key), the session's start and last-seen
  times, and where to go afterwards;
- after a second factor: the session is bound to the device (``otp_login``), gets a new key
  (it is fully privileged now), notes the OTP time for step-up, the account's failure counter
  is cleared (``lockout.reset``) and ``staff.login`` is audited.

Password and second-factor failures, and a wrong current password in the member's own password
change, count toward the same per-account lockout (``accounts.lockout``); a locked account gets
the answer of a wrong password.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from django.contrib.auth import authenticate
from django.contrib.auth import login as auth_login
from django.contrib.auth.hashers import make_password
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.models import Device

from accounts import lockout, otp
from accounts.models import User
from accounts.selectors import staff_by_email
from accounts.services import staff as staff_services
from console.middleware import SESSION_LOGIN_AT, SESSION_SEEN_AT
from console.staff_session import mark_otp_verified
from core.emails import canonical_email
from core.errors import Invalid

SESSION_NEXT = "adminpanel_next"


@dataclass(frozen=True)
class SecondStep:
    """How a second-factor attempt ended. ``locked``: the account is locked (now or already);
    the caller ends the half-open session."""

    outcome: Literal["ok", "failed", "locked", "throttled"]
    method: str = ""  # "totp" | "backup_code" | ""
    backup_codes_left: int | None = None
    wait_seconds: int = 0  # "throttled": when the next code will be checked


def _locked_out(request: HttpRequest) -> bool:
    return bool(getattr(request, "axes_locked_out", False))


def password_step(request: HttpRequest, *, email: str, password: str, next_url: str) -> User | None:
    """Check the password; on success the session is half signed in (no second factor yet).

    ``None`` for a wrong password, an unknown or inactive account and a locked one alike (each
    audited as ``staff.login_failed`` with its reason).
    """
    email = canonical_email(email)
    user = authenticate(request, email=email, password=password)
    if not isinstance(user, User):
        locked = _locked_out(request)
        if locked:
            make_password(password)  # as slow as a wrong password: no timing tell
        staff_services.staff_auth_event(
            event="staff.login_failed", actor=None, user=staff_by_email(email=email), email=email,
            data={"reason": "locked" if locked else "invalid_credentials"},
        )
        return None
    auth_login(request, user)  # new session key
    now = int(time.time())
    request.session[SESSION_LOGIN_AT] = now
    request.session[SESSION_SEEN_AT] = now
    request.session[SESSION_NEXT] = next_url
    return user


def pop_next(request: HttpRequest) -> str | None:
    """Where the member wanted to go before signing in (once)."""
    value = request.session.pop(SESSION_NEXT, None)
    return value if isinstance(value, str) else None


def peek_next(request: HttpRequest) -> str | None:
    value = request.session.get(SESSION_NEXT)
    return value if isinstance(value, str) else None


def is_locked(request: HttpRequest, user: User) -> bool:
    return lockout.is_locked(request, user.email)


def _verified(request: HttpRequest, device: Device | None) -> None:
    """A privilege change: bind the session to the device, give it a new key, note the time."""
    if device is not None:
        otp_login(request, device)
    request.session.cycle_key()
    mark_otp_verified(request)


def _complete(request: HttpRequest, user: User, device: Device, method: str, **data: Any) -> None:
    _verified(request, device)
    lockout.reset(user.email)
    staff_services.staff_auth_event(
        event="staff.login", actor=user, user=user, data={"method": method, **data}
    )


def second_step(request: HttpRequest, *, user: User, code: str, step_up: bool = False) -> SecondStep:
    """A TOTP or backup code, at sign-in (``step_up=False``) or for the recent-OTP step-up."""
    if is_locked(request, user):
        return SecondStep("locked")
    result = otp.verify(user, code)
    if result.ok and result.device is not None:
        if step_up:
            _verified(request, None)  # the session stays bound to the device it signed in with
            staff_services.staff_auth_event(
                event="staff.otp_reverified", actor=user, user=user, data={"method": result.method}
            )
        else:
            _complete(request, user, result.device, result.method)
        if result.method == "backup_code":
            staff_services.staff_auth_event(
                event="staff.backup_code_used", actor=user, user=user,
                data={"backup_codes_left": result.backup_codes_left},
            )
        return SecondStep("ok", result.method, result.backup_codes_left)
    data: dict[str, Any] = {"method": result.method or "unknown"}
    if step_up:
        data["step_up"] = True
    if result.throttled_seconds:
        # django-otp did not look at the code: no guess was made, so none is counted (the
        # right code after four wrong ones must not become the fifth failure).
        staff_services.staff_auth_event(
            event="staff.otp_throttled", actor=user if step_up else None, user=user,
            data={**data, "wait_seconds": result.throttled_seconds},
        )
        return SecondStep("throttled", result.method, wait_seconds=result.throttled_seconds)
    staff_services.staff_auth_event(
        event="staff.otp_failed", actor=user if step_up else None, user=user, data=data
    )
    lockout.count_failure(request, user.email)
    return SecondStep("locked" if _locked_out(request) else "failed", result.method)


def password_change(
    request: HttpRequest, *, user: User, current_password: str, new_password: str
) -> Literal["ok", "locked"]:
    """The member's own password change. The current password is a credential check like the
    sign-in's: a wrong one is audited as ``staff.login_failed`` (reason ``current_password``) and
    counts toward the account's lockout, and a locked account is refused even the right one, so
    a stolen session is no password oracle. ``locked``: the caller ends the session.

    ``Invalid`` for a wrong current password or a weak new one (on their fields).
    """
    if is_locked(request, user):
        make_password(current_password)  # as slow as a wrong password
        staff_services.staff_auth_event(
            event="staff.login_failed", actor=user, user=user,
            data={"reason": "locked", "via": "password_change"},
        )
        return "locked"
    try:
        staff_services.staff_password_change(
            actor=user, current_password=current_password, new_password=new_password
        )
    except Invalid as exc:
        if exc.code == "wrong_password":
            staff_services.staff_auth_event(
                event="staff.login_failed", actor=user, user=user,
                data={"reason": "current_password", "via": "password_change"},
            )
            lockout.count_failure(request, user.email)
            if _locked_out(request):
                return "locked"
        raise
    return "ok"


def enrol(
    request: HttpRequest, *, user: User, secret: otp.PendingSecret, code: str
) -> list[str] | None:
    """First enrolment confirmed by a code: the member is signed in; returns the backup codes,
    or ``None`` when the account is locked (the caller ends the half-open session).

    ``Invalid`` (code ``bad_code``) when the code does not match the new secret.
    """
    if is_locked(request, user):
        return None
    device, codes = staff_services.staff_totp_enrol(actor=user, secret=secret, code=code)
    _complete(request, user, device, "enrol")
    return codes


def authenticator_replace(
    request: HttpRequest, *, user: User, secret: otp.PendingSecret, current_code: str, new_code: str
) -> None:
    """Replace the authenticator; this session stays verified, now by the new device."""
    device = staff_services.staff_totp_replace(
        actor=user, current_code=current_code, secret=secret, new_code=new_code
    )
    _verified(request, device)
