"""The one permission matrix: which tenant role may do what.

Instance admins (``User.is_superuser``) may do everything in every tenant. Inside a tenant:
``admin`` everything, ``support`` reads and the gentle actions (invite, resend, recovery and magic
links, sign-out), ``viewer`` reads only. Views gate coarsely with these predicates; services check
them again, together with the target rules (protected roles, self-action) in ``can_act_on_app_user``.
"""

from __future__ import annotations

from typing import Any

from tenants.models import Tenant, TenantAdmin

ROLES = ("admin", "support", "viewer")
READ = frozenset({"admin", "support", "viewer"})
SUPPORT = frozenset({"admin", "support"})
ADMIN = frozenset({"admin"})

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
}


def role_can(role: str | None, action: str) -> bool:
    """True when a tenant role allows the action. Unknown actions are refused (default deny)."""
    if action not in MATRIX:
        raise KeyError(f"Unknown action {action!r}: add it to adminpanel.permissions.MATRIX.")
    return role is not None and role in MATRIX[action]


def is_instance_admin(actor: Any) -> bool:
    return bool(actor is not None and actor.is_authenticated and actor.is_active and actor.is_superuser)


def actor_role(actor: Any, tenant: Tenant) -> str | None:
    """The actor's effective role in the tenant: ``admin`` for instance admins, else the
    assignment's role, else ``None`` (not assigned: the tenant must look like it does not exist)."""
    if actor is None or not actor.is_authenticated or not actor.is_active:
        return None
    if actor.is_superuser:
        return "admin"
    cached = getattr(actor, "_tenant_roles", None)
    if cached is None:
        cached = actor._tenant_roles = {}
    if tenant.pk not in cached:
        cached[tenant.pk] = (
            TenantAdmin.objects.filter(user=actor, tenant=tenant).values_list("role", flat=True).first()
        )
    return cached[tenant.pk]


def can(actor: Any, tenant: Tenant, action: str) -> bool:
    """Whether ``actor`` may perform ``action`` in ``tenant`` (role only; no target rules)."""
    return role_can(actor_role(actor, tenant), action)


def can_act_on_app_user(
    actor: Any, tenant: Tenant, action: str, *, target_role: str, target_email: str,
    protected_roles: frozenset[str] | set[str] | tuple[str, ...],
) -> str | None:
    """Target rules for actions on one app user. Returns ``None`` when allowed, else the reason.

    - the role must allow the action;
    - nobody acts on the app user that carries their own email (self-action prevention);
    - users whose role is protected are changed only by a tenant ``admin`` or an instance admin.
    """
    role = actor_role(actor, tenant)
    if not role_can(role, action):
        return "Your role does not allow this action."
    if actor is not None and target_email and target_email.lower() == (actor.email or "").lower():
        return "You cannot act on the app user that carries your own email address."
    if target_role in protected_roles and role != "admin":
        return f"Users with the protected role '{target_role}' can only be changed by a tenant admin."
    return None


# Named predicates (STYLE.md): thin, so the matrix stays the one source of truth.
def can_view_users(actor: Any, tenant: Tenant) -> bool:
    """Every assigned role can read the users list."""
    return can(actor, tenant, "view_users")


def can_ban_user(actor: Any, tenant: Tenant) -> bool:
    """Only tenant admins (and instance admins) ban and unban."""
    return can(actor, tenant, "ban_user")


def can_delete_user(actor: Any, tenant: Tenant) -> bool:
    """Only tenant admins (and instance admins) delete app users."""
    return can(actor, tenant, "delete_user")


def can_manage_tenant_admins(actor: Any, tenant: Tenant) -> bool:
    """Only tenant admins (and instance admins) assign staff to the tenant."""
    return can(actor, tenant, "manage_tenant_admins")
