"""Link tokens for app users: invitation, recovery, magic link, email change.

A token is ``policy().token_bytes`` random bytes from ``secrets`` (256 bits by default), shown
once (in the mail) and stored only as its SHA-256. It is bound to one purpose and one user, used
at most once (a conditional UPDATE, so concurrent redemptions cannot both win), expires after the
tenant's lifetime for its purpose, and dies when the user's password changes after it was issued.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlencode

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import ActionToken, AppUser
from core import pgcopy
from core.errors import Invalid
from core.policy import policy
from core.request_context import public_url
from tenants import db as tenant_db
from tenants.config import tenant_settings
from tenants.models import Tenant

PATHS: dict[str, str] = {
    ActionToken.Purpose.INVITE: "accept",
    ActionToken.Purpose.RECOVERY: "recover",
    ActionToken.Purpose.MAGIC_LINK: "magic",
    ActionToken.Purpose.EMAIL_CHANGE: "email-change",
}


LINK_INVALID = "This link is invalid or has expired. Ask for a new one."


def _invalid() -> Invalid:
    """Unknown, used, revoked, expired, for another purpose, or void: one answer for all."""
    return Invalid(LINK_INVALID, code="link_invalid")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def new_raw_token() -> str:
    return secrets.token_urlsafe(policy().token_bytes)


def token_link(tenant: Tenant, purpose: str, raw: str, redirect_to: str = "") -> str:
    """The portal page of the link; ``redirect_to`` (already checked against the tenant's
    allow-list) rides along as ``?redirect_to=`` and the portal checks it again after use."""
    link = public_url(reverse(f"portal:{PATHS[purpose]}", args=[tenant.slug, raw]))
    return f"{link}?{urlencode({'redirect_to': redirect_to})}" if redirect_to else link


def _lifetime(tenant: Tenant, purpose: str, lifetime: timedelta | None) -> timedelta:
    return lifetime if lifetime is not None else tenant_settings(tenant).lifetime(purpose)


def token_issue(
    *, tenant: Tenant, user: AppUser, purpose: str, created_by=None,
    lifetime: timedelta | None = None, new_email: str = "",
) -> tuple[ActionToken, str]:
    """Issue a token (revoking the user's earlier unused ones of the same purpose).

    Returns the row and the raw token; the raw token is never stored. Call inside the caller's
    transaction on the tenant alias.
    """
    alias = tenant_db.using(tenant)
    now = timezone.now()
    ActionToken.objects.using(alias).filter(
        user_id=user.pk, purpose=purpose, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    raw = new_raw_token()
    token = ActionToken.objects.using(alias).create(
        user_id=user.pk,
        purpose=purpose,
        token_hash=hash_token(raw),
        created_at=now,
        expires_at=now + _lifetime(tenant, purpose, lifetime),
        created_by=getattr(created_by, "pk", created_by),
        new_email=new_email,
    )
    return token, raw


def token_issue_many(
    *, tenant: Tenant, user_ids: Iterable, purpose: str, created_by=None,
    lifetime: timedelta | None = None,
) -> dict:
    """Batch version: one UPDATE revoking old tokens, one bulk INSERT. Returns {user_id: raw}."""
    alias = tenant_db.using(tenant)
    ids = list(user_ids)
    now = timezone.now()
    expires = now + _lifetime(tenant, purpose, lifetime)
    ActionToken.objects.using(alias).filter(
        user_id__in=ids, purpose=purpose, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    raws = {uid: new_raw_token() for uid in ids}
    ActionToken.objects.using(alias).bulk_create(
        [
            ActionToken(
                user_id=uid, purpose=purpose, token_hash=hash_token(raw), created_at=now,
                expires_at=expires, created_by=getattr(created_by, "pk", created_by),
            )
            for uid, raw in raws.items()
        ],
        batch_size=500,
    )
    return raws


def _check(token: ActionToken | None, purpose: str) -> ActionToken:
    now = timezone.now()
    if (
        token is None
        or token.purpose != purpose
        or token.used_at is not None
        or token.revoked_at is not None
        or token.expires_at <= now
    ):
        raise _invalid()
    user = token.user
    if user.deleted_at is not None:
        raise _invalid()
    if user.password_changed_at is not None and token.created_at < user.password_changed_at:
        raise _invalid()  # the password changed after the link was sent
    return token


def token_peek(*, tenant: Tenant, raw: str, purpose: str) -> ActionToken:
    """Validate without using (to show the form behind a link). Raises ``Invalid`` (code ``link_invalid``)."""
    if not raw or len(raw) > 200:
        raise _invalid()
    token = (
        ActionToken.objects.using(tenant_db.using(tenant))
        .select_related("user")
        .filter(token_hash=hash_token(raw))
        .first()
    )
    return _check(token, purpose)


def token_redeem(*, tenant: Tenant, raw: str, purpose: str) -> ActionToken:
    """Use a token once. Exactly one of any number of concurrent redemptions succeeds.

    Runs in (or opens) a transaction on the tenant alias, so the caller's follow-up writes
    (set the password, create a session) commit or roll back with the redemption.
    """
    alias = tenant_db.using(tenant)
    with transaction.atomic(using=alias):
        token = token_peek(tenant=tenant, raw=raw, purpose=purpose)
        won = (
            ActionToken.objects.using(alias)
            .filter(pk=token.pk, used_at__isnull=True, revoked_at__isnull=True)
            .update(used_at=timezone.now())
        )
        if won != 1:
            raise _invalid()
        token.used_at = timezone.now()
        return token


def tokens_revoke_for_user(*, tenant: Tenant, user_ids: Iterable, purposes: Iterable[str] | None = None) -> int:
    alias = tenant_db.using(tenant)
    ids, revoked, now = list(user_ids), 0, timezone.now()
    for chunk in pgcopy.id_chunks(ids, alias):
        qs = ActionToken.objects.using(alias).filter(
            user_id__any=chunk, used_at__isnull=True, revoked_at__isnull=True
        )
        if purposes is not None:
            qs = qs.filter(purpose__in=list(purposes))
        revoked += qs.update(revoked_at=now)
    return revoked
