"""Roles in a tenant offered to staff, accepted by the member (issue 11, finding 6).

A tenant admin adding an address to their tenant's staff gets one answer whether or not a staff
member has that address: an offer (``TenantAdminInvite``) is made either way, and a new address
also gets a console invitation (``staff_invite(assign=False)``). Nobody is attached by someone
else: the member accepts or declines on the console's home page.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from auditlog.context import disable_auditlog
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services.staff import (
    _check_assignable,
    _require_tenant_manager,
    clean_name,
    clean_role,
    staff_invite,
)
from audit import services as audit
from core.emails import clean_email
from core.errors import Conflict, NotFound
from core.policy import policy
from core.request_context import public_url
from outbox.services import mail_enqueue
from tenants.models import Tenant, TenantAdmin, TenantAdminInvite

NO_SUCH_INVITE = "No such invitation: it was withdrawn, answered or has expired."


def _pending(qs: Any) -> Any:
    return qs.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


def _record(event: str, *, actor: User | None, invite: TenantAdminInvite, action: int = audit.UPDATE,
            **data: Any) -> None:
    audit.record(
        event=event, actor=actor, tenant=invite.tenant, target_model=User, target_pk=invite.user_id,
        target_repr=invite.user.email, action=action,
        data={"invite": str(invite.pk), "role": invite.role, **data},
    )


def tenant_admin_add(
    *, actor: User | None, tenant: Tenant, email: str, role: str, name: str = ""
) -> TenantAdminInvite:
    """Offer a role in this tenant to the staff member with this address, inviting them to the
    console first when there is none. The same result, mail and audit either way; a newer offer
    replaces a pending one. ``Conflict`` (``exists``) only for a member already on this tenant's
    staff page."""
    _require_tenant_manager(actor, tenant)
    email, role, name = clean_email(email), clean_role(role), clean_name(name)
    _check_assignable(tenant)
    now = timezone.now()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email=email).first()
        if user is None:
            user = staff_invite(actor=actor, email=email, name=name, tenant=tenant, role=role, assign=False)
        elif TenantAdmin.objects.filter(tenant=tenant, user=user).exists():
            raise Conflict(f"{user.email} already has a role in this tenant; change it below.",
                           code="exists", field="email")
        TenantAdminInvite.objects.filter(
            tenant=tenant, user=user, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        invite = TenantAdminInvite.objects.create(
            tenant=tenant, user=user, role=role, name=name, created_at=now,
            created_by=actor if getattr(actor, "pk", None) else None,
            expires_at=now + timedelta(hours=policy().invitation_hours),
        )
        inviter = actor.get_full_name() if actor is not None else "An administrator"
        mail_enqueue(
            key=f"tenant_admin_invite:{invite.pk}", to=user.email, kind="tenant_admin_invite",
            subject=f"You are invited to work on {tenant.name}", tenant=tenant,
            body=(
                f"Hello,\n\n{inviter} invited you to work on the tenant {tenant.name} as {role}.\n\n"
                f"Sign in to the Admin Console to accept or decline (the invitation stays open for "
                f"{policy().invitation_hours} hours):\n{public_url(reverse('console:home'))}\n\n"
                "If you did not expect this message, decline it or ignore it.\n"
            ),
        )
        _record("tenant_admin.invite", actor=actor, invite=invite, action=audit.CREATE)
    return invite


def tenant_invite_list(*, tenant: Tenant) -> list[TenantAdminInvite]:
    """The tenant's pending offers, for its staff page (the email and the name the inviter typed)."""
    return list(_pending(TenantAdminInvite.objects.filter(tenant=tenant)).select_related("user")
                .order_by("user__email"))


def tenant_invites_for(*, user: User) -> list[TenantAdminInvite]:
    """The offers waiting for this member (tenants that can take staff only)."""
    return list(
        _pending(TenantAdminInvite.objects.filter(user=user, tenant__status__in=Tenant.VISIBLE_STATUSES))
        .select_related("tenant", "created_by").order_by("-created_at")
    )


def _lock_own(actor: User, invite_id: uuid.UUID) -> TenantAdminInvite:
    invite = _pending(TenantAdminInvite.objects.select_for_update().filter(pk=invite_id, user=actor)).first()
    if invite is None:
        raise NotFound(NO_SUCH_INVITE, code="no_invite")
    return invite


def tenant_invite_accept(*, actor: User, invite_id: uuid.UUID) -> TenantAdmin:
    """The member takes the offered role (their own offers only; a foreign id is not found)."""
    with transaction.atomic():
        invite = _lock_own(actor, invite_id)
        _check_assignable(invite.tenant)
        now = timezone.now()
        invite.accepted_at = now
        invite.save(update_fields=["accepted_at"])
        assignment = TenantAdmin.objects.filter(tenant=invite.tenant, user=actor).first()
        if assignment is None:
            with disable_auditlog():
                assignment = TenantAdmin.objects.create(
                    user=actor, tenant=invite.tenant, role=invite.role, created_by=invite.created_by,
                )
        _record("tenant_admin.invite_accepted", actor=actor, invite=invite, action=audit.CREATE,
                assignment=assignment.pk, invited_by=str(invite.created_by_id or ""))
    return assignment


def tenant_invite_decline(*, actor: User, invite_id: uuid.UUID) -> None:
    with transaction.atomic():
        invite = _lock_own(actor, invite_id)
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
        _record("tenant_admin.invite_declined", actor=actor, invite=invite)


def tenant_invite_withdraw(*, actor: User | None, tenant: Tenant, invite_id: uuid.UUID) -> None:
    """A tenant admin takes back a pending offer of their tenant."""
    _require_tenant_manager(actor, tenant)
    with transaction.atomic():
        invite = _pending(TenantAdminInvite.objects.select_for_update()
                          .filter(pk=invite_id, tenant=tenant)).first()
        if invite is None:
            raise NotFound(NO_SUCH_INVITE, code="no_invite")
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
        _record("tenant_admin.invite_withdrawn", actor=actor, invite=invite)
