"""Facts about a staff session: whether its second factor passed, and when its OTP was last
verified ("recent OTP" for destructive work)."""

from __future__ import annotations

import time

from django.http import HttpRequest

from core.policy import policy

OTP_VERIFIED_AT = "adminpanel_otp_verified_at"


def is_verified(user: object) -> bool:
    """Signed in with password and a second factor in this session.

    django-otp's ``OTPMiddleware`` puts ``is_verified()`` on ``request.user``; the model does not
    declare it (and a user object from elsewhere lacks it: then the answer is no).
    """
    check = getattr(user, "is_verified", None)
    return bool(getattr(user, "is_authenticated", False) and callable(check) and check())


def mark_otp_verified(request: HttpRequest) -> None:
    """Call after every successful TOTP or backup-code verification."""
    request.session[OTP_VERIFIED_AT] = int(time.time())


def otp_verified_at(request: HttpRequest) -> int | None:
    value = request.session.get(OTP_VERIFIED_AT)
    return int(value) if isinstance(value, int | float) else None


def otp_is_recent(request: HttpRequest) -> bool:
    """True when the OTP was verified within the policy's window (15 minutes by default)."""
    at = otp_verified_at(request)
    return at is not None and time.time() - at <= policy().recent_otp_minutes * 60
