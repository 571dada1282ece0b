"""Signal receivers of the staff side (connected in ``AccountsConfig.ready``)."""

from __future__ import annotations

from core.policy import policy


def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """axes' ``user_locked_out``: one ``staff.lockout`` entry when an account gets locked.

    axes sends the signal again for every attempt refused while the lock holds; those attempts
    are already in the trail as ``staff.login_failed`` (reason ``locked``), so only the attempt
    that tipped the count over the limit is recorded here.
    """
    if request is None or getattr(request, "axes_failures_since_start", None) is None:
        return
    from accounts.models import User
    from accounts.services.staff import staff_auth_event

    user = User.objects.filter(email__iexact=username or "").first() if username else None
    staff_auth_event(
        event="staff.lockout", actor=None, user=user, email=username or "",
        data={
            "failures": request.axes_failures_since_start,
            "minutes": policy().staff_lockout_minutes,
        },
    )
