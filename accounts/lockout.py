"""Staff lockout (django-axes, per account, counters in the shared cache).

The numbers come from ``core.policy.policy()``; settings point axes at the callables below.
Password failures and TOTP failures count toward the same per-account limit, and the counter is
reset only after a complete sign-in (password and TOTP), so knowing the password does not buy
fresh TOTP guesses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse

from core.emails import canonical_email
from core.policy import policy
from core.request_context import client_ip

USERNAME_FIELD = "email"


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """AXES_USERNAME_CALLABLE: one counter per account (the canonical form of the email)."""
    if credentials:
        value = credentials.get(USERNAME_FIELD)
    else:
        value = getattr(request, "POST", {}).get(USERNAME_FIELD)
    return canonical_email(value) or None


def axes_failure_limit(request: HttpRequest | None, credentials: dict[str, Any] | None = None) -> int:
    return policy().staff_lockout_failures


def axes_cooloff(request: HttpRequest | None = None) -> timedelta:
    return timedelta(minutes=policy().staff_lockout_minutes)


def axes_client_ip(request: HttpRequest) -> str | None:
    """The address SECURITY.md allows: the socket peer or the one trusted proxy header."""
    return client_ip(request)


def axes_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: a locked account gets exactly the answer of a wrong password.

    The sign-in view already rendered that answer (axes refused the credentials, so
    ``authenticate`` returned ``None``); pass it through unchanged.
    """
    if original_response is not None:
        return original_response
    return HttpResponse("Sign-in failed.", status=200)  # pragma: no cover - async path only


def is_locked(request: HttpRequest, email: str) -> bool:
    return AxesProxyHandler.is_locked(request, {USERNAME_FIELD: canonical_email(email)})


def count_failure(request: HttpRequest, email: str) -> None:
    """Count a failed second factor toward the account's limit (axes listens to this signal)."""
    user_login_failed.send(
        sender=__name__, credentials={USERNAME_FIELD: canonical_email(email)}, request=request
    )


def reset(email: str) -> None:
    """A complete sign-in clears the account's failures."""
    AxesProxyHandler.reset_attempts(username=canonical_email(email))
