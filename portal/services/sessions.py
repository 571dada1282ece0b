"""Portal sessions: ``AppSession`` rows in the tenant database, checked on every request.

The browser holds a random token (an HttpOnly cookie scoped to ``/p/<slug>/``); the database
holds only its SHA-256. A session is refused on the very next request once it is revoked or
expired, once its user is banned, deleted or unconfirmed, or once the tenant stops accepting
app users. Ending sessions follows GoTrue's sign-out scopes: ``local`` (this one), ``others``
(every other one) and ``global`` (all of them).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from accounts.models import AppSession, AppUser
from accounts.tokens import hash_token
from core.errors import Invalid, Refused
from core.policy import policy
from portal.services.common import PortalActor, record, refuse_while_impersonating, user_refusal
from tenants import db as tenant_db
from tenants.models import Tenant

COOKIE_NAME = "portal_session"
# Sessions of app users: a week at most, and a day without any request ends them (policy).
SESSION_LIFETIME = timedelta(days=policy().portal_session_days)
SESSION_IDLE = timedelta(hours=policy().portal_session_idle_hours)
# last_seen_at is written at most once a minute per session, not on every request.
TOUCH_EVERY = timedelta(seconds=60)
SCOPES = ("local", "others", "global")


# Why a cookie does not open a session: the ``code`` of the ``Refused`` (the sign-in page shows
# its own fixed message for it, from ``?reason=``).
SESSION_REFUSALS = {
    "none": "You are not signed in.",
    "revoked": "You have been signed out. Sign in again.",
    "expired": "Your session has expired. Sign in again.",
    "impersonation_ended": "The impersonation has ended.",
    "deleted": "This account has been deleted.",
    "banned": "This account is banned.",
    "unconfirmed": "This account's email address is not confirmed yet.",
}


def _refused(code: str, session: AppSession | None = None) -> Refused:
    """The refusal of a session; its facts carry the session's id and whether an impersonator
    held it (the gate then writes down how the impersonation ended)."""
    return Refused(
        SESSION_REFUSALS[code], code=code, session_id=session.pk if session is not None else None,
        impersonated=bool(session is not None and session.impersonator_id),
    )


@dataclass(frozen=True)
class ValidSession:
    session: AppSession
    user: AppUser


def cookie_path(tenant: Tenant) -> str:
    return reverse("portal:home", args=[tenant.slug])


def session_create(
    *, tenant: Tenant, user: AppUser, aal: str = "aal1", impersonator_id: uuid.UUID | None = None,
    lifetime: timedelta | None = None, ip_address: str | None = None, user_agent: str = "",
) -> tuple[AppSession, str]:
    """A new session for ``user``; returns the row and the raw cookie value (never stored)."""
    now = timezone.now()
    raw = secrets.token_urlsafe(policy().token_bytes)
    session = AppSession.objects.using(tenant_db.using(tenant)).create(
        user_id=user.pk,
        token_hash=hash_token(raw),
        created_at=now,
        last_seen_at=now,
        expires_at=now + (lifetime or SESSION_LIFETIME),
        ip_address=ip_address,
        user_agent=(user_agent or "")[:300],
        aal=aal,
        impersonator_id=impersonator_id,
    )
    if impersonator_id is None:
        AppUser.objects.using(tenant_db.using(tenant)).filter(pk=user.pk).update(last_sign_in_at=now)
    return session, raw


def session_validate(*, tenant: Tenant, raw: str | None) -> ValidSession:
    """The session behind a cookie value, or ``Refused`` (code: why). Touches ``last_seen_at``."""
    if not raw or len(raw) > 200:
        raise _refused("none")
    session = (
        AppSession.objects.using(tenant_db.using(tenant))
        .select_related("user")
        .filter(token_hash=hash_token(raw))
        .first()
    )
    if session is None:
        raise _refused("none")
    now = timezone.now()
    reason = user_refusal(session.user)
    if reason is not None:
        raise _refused(reason, session)
    if session.revoked_at is not None:
        raise _refused("impersonation_ended" if session.impersonator_id else "revoked", session)
    if session.expires_at <= now:
        raise _refused("impersonation_ended" if session.impersonator_id else "expired", session)
    if now - session.last_seen_at > SESSION_IDLE:
        raise _refused("expired", session)
    if now - session.last_seen_at >= TOUCH_EVERY:
        AppSession.objects.using(tenant_db.using(tenant)).filter(pk=session.pk).update(last_seen_at=now)
        session.last_seen_at = now
    return ValidSession(session=session, user=session.user)


def _live(tenant: Tenant, user: AppUser):
    return AppSession.objects.using(tenant_db.using(tenant)).filter(
        user_id=user.pk, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


def sessions_revoke_all(*, tenant: Tenant, user: AppUser, keep: AppSession | None = None) -> int:
    """Revoke every live session of the user (but ``keep``); impersonation sessions are left to
    the impersonation services, which end the impersonation record with them."""
    qs = _live(tenant, user).filter(impersonator_id__isnull=True)
    if keep is not None:
        qs = qs.exclude(pk=keep.pk)
    return qs.update(revoked_at=timezone.now())


def session_end(*, actor: PortalActor, tenant: Tenant, scope: str, session_id: uuid.UUID | None = None) -> int:
    """End the actor's own sessions: ``local`` (the current one, or ``session_id`` when given),
    ``others`` or ``global``. Returns how many sessions ended.

    While impersonating, the user's own sessions are not the impersonator's to end: refused.
    """
    if scope not in SCOPES:
        raise Invalid(f"Unknown sign-out scope '{scope[:20]}'.", code="unknown_scope", field="scope")
    refuse_while_impersonating(
        actor, tenant, f"sessions_end_{scope}",
        message="While impersonating you cannot end this user's sessions. Use Stop to end yours.",
    )
    user = actor.user
    current = actor.session
    qs = _live(tenant, user).filter(impersonator_id__isnull=True)
    if scope == "local":
        target = session_id or (current.pk if current else None)
        qs = qs.filter(pk=target)
    elif scope == "others":
        qs = qs.exclude(pk=current.pk) if current else qs
    ended = qs.update(revoked_at=timezone.now())
    record(
        "app_user.sessions_end", tenant=tenant, user=user, actor=actor,
        data={"scope": scope, "ended": ended, **({"target_session": str(session_id)} if session_id else {})},
    )
    return ended
