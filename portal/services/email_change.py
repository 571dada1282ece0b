"""Confirming, from the new address, an email change a staff member asked for (issue 11,
finding 2; the request is ``accounts.app_users.services.app_user_update(email=...)``).

Opening the link (GET) only shows what will change; the form behind it (POST) makes the change:
the token is used once, the address becomes the new one (and confirmed), and every other link of
the user dies (they were issued to, or before, the old address)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.utils import timezone

from accounts.app_users.services import AUDIT_FIELDS
from accounts.models import ActionToken, AppUser
from accounts.tokens import token_peek, token_redeem, tokens_revoke_for_user
from audit import services as audit
from core.errors import Conflict, Refused
from portal.services.common import refusal_message, user_refusal
from tenants import db as tenant_db
from tenants.models import Tenant

PURPOSE = ActionToken.Purpose.EMAIL_CHANGE
TAKEN = ("Another account uses this address now, so the change cannot be made. Ask the "
         "administrators of this application.")


@dataclass(frozen=True)
class PendingChange:
    user: AppUser
    new_email: str


def _alias(tenant: Tenant) -> str:
    if not tenant.accepts_app_users:
        raise Conflict("This application is not available at the moment.", code="tenant_closed")
    return tenant_db.using(tenant)


def _pending(token: ActionToken) -> PendingChange:
    refusal = user_refusal(token.user)
    if refusal in {"banned", "deleted"}:
        raise Refused(refusal_message(refusal, token.user), code=refusal)
    return PendingChange(user=token.user, new_email=token.new_email)


def email_change_peek(*, tenant: Tenant, raw: str) -> PendingChange:
    """The change behind a link, without making it. ``Invalid`` (``link_invalid``) or ``Refused``."""
    _alias(tenant)
    return _pending(token_peek(tenant=tenant, raw=raw, purpose=PURPOSE))


def email_change_confirm(*, tenant: Tenant, raw: str) -> AppUser:
    """Make the change: one use of the link, the new address confirmed, every other link of the
    user revoked, audited (``app_user.email_change``, old and new address). ``Conflict``
    (``email_taken``) when another user took the address meanwhile: nothing changes."""
    alias = _alias(tenant)
    with transaction.atomic(using=DEFAULT_DB_ALIAS), transaction.atomic(using=alias):
        token = token_redeem(tenant=tenant, raw=raw, purpose=PURPOSE)
        _pending(token)
        user = AppUser.objects.using(alias).select_for_update().get(pk=token.user_id)
        if AppUser.objects.using(alias).filter(email=token.new_email).exclude(pk=user.pk).exists():
            raise Conflict(TAKEN, code="email_taken")
        before = audit.snapshot(user, AUDIT_FIELDS)
        now = timezone.now()
        user.email, user.email_confirmed_at, user.updated_at = token.new_email, now, now
        try:
            with transaction.atomic(using=alias):
                user.save(using=alias, update_fields=["email", "email_confirmed_at", "updated_at"])
        except IntegrityError as exc:
            raise Conflict(TAKEN, code="email_taken") from exc
        revoked = tokens_revoke_for_user(tenant=tenant, user_ids=[user.pk])
        audit.record(
            event="app_user.email_change", actor=None, tenant=tenant, target=user, before=before,
            after=audit.snapshot(user, AUDIT_FIELDS),
            data={"app_user": str(user.pk), "via": "portal", "action_token": str(token.pk),
                  "links_revoked": revoked},
        )
    return user
