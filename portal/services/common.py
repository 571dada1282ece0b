"""What every portal service shares: who is acting, refusals, and the audit helper.

Portal services raise the error family of ``core.errors`` (``Refused``, ``Invalid``, ``Conflict``,
``NotFound``, each with its code); the portal views show the message on their own pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from accounts.models import BANNED_FOREVER, AppSession, AppUser
from audit import services as audit
from core.errors import Refused
from tenants.models import Tenant


@dataclass(frozen=True)
class PortalActor:
    """The app user behind a portal request, and the staff member when one is impersonating."""

    user: AppUser
    session: AppSession | None = None
    impersonator: Any = None  # accounts.User (staff) or None
    impersonation_id: uuid.UUID | None = None

    @property
    def is_impersonating(self) -> bool:
        return self.impersonator is not None


REFUSALS = {
    "deleted": "This account has been deleted. Contact the administrators of this application.",
    "banned": "This account is banned. Contact the administrators of this application.",
    "unconfirmed": (
        "This account's email address is not confirmed yet. Open the link in your invitation, "
        "or ask for a sign-in link."
    ),
}


def user_refusal(user: AppUser) -> str | None:
    """Why this user may not use the portal now (a key of ``REFUSALS``), or ``None``."""
    if user.deleted_at is not None:
        return "deleted"
    if user.is_banned:
        return "banned"
    if user.email_confirmed_at is None:
        return "unconfirmed"
    return None


def refusal_message(code: str, user: AppUser | None = None) -> str:
    if code == "banned" and user is not None and user.banned_until and user.banned_until < BANNED_FOREVER:
        return (
            f"This account is banned until {user.banned_until:%Y-%m-%d %H:%M} UTC. "
            "Contact the administrators of this application."
        )
    return REFUSALS.get(code, "You cannot sign in to this application.")


def record(
    event: str, *, tenant: Tenant, user: AppUser | None, actor: PortalActor | None = None,
    data: dict[str, Any] | None = None, action: int = audit.UPDATE, target_model: Any = None,
    target_pk: Any = None,
    target_repr: str = "",
) -> None:
    """An audit entry for something an app user did (or that happened to one) in the portal.

    Self-service: ``actor=None`` in the trail, the app user in ``data``. While impersonating:
    the staff member is both the actor and the impersonator, the app user is in ``data``.
    """
    payload: dict[str, Any] = {"app_user": str(user.pk) if user is not None else None, "via": "portal"}
    payload.update(data or {})
    staff = None
    if actor is not None and actor.is_impersonating:
        staff = actor.impersonator
        payload["impersonation"] = str(actor.impersonation_id) if actor.impersonation_id else None
    if actor is not None and actor.session is not None:
        payload.setdefault("session", str(actor.session.pk))
    audit.record(
        event=event,
        actor=staff,
        impersonator=staff,
        tenant=tenant,
        target_model=target_model or AppUser,
        target_pk=target_pk if target_pk is not None else (user.pk if user is not None else ""),
        target_repr=target_repr or (user.email if user is not None else ""),
        action=action,
        data=payload,
    )


NOT_WHILE_IMPERSONATING = "While impersonating you cannot change this user's password or factors."


def refuse_while_impersonating(
    actor: PortalActor, tenant: Tenant, attempted: str, *, message: str = NOT_WHILE_IMPERSONATING,
) -> None:
    """Password and factor changes, and the user's own sessions, belong to the user alone:
    refused (and audited, as every refused authorization) while a staff member impersonates them."""
    if actor.is_impersonating:
        record("impersonation.refused", tenant=tenant, user=actor.user, actor=actor,
               data={"attempted": attempted})
        raise Refused(message, code="impersonating")
