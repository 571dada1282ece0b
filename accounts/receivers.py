"""Signal receivers of the staff side (connected in ``AccountsConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.emails import canonical_email
from core.policy import policy


def audit_lockout(
    sender: object, request: HttpRequest | None = None, username: str | None = None,
    ip_address: str | None = None, **kwargs: Any,
) -> None:
    """axes' ``user_locked_out``: one ``staff.lockout`` entry when an account gets locked.

    axes sends the signal again for every attempt refused while the lock holds; those attempts
    are already in the trail as ``staff.login_failed`` (reason ``locked``), so only the attempt
    that tipped the count over the limit is recorded here.
    """
    if request is None or getattr(request, "axes_failures_since_start", None) is None:
        return
    from accounts.selectors import staff_by_email
    from accounts.services.staff import staff_auth_event

    email = canonical_email(username)
    staff_auth_event(
        event="staff.lockout", actor=None, user=staff_by_email(email=email), email=email,
        data={
            "failures": getattr(request, "axes_failures_since_start", None),
            "minutes": policy().staff_lockout_minutes,
        },
    )
