"""Impersonation: a tenant admin (or instance admin) uses the portal as one app user.

Each impersonation is an ``Impersonation`` row in the control database and an ``AppSession``
with ``impersonator_id`` in the tenant database; both end after ``policy().impersonation_minutes``.
One runs at a time per staff member (a partial unique constraint). Start, stop, end by another
admin and expiry are audited with the staff member as actor and impersonator and the app user
in ``data``; every portal action taken meanwhile is audited the same way (``common.record``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.utils import timezone

from accounts.app_users.permissions import app_user_refusal
from accounts.models import AppSession, AppUser
from audit import services as audit
from core.errors import Conflict, Invalid, NotFound, Refused
from core.policy import policy
from core.text import REASON_MAX_LENGTH, clean_text
from portal.models import Impersonation
from portal.services.sessions import session_create
from tenants import db as tenant_db
from tenants.access import can
from tenants.config import tenant_settings
from tenants.models import Tenant

REASON_MIN, REASON_MAX = 3, REASON_MAX_LENGTH


def _audit(event: str, *, actor, imp: Impersonation, tenant: Tenant, data: dict | None = None) -> None:
    audit.record(
        event=event,
        actor=actor,
        impersonator=imp.staff,
        tenant=tenant,
        target_model=AppUser,
        target_pk=imp.app_user_id,
        target_repr=imp.app_user_email,
        action=audit.ACCESS,
        data={
            "app_user": str(imp.app_user_id),
            "impersonation": str(imp.pk),
            "staff": str(imp.staff_id),
            **(data or {}),
        },
    )


def _close(imp: Impersonation, *, reason: str, ended_by, at=None) -> bool:
    """Mark one impersonation ended (once: a conditional UPDATE) and revoke its session."""
    now = at or timezone.now()
    won = Impersonation.objects.filter(pk=imp.pk, ended_at__isnull=True).update(
        ended_at=now, end_reason=reason, ended_by=ended_by
    )
    if not won:
        return False
    imp.ended_at, imp.end_reason, imp.ended_by = now, reason, ended_by
    if imp.session_id and imp.tenant.is_usable:
        AppSession.objects.using(tenant_db.using(imp.tenant)).filter(
            pk=imp.session_id, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
    return True


def impersonations_expire(*, tenant: Tenant | None = None, staff=None) -> int:
    """Close the impersonations whose time ran out (audited as ``impersonation.expire``).

    Expiry takes effect at ``expires_at`` whatever happens here (the session row expires too);
    this only writes it down. Called by the console list, by a new start, and by the portal.
    """
    qs = Impersonation.objects.filter(ended_at__isnull=True, expires_at__lte=timezone.now())
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    if staff is not None:
        qs = qs.filter(staff=staff)
    closed = 0
    for imp in qs.select_related("tenant", "staff")[:500]:
        if _close(imp, reason=Impersonation.EndReason.EXPIRED, ended_by=None, at=imp.expires_at):
            _audit("impersonation.expire", actor=None, imp=imp, tenant=imp.tenant)
            closed += 1
    return closed


def _clean_reason(value: str) -> str:
    """Why the staff member impersonates: one line (runs of spaces collapsed), 3 to 500
    characters, the text rule of ``core.text``."""
    reason = " ".join(str(value or "").split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise Invalid(f"Give a reason ({REASON_MIN} to {REASON_MAX} characters).",
                      code="too_short" if len(reason) < REASON_MIN else "too_long", field="reason")
    return clean_text(reason, label="The reason", max_length=REASON_MAX, field="reason")


def impersonation_start(
    *, actor, tenant: Tenant, app_user_id: uuid.UUID, reason: str,
    ip_address: str | None = None, user_agent: str = "",
) -> tuple[Impersonation, str]:
    """Start impersonating an app user. Returns the row and the portal session's cookie value.

    ``Refused`` when the actor may not impersonate (role), or not this user (protected role, own
    email); ``Invalid`` for a missing reason; ``NotFound`` for an unknown user; ``Conflict``
    for banned, deleted or unconfirmed users, a tenant that does not accept app users, and a
    second impersonation by the same staff member while one runs. The caller checks the
    recent-OTP step-up and CSRF (a POST-only view).
    """
    if not can(actor, tenant, "impersonate"):
        raise Refused("Only tenant admins and instance admins can impersonate.", code="role")
    reason = _clean_reason(reason)
    if not tenant.accepts_app_users:
        raise Conflict("The tenant is suspended: its portal is closed.", code="tenant_closed")
    alias = tenant_db.using(tenant)
    user = AppUser.objects.using(alias).filter(pk=app_user_id).first()
    if user is None:
        raise NotFound("No such user.")
    refusal = app_user_refusal(
        actor, tenant, "impersonate", target_role=user.role, target_email=user.email,
        protected_roles=frozenset(tenant_settings(tenant).protected_roles), target_pk=user.pk,
    )
    if refusal is not None:
        raise refusal
    if user.deleted_at is not None:
        raise Conflict("Deleted users cannot be impersonated.", code="deleted")
    if user.is_banned:
        raise Conflict("Banned users cannot be impersonated.", code="banned")
    if user.email_confirmed_at is None:
        raise Conflict(
            "This user has not confirmed their email address yet: the portal would refuse them.",
            code="unconfirmed",
        )
    impersonations_expire(staff=actor)
    running = Impersonation.objects.filter(staff=actor, ended_at__isnull=True).first()
    if running is not None:
        raise Conflict(
            f"You are already impersonating {running.app_user_email}. Stop that first.",
            code="already_running",
        )
    now = timezone.now()
    lifetime = timedelta(minutes=policy().impersonation_minutes)
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS), transaction.atomic(using=alias):
            imp = Impersonation.objects.create(
                tenant=tenant, staff=actor, app_user_id=user.pk, app_user_email=user.email,
                reason=reason, started_at=now, expires_at=now + lifetime,
            )
            session, raw = session_create(
                tenant=tenant, user=user, impersonator_id=actor.pk, lifetime=lifetime,
                ip_address=ip_address, user_agent=user_agent,
            )
            imp.session_id = session.pk
            imp.save(update_fields=["session_id"])
    except IntegrityError as exc:  # a concurrent start by the same staff member won
        raise Conflict("You are already impersonating someone. Stop that first.",
                       code="already_running") from exc
    _audit("impersonation.start", actor=actor, imp=imp, tenant=tenant,
           data={"reason": reason, "expires_at": imp.expires_at, "session": str(session.pk)})
    return imp, raw


def impersonation_stop(*, impersonation_id: uuid.UUID, tenant: Tenant) -> Impersonation | None:
    """The impersonator pressed Stop in the portal (their portal session is the proof)."""
    imp = (
        Impersonation.objects.select_related("tenant", "staff")
        .filter(pk=impersonation_id, tenant=tenant).first()
    )
    if imp is None:
        return None
    if _close(imp, reason=Impersonation.EndReason.STOPPED, ended_by=imp.staff):
        _audit("impersonation.stop", actor=imp.staff, imp=imp, tenant=tenant)
    return imp


def impersonation_end(*, actor, tenant: Tenant, impersonation_id: uuid.UUID) -> Impersonation:
    """An admin of the tenant ends a running impersonation (their own or another admin's)."""
    if not can(actor, tenant, "impersonate"):
        raise Refused("Only tenant admins and instance admins can end impersonations.", code="role")
    imp = (
        Impersonation.objects.select_related("tenant", "staff")
        .filter(pk=impersonation_id, tenant=tenant).first()
    )
    if imp is None:
        raise NotFound("No such impersonation.")
    if imp.ended_at is None and imp.expires_at <= timezone.now():
        impersonations_expire(tenant=tenant)
        imp.refresh_from_db()
        return imp
    if _close(imp, reason=Impersonation.EndReason.ENDED_BY_ADMIN, ended_by=actor):
        _audit("impersonation.end", actor=actor, imp=imp, tenant=tenant)
    return imp


def impersonation_session_gone(*, tenant: Tenant, session_id: uuid.UUID) -> None:
    """The portal found an impersonation session revoked or expired: write down how it ended."""
    imp = (
        Impersonation.objects.select_related("tenant", "staff")
        .filter(tenant=tenant, session_id=session_id, ended_at__isnull=True).first()
    )
    if imp is None:
        return
    if imp.expires_at <= timezone.now():
        impersonations_expire(tenant=tenant)
    elif _close(imp, reason=Impersonation.EndReason.SESSION_ENDED, ended_by=None):
        _audit("impersonation.session_ended", actor=None, imp=imp, tenant=tenant)


def impersonation_revoke_session(*, tenant: Tenant, session: AppSession) -> None:
    """The impersonator was deactivated or lost the admin role: end the session and the record."""
    AppSession.objects.using(tenant_db.using(tenant)).filter(pk=session.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    session.revoked_at = timezone.now()
    impersonation_session_gone(tenant=tenant, session_id=session.pk)
