"""The one access matrix: which tenant role may do what.

Instance admins (``User.is_superuser``) may do everything in every tenant. Inside a tenant:
``admin`` everything, ``support`` reads and the gentle actions (invite, resend, recovery and magic
links, sign-out), ``viewer`` reads only. Front doors gate coarsely with ``role_can``; services check
again, with the target rules (protected roles, self-action) of ``accounts.app_users.permissions``.

Pure: no database. ``tenants.access.actor_role`` finds an actor's role in a tenant.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db import models


class TenantRole(models.TextChoices):
    """A staff member's role in one tenant (``TenantAdmin.role``)."""

    ADMIN = "admin", "Admin"
    SUPPORT = "support", "Support"
    VIEWER = "viewer", "Viewer"


ROLES: tuple[str, ...] = tuple(TenantRole.values)
READ = frozenset(ROLES)
SUPPORT = frozenset({TenantRole.ADMIN, TenantRole.SUPPORT})
ADMIN = frozenset({TenantRole.ADMIN})

MATRIX: dict[str, frozenset[str]] = {
    # Reading
    "view_tenant": READ,
    "view_users": READ,
    "view_invitations": READ,
    "view_dashboard": READ,
    "export_users": SUPPORT,
    "view_audit": ADMIN,
    # Gentle actions
    "invite_user": SUPPORT,
    "resend_invitation": SUPPORT,
    "revoke_invitation": SUPPORT,
    "import_users": SUPPORT,
    "send_recovery": SUPPORT,
    "send_magic_link": SUPPORT,
    "sign_out_user": SUPPORT,
    # Admin only
    "create_user": ADMIN,
    "edit_user": ADMIN,
    "change_role": ADMIN,
    "confirm_email": ADMIN,
    "ban_user": ADMIN,
    "unban_user": ADMIN,
    "remove_factor": ADMIN,
    "delete_user": ADMIN,
    "impersonate": ADMIN,
    "manage_tenant_admins": ADMIN,
    "manage_settings": ADMIN,
    # The admin API (issue 12): a generated link is a live sign-in (impersonation-level power)
    "generate_link": ADMIN,
    "manage_api_keys": ADMIN,
    "manage_webhooks": ADMIN,
}


def role_can(role: str | None, action: str) -> bool:
    """True when a tenant role allows the action. Unknown actions are refused (default deny)."""
    if action not in MATRIX:
        raise KeyError(f"Unknown action {action!r}: add it to core.access.MATRIX.")
    return role is not None and role in MATRIX[action]


def permissions_of(role: str | None) -> dict[str, bool]:
    """Every action of the matrix with whether ``role`` may do it (for templates)."""
    return {action: role_can(role, action) for action in MATRIX}


class Actor(Protocol):
    """What the layers below ``accounts`` know of a staff actor (``accounts.models.User``)."""

    @property
    def pk(self) -> Any: ...

    @property
    def is_active(self) -> bool: ...

    @property
    def is_superuser(self) -> bool: ...


def is_instance_admin(actor: Any) -> bool:
    """An active, signed-in staff member with ``is_superuser``: every tenant, every instance page."""
    return bool(
        actor is not None and getattr(actor, "is_authenticated", False) and actor.is_active
        and actor.is_superuser
    )
