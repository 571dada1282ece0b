"""Target rules for actions on one app user (on top of the role matrix of ``core.access``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from core.access import role_can
from core.emails import same_email
from tenants.access import actor_role
from tenants.models import Tenant


def can_act_on_app_user(
    actor: Any, tenant: Tenant, action: str, *, target_role: str, target_email: str,
    protected_roles: Collection[str],
) -> str | None:
    """Whether ``actor`` may ``action`` one app user. Returns ``None`` when allowed, else the reason.

    - the role must allow the action;
    - nobody acts on the app user that carries their own email (self-action prevention);
    - users whose role is protected are changed only by a tenant ``admin`` or an instance admin.
    """
    role = actor_role(actor, tenant)
    if not role_can(role, action):
        return "Your role does not allow this action."
    if actor is not None and target_email and same_email(target_email, actor.email or ""):
        return "You cannot act on the app user that carries your own email address."
    if target_role in protected_roles and role != "admin":
        return f"Users with the protected role '{target_role}' can only be changed by a tenant admin."
    return None
