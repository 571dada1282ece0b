"""Target rules for actions on one app user (on top of the role matrix of ``core.access``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from core.access import role_can
from core.emails import same_email
from core.errors import Refused
from tenants.access import actor_role
from tenants.models import Tenant

ROLE_REFUSED = "Your role does not allow this action."


def app_user_refusal(
    actor: Any, tenant: Tenant, action: str, *, target_role: str, target_email: str,
    protected_roles: Collection[str], target_pk: Any = "",
) -> Refused | None:
    """Whether ``actor`` may ``action`` one app user: ``None`` when allowed, else the refusal
    (not raised: a batch reports it per user). Its facts name the action and the target, for
    the audit entry of the refusal.

    - the role must allow the action (code ``role``);
    - nobody acts on the app user that carries their own email (``self_action``);
    - users whose role is protected are changed only by a tenant ``admin`` or an instance admin
      (``protected_user``).
    """
    facts = {"action": action, "target_pk": target_pk, "target_repr": target_email}
    role = actor_role(actor, tenant)
    if not role_can(role, action):
        return Refused(ROLE_REFUSED, code="role", **facts)
    if actor is not None and target_email and same_email(target_email, actor.email or ""):
        return Refused("You cannot act on the app user that carries your own email address.",
                       code="self_action", **facts)
    if target_role in protected_roles and role != "admin":
        return Refused(
            f"Users with the protected role '{target_role}' can only be changed by a tenant admin.",
            code="protected_user", **facts,
        )
    return None
