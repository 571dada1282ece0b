from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from console.staff_session import is_verified
from core.access import is_instance_admin


def console(request: HttpRequest) -> dict[str, Any]:
    """The header: a verified staff member gets the tenant switcher (a search, answered by
    ``console:tenant-switch``; no tenant list is loaded here) and, instance admins, their nav."""
    user = getattr(request, "user", None)
    if user is None or not is_verified(user):
        return {}
    return {"nav_switcher": True, "nav_is_instance_admin": is_instance_admin(user)}
