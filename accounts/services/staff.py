"""Staff (console users): first-run setup, invitations, roles, deactivation, second factor.

Every function is keyword-only with the actor first, runs in one transaction on the control
database, checks its own permission, refuses with the error family of ``core.errors``
(``Refused``, ``Invalid``, ``Conflict``, ``NotFound``, each with a stable ``code`` and a message
meant for the person at the screen), and writes one audit entry per change (automatic auditlog
entries are switched off around the saves, so the trail holds exactly one entry with the
before/after diff).

Rules: nobody deactivates, demotes or removes themselves; the last active instance admin cannot
lose that status; a tenant's last ``admin`` cannot be removed or demoted.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

from auditlog.context import disable_auditlog
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import otp
from accounts.models import SetupLock, StaffInvitation, User
from audit import services as audit
from core.access import ROLES, is_instance_admin
from core.emails import EMAIL_MAX_LENGTH, clean_email
from core.errors import Conflict, Invalid, NotFound, Refused, ServiceError
from core.policy import policy
from core.request_context import public_url
from core.text import NAME_MAX_LENGTH, clean_text
from core.time_zones import valid as valid_time_zone
from outbox.services import mail_enqueue
from tenants.access import can
from tenants.models import Tenant, TenantAdmin

# Sent (inside the change's transaction) when a member's API credentials must die: their second
# factor was reset or they were deactivated. ``credentials`` revokes their personal tokens.
staff_credentials_reset = Signal()  # kwargs: user, reason

log = logging.getLogger(__name__)

USER_FIELDS = ("email", "name", "is_active", "is_superuser")
EXISTS = "A staff member with this email address already exists."
INVALID_LINK = "This invitation link is no longer valid. Ask for a new one."
LAST_TENANT_ADMIN = "A tenant keeps at least one admin: this is the last one."


# --- Validation helpers (the forms validate too; services never trust their callers) -----


def clean_name(value: object) -> str:
    """A person's name under the one text rule (``core.text``), runs of spaces collapsed."""
    return clean_text(value, label="A name", max_length=NAME_MAX_LENGTH, field="name",
                      collapse_spaces=True)


def clean_role(value: object) -> str:
    if value not in ROLES:
        raise Invalid("Choose a role: admin, support or viewer.", code="invalid_role", field="role")
    return str(value)


def _check_password(password: str, *, user: User) -> None:
    """Django's password validators, their refusal in the family (field ``password``)."""
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        messages = [str(m) for m in exc.messages]
        raise Invalid(" ".join(messages), code="weak_password", field="password",
                      fields={"password": messages}) from None


def _require_instance_admin(actor: User | None) -> None:
    if not is_instance_admin(actor):
        raise Refused("Only instance admins manage staff.", code="forbidden")


def _require_tenant_manager(actor: User | None, tenant: Tenant) -> None:
    if not can(actor, tenant, "manage_tenant_admins"):
        raise Refused("Only the tenant's admins manage its staff.", code="forbidden")


def _save_user(user: User, *fields: str) -> None:
    with disable_auditlog():
        user.save(update_fields=[*fields, "updated_at"])


def _record_user(event: str, *, actor: User | None, user: User,
                 before: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                 action: int = audit.UPDATE, tenant: Tenant | None = None) -> None:
    audit.record(
        event=event, actor=actor, tenant=tenant, action=action,
        target_model=User, target_pk=user.pk, target_repr=user.email,
        before=before, after=audit.snapshot(user, USER_FIELDS) if before is not None else None,
        data=data,
    )


# --- First-run setup -------------------------------------------------------------------------


def setup_first_admin(*, actor: None, email: str, name: str, password: str) -> User:
    """Create the first instance admin, then make sure the default tenant exists.

    ``actor`` is always ``None`` (nobody is signed in yet). Of two concurrent calls exactly one
    wins: both insert the single ``SetupLock`` row, and the database refuses the second.
    Raises ``Conflict`` (code ``already_done``) once any staff user exists.
    """
    email = clean_email(email)
    name = clean_name(name)
    _check_password(password, user=User(email=email, name=name))
    done = Conflict("Setup is done already: a staff user exists.", code="already_done")
    try:
        with transaction.atomic():
            if User.objects.exists():
                raise done
            SetupLock.objects.create(id=1)
            with disable_auditlog():
                user = User.objects.create_superuser(email, password, name=name)
            _record_user("staff.setup", actor=None, user=user, before={}, action=audit.CREATE,
                         data={"instance_admin": True})
    except IntegrityError:
        raise done from None
    from tenants.services import tenant_ensure_default

    try:
        tenant_ensure_default(actor=user)
    except ServiceError:
        # The admin exists either way; `manage.py tenants retry default` finishes the tenant.
        log.exception("First-run setup: the default tenant could not be created")
    return user


# --- Invitations -----------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue_invitation(*, actor: User | None, user: User, tenant: Tenant | None = None) -> StaffInvitation:
    """Revoke the user's pending invitations, issue a new one and queue its mail."""
    now = timezone.now()
    StaffInvitation.objects.filter(user=user, used_at=None, revoked_at=None).update(revoked_at=now)
    token = secrets.token_urlsafe(policy().token_bytes)
    invitation = StaffInvitation.objects.create(
        user=user, token_hash=_token_hash(token), created_by=actor if getattr(actor, "pk", None) else None,
        expires_at=now + timedelta(hours=policy().invitation_hours),
    )
    link = public_url(reverse("console:staff-accept", args=[token]))
    inviter = actor.get_full_name() if actor is not None else "An administrator"
    where = f" to work on the tenant {tenant.name}" if tenant is not None else ""
    body = (
        f"Hello {user.name or user.email},\n\n"
        f"{inviter} invited you to the Admin Console{where}.\n\n"
        f"Choose your password here (the link works once, for {policy().invitation_hours} hours):\n"
        f"{link}\n\n"
        "After that you sign in with your email and password, and set up an authenticator app "
        "for the second step.\n\n"
        "If you did not expect this message, ignore it.\n"
    )
    mail_enqueue(
        key=f"staff_invite:{invitation.pk}", to=user.email, kind="staff_invite",
        subject="You are invited to the Admin Console", body=body, tenant=tenant,
    )
    return invitation


def staff_invite(
    *, actor: User | None, email: str, name: str = "", is_superuser: bool = False,
    tenant: Tenant | None = None, role: str | None = None, assign: bool = True,
) -> User:
    """Create a staff member who sets their password through an emailed link (single use,
    expires after ``policy().invitation_hours``), optionally with a role in one tenant.

    One transaction: the member, their role in the tenant, the invitation and its mail exist
    together or not at all. Instance admins invite anyone; a tenant admin invites into their
    own tenant only, never an instance admin. ``assign=False``: the role is only offered
    (``tenant_invites.tenant_admin_add``), the member accepts it after signing in.
    """
    if tenant is None:
        _require_instance_admin(actor)
    else:
        _require_tenant_manager(actor, tenant)
        if is_superuser:
            _require_instance_admin(actor)
    if is_superuser and not is_instance_admin(actor):
        raise Refused("Only instance admins grant instance admin.", code="forbidden")
    tenant_role = None
    if tenant is not None:
        tenant_role = clean_role(role)
        _check_assignable(tenant)
    email = clean_email(email)
    name = clean_name(name)
    with transaction.atomic():
        if User.objects.filter(email=email).exists():
            raise Conflict(EXISTS, code="exists", field="email")
        try:
            with transaction.atomic(), disable_auditlog():
                user = User.objects.create_user(email, None, name=name, is_superuser=is_superuser)
        except IntegrityError:
            raise Conflict(EXISTS, code="exists", field="email") from None
        # An offered role (assign=False) is the tenant's story, told by tenant_admin.invite; the
        # new account is the instance's: the tenant's trail must not tell new from existing staff.
        _record_user("staff.invite", actor=actor, user=user, before={}, action=audit.CREATE,
                     tenant=tenant if assign else None,
                     data={"role": tenant_role} if tenant is not None else None)
        if tenant is not None and tenant_role is not None and assign:
            _assign(actor=actor, tenant=tenant, user=user, role=tenant_role)
        _issue_invitation(actor=actor, user=user, tenant=tenant)
    return user


def staff_invitation_resend(*, actor: User | None, user: User) -> StaffInvitation:
    """A fresh link for a member who has not set a password yet (the old links stop working)."""
    _require_instance_admin(actor)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.has_usable_password():
            raise Conflict("This member has already accepted the invitation.", code="already_done")
        if not user.is_active:
            raise Conflict("Reactivate this member before sending a new invitation.",
                           code="inactive")
        invitation = _issue_invitation(actor=actor, user=user)
        _record_user("staff.invite_resend", actor=actor, user=user)
    return invitation


def staff_invitation_get(*, token: str) -> StaffInvitation | None:
    """The pending invitation a link points at, or ``None`` (unknown, used, revoked, expired)."""
    if not token or len(token) > 200:
        return None
    invitation = (
        StaffInvitation.objects.select_related("user").filter(token_hash=_token_hash(token)).first()
    )
    if invitation is None or not invitation.is_pending or not invitation.user.is_active:
        return None
    return invitation


def staff_invitation_accept(*, token: str, password: str) -> User:
    """Set the invited member's password. The link works once, even under concurrent use."""
    with transaction.atomic():
        invitation = (
            StaffInvitation.objects.select_for_update()
            .filter(token_hash=_token_hash(token or "")).first()
        )
        if invitation is None or not invitation.is_pending:
            raise Conflict(INVALID_LINK, code="invalid_link")
        user = User.objects.select_for_update().get(pk=invitation.user_id)
        if not user.is_active:
            raise Conflict(INVALID_LINK, code="invalid_link")
        _check_password(password, user=user)
        user.set_password(password)
        _save_user(user, "password")
        invitation.used_at = timezone.now()
        invitation.save(update_fields=["used_at"])
        _record_user("staff.invite_accept", actor=user, user=user)
    return user


# --- Staff status and instance admin ------------------------------------------------------


def _lock_active_instance_admins() -> list[uuid.UUID]:
    return list(
        User.objects.select_for_update().filter(is_superuser=True, is_active=True)
        .values_list("pk", flat=True)
    )


def _refuse_self(actor: User | None, user: User, what: str) -> None:
    if actor is not None and actor.pk == user.pk:
        raise Refused(f"You cannot {what} yourself. Ask another instance admin.",
                      code="self_action")


def staff_deactivate(*, actor: User | None, user: User) -> User:
    """Switch a member off: sign-in refused, existing sessions end at their next request."""
    _require_instance_admin(actor)
    _refuse_self(actor, user, "deactivate")
    with transaction.atomic():
        admins = _lock_active_instance_admins()
        user = User.objects.select_for_update().get(pk=user.pk)
        if not user.is_active:
            return user
        if user.is_superuser and admins == [user.pk]:
            raise Refused("The last active instance admin cannot be deactivated.",
                          code="last_admin")
        orphaned = [
            a.tenant.slug
            for a in TenantAdmin.objects.select_related("tenant")
            .filter(user=user, role=TenantAdmin.Role.ADMIN)
            if _lock_tenant_admins(a.tenant) == [user.pk]
        ]
        if orphaned:
            raise Refused(
                f"{user.email} is the last active admin of {', '.join(sorted(orphaned))}: "
                "make someone else admin there first.",
                code="last_admin", tenants=sorted(orphaned),
            )
        before = audit.snapshot(user, USER_FIELDS)
        user.is_active = False
        _save_user(user, "is_active")
        StaffInvitation.objects.filter(user=user, used_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        _record_user("staff.deactivate", actor=actor, user=user, before=before)
        staff_credentials_reset.send(sender=User, user=user, reason="deactivated")
    return user


def staff_reactivate(*, actor: User | None, user: User) -> User:
    _require_instance_admin(actor)
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_active:
            return user
        before = audit.snapshot(user, USER_FIELDS)
        user.is_active = True
        _save_user(user, "is_active")
        _record_user("staff.reactivate", actor=actor, user=user, before=before)
    return user


def staff_time_zone_set(*, actor: User, time_zone: str) -> User:
    """A staff member's own time zone for every time the console shows ("" = the browser's)."""
    time_zone = (time_zone or "").strip()
    if time_zone and not valid_time_zone(time_zone):
        raise Invalid("Choose a time zone from the list.", code="time_zone", field="time_zone")
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=actor.pk)
        if user.time_zone == time_zone:
            return user
        previous, user.time_zone = user.time_zone, time_zone
        _save_user(user, "time_zone")
        _record_user("staff.time_zone", actor=actor, user=user, data={"from": previous, "to": time_zone})
    return user


USER_COLUMNS = {"name": "Name", "role": "Role", "status": "Status", "mfa": "MFA", "signin": "Last sign-in",
                "created": "Created"}


def staff_user_columns_set(*, actor: User, shown: list[str]) -> User:
    """Which optional columns of the users list this staff member sees (the email always shows)."""
    hidden = ",".join(c for c in USER_COLUMNS if c not in set(shown))
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=actor.pk)
        if user.hidden_user_columns == hidden:
            return user
        previous, user.hidden_user_columns = user.hidden_user_columns, hidden
        _save_user(user, "hidden_user_columns")
        _record_user("staff.user_columns", actor=actor, user=user, data={"from": previous, "to": hidden})
    return user


def staff_set_instance_admin(*, actor: User | None, user: User, value: bool) -> User:
    """Grant or revoke instance admin. Nobody revokes their own; the last one stays."""
    _require_instance_admin(actor)
    if not value:
        _refuse_self(actor, user, "revoke instance admin from")
    with transaction.atomic():
        admins = _lock_active_instance_admins()
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_superuser == value:
            return user
        if not value and admins == [user.pk]:
            raise Refused("The last active instance admin cannot be demoted.",
                          code="last_admin")
        before = audit.snapshot(user, USER_FIELDS)
        user.is_superuser = value
        _save_user(user, "is_superuser")
        _record_user("staff.grant_admin" if value else "staff.revoke_admin", actor=actor,
                     user=user, before=before)
    return user


def staff_otp_reset(*, actor: User | None, user: User) -> int:
    """Remove a member's authenticator and backup codes: they enrol again at next sign-in, and
    any session they have ends (it was verified with a device that no longer exists)."""
    _require_instance_admin(actor)
    _refuse_self(actor, user, "reset the second factor of")
    with transaction.atomic():
        removed = otp.devices_delete(user)
        _record_user("staff.otp_reset", actor=actor, user=user, data={"devices_removed": removed})
        staff_credentials_reset.send(sender=User, user=user, reason="otp_reset")
    return removed


# --- Tenant roles ----------------------------------------------------------------------------


def _assign(*, actor: User | None, tenant: Tenant, user: User, role: str) -> TenantAdmin:
    with disable_auditlog():
        assignment = TenantAdmin.objects.create(
            user=user, tenant=tenant, role=role, created_by=actor if getattr(actor, "pk", None) else None
        )
    audit.record(
        event="tenant_admin.assign", actor=actor, tenant=tenant, target_model=User,
        target_pk=user.pk, target_repr=user.email, action=audit.CREATE, before={}, after={"role": role},
        data={"assignment": assignment.pk},
    )
    return assignment


def _lock_tenant_admins(tenant: Tenant) -> list[uuid.UUID]:
    """The tenant's working admins (deactivated members do not count), rows locked."""
    return list(
        TenantAdmin.objects.select_for_update()
        .filter(tenant=tenant, role=TenantAdmin.Role.ADMIN, user__is_active=True)
        .values_list("user_id", flat=True)
    )


def _check_assignable(tenant: Tenant) -> None:
    if tenant.status not in Tenant.VISIBLE_STATUSES:
        raise Conflict(f"Tenant {tenant.slug} is {tenant.status}; staff cannot be assigned.",
                       code="not_assignable")


def tenant_admin_assign(*, actor: User | None, tenant: Tenant, user: User, role: str) -> TenantAdmin:
    """Give a staff member a role in a tenant (or change the role they have there). Attaching
    somebody directly is for instance admins: a tenant admin offers the role instead
    (``tenant_invites.tenant_admin_add``), and the member accepts it."""
    _require_tenant_manager(actor, tenant)
    role = clean_role(role)
    _check_assignable(tenant)
    existing = TenantAdmin.objects.filter(tenant=tenant, user=user).first()
    if existing is not None:
        return tenant_admin_change_role(actor=actor, tenant=tenant, user=user, role=role)
    if not is_instance_admin(actor):
        raise Refused("Invite this staff member from the tenant's staff page: they get the role "
                      "when they accept it.", code="invite_instead")
    try:
        with transaction.atomic():
            # The row, locked: a deactivation that just happened is seen (whatever the caller holds).
            user = User.objects.select_for_update().get(pk=user.pk)
            if not user.is_active:
                raise Conflict("This staff member is deactivated.", code="inactive")
            return _assign(actor=actor, tenant=tenant, user=user, role=role)
    except IntegrityError:
        return tenant_admin_change_role(actor=actor, tenant=tenant, user=user, role=role)


def tenant_admin_change_role(
    *, actor: User | None, tenant: Tenant, user: User, role: str
) -> TenantAdmin:
    _require_tenant_manager(actor, tenant)
    role = clean_role(role)
    with transaction.atomic():
        admins = _lock_tenant_admins(tenant)
        assignment = TenantAdmin.objects.select_for_update().filter(tenant=tenant, user=user).first()
        if assignment is None:
            raise NotFound("This staff member has no role in this tenant.", code="not_assigned")
        if assignment.role == role:
            return assignment
        _refuse_self(actor, user, "change the role of")
        if assignment.role == TenantAdmin.Role.ADMIN and admins == [user.pk]:
            raise Refused(LAST_TENANT_ADMIN, code="last_admin")
        old = assignment.role
        assignment.role = role
        with disable_auditlog():
            assignment.save(update_fields=["role"])
        audit.record(
            event="tenant_admin.role_change", actor=actor, tenant=tenant, target_model=User,
            target_pk=user.pk, target_repr=user.email, before={"role": old}, after={"role": role},
            data={"assignment": assignment.pk},
        )
    return assignment


def tenant_admin_remove(*, actor: User | None, tenant: Tenant, user: User) -> None:
    _require_tenant_manager(actor, tenant)
    _refuse_self(actor, user, "remove")
    with transaction.atomic():
        admins = _lock_tenant_admins(tenant)
        assignment = TenantAdmin.objects.select_for_update().filter(tenant=tenant, user=user).first()
        if assignment is None:
            return
        if assignment.role == TenantAdmin.Role.ADMIN and admins == [user.pk]:
            raise Refused(LAST_TENANT_ADMIN, code="last_admin")
        pk, old = assignment.pk, assignment.role
        with disable_auditlog():
            assignment.delete()
        audit.record(
            event="tenant_admin.remove", actor=actor, tenant=tenant, target_model=User,
            target_pk=user.pk, target_repr=user.email, action=audit.DELETE, before={"role": old}, after={},
            data={"assignment": pk},
        )


# --- The member's own account ------------------------------------------------------------


def staff_password_change(*, actor: User, current_password: str, new_password: str) -> User:
    if not actor.check_password(current_password or ""):
        raise Invalid("Your current password is not correct.", code="wrong_password",
                      field="current_password")
    _check_password(new_password, user=actor)
    with transaction.atomic():
        actor.set_password(new_password)
        _save_user(actor, "password")
        _record_user("staff.password_change", actor=actor, user=actor)
    return actor


def staff_totp_enrol(
    *, actor: User, secret: otp.PendingSecret, code: str
) -> tuple[TOTPDevice, list[str]]:
    """First enrolment: confirm the new secret with a code; returns (device, backup codes)."""
    if otp.has_totp(actor):
        raise Conflict("An authenticator is already set up for this account.",
                       code="already_done")
    accepted = secret.match(otp.normalize_code(code))
    if accepted is None:
        raise Invalid("That code is not valid. Check the time on your phone and enter "
                      "the current code.", code="bad_code", field="code")
    with transaction.atomic():
        device = otp.totp_device_create(actor, secret, accepted_t=accepted)
        codes = otp.backup_codes_generate(actor)
        _record_user("staff.otp_enrol", actor=actor, user=actor,
                     data={"backup_codes": len(codes)})
    return device, codes


def staff_totp_replace(*, actor: User, current_code: str, secret: otp.PendingSecret,
                       new_code: str) -> TOTPDevice:
    """Replace the authenticator: a current code (or a backup code) proves the old one."""
    accepted = secret.match(otp.normalize_code(new_code))
    with transaction.atomic():
        check = otp.verify(actor, current_code)
        if not check.ok:
            raise Invalid("The code from your current authenticator is not valid.",
                          code="bad_current_code", field="current_code")
        if accepted is None:
            raise Invalid("The code from the new authenticator is not valid.",
                          code="bad_code", field="new_code")
        device = otp.totp_device_create(actor, secret, accepted_t=accepted)
        _record_user("staff.otp_replace", actor=actor, user=actor,
                     data={"proved_with": check.method})
    return device


def staff_backup_codes_regenerate(*, actor: User) -> list[str]:
    with transaction.atomic():
        codes = otp.backup_codes_generate(actor)
        _record_user("staff.backup_codes_regenerate", actor=actor, user=actor,
                     data={"backup_codes": len(codes)})
    return codes


# --- Authentication events (intent, not row diffs) ----------------------------------------


def staff_auth_event(*, event: str, actor: User | None, user: User | None, email: str = "",
                     data: dict[str, Any] | None = None) -> None:
    """Record a sign-in event: ``staff.login``, ``staff.login_failed``, ``staff.lockout``,
    ``staff.otp_verified``, ``staff.otp_failed``, ``staff.otp_throttled``, ``staff.backup_code_used``,
    ``staff.logout``,
    ``staff.session_expired``. ``actor`` is ``None`` while nobody has proved who they are."""
    audit.record(
        event=event, actor=actor, tenant=None,
        target_model=User, target_pk=user.pk if user is not None else "",
        target_repr=user.email if user is not None else (email or "")[:EMAIL_MAX_LENGTH],
        action=audit.ACCESS, data=data,
    )
