"""GoTrue's User and Factor objects, built from the product's rows (omitting nulls like Go's
``omitempty``; the members the Python client requires are always present)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from accounts.models import ActionToken, AppFactor, AppUser


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def factor_json(factor: AppFactor) -> dict[str, Any]:
    moments = [m for m in (factor.created_at, factor.confirmed_at, factor.last_used_at) if m is not None]
    return _compact({
        "id": str(factor.pk),
        "friendly_name": factor.friendly_name or None,
        "factor_type": factor.kind,
        "status": "verified" if factor.confirmed_at else "unverified",
        "created_at": ts(factor.created_at),
        "updated_at": ts(max(moments)),
        "phone": "",
        "last_challenged_at": ts(factor.last_used_at),
    })


def user_json(user: AppUser, *, factors: list[AppFactor] | None = None,
              link_times: dict[tuple[Any, str], datetime] | None = None) -> dict[str, Any]:
    deleted = user.deleted_at is not None
    links = link_times or {}
    identity = _compact({
        "identity_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"appuser:{user.pk}:email")),
        "id": str(user.pk),
        "user_id": str(user.pk),
        "identity_data": {"email": user.email, "email_verified": user.email_confirmed_at is not None,
                          "phone_verified": False, "sub": str(user.pk)},
        "provider": "email",
        "last_sign_in_at": ts(user.last_sign_in_at),
        "created_at": ts(user.created_at),
        "updated_at": ts(user.updated_at),
        "email": user.email,
    })
    data = {
        "id": str(user.pk),
        "aud": "authenticated",
        "role": user.role,
        "email": user.email,
        "phone": "",
        "email_confirmed_at": ts(user.email_confirmed_at),
        "confirmed_at": ts(user.email_confirmed_at),
        "invited_at": ts(user.invited_at),
        "confirmation_sent_at": ts(links.get((user.pk, ActionToken.Purpose.INVITE))),
        "recovery_sent_at": ts(links.get((user.pk, ActionToken.Purpose.RECOVERY))),
        "last_sign_in_at": ts(user.last_sign_in_at),
        "app_metadata": dict(user.app_metadata or {}) if deleted
        else {"provider": "email", "providers": ["email"], **(user.app_metadata or {})},
        "user_metadata": dict(user.user_metadata or {}),
        "identities": [] if deleted else [identity],
        "factors": [factor_json(f) for f in factors] if factors else None,
        "created_at": ts(user.created_at),
        "updated_at": ts(user.updated_at),
        "banned_until": ts(user.banned_until),
        "deleted_at": ts(user.deleted_at),
        "is_anonymous": False,
        "name": user.name,
        "status": user.status,
        "mfa_enabled": user.mfa_enabled,
        "ban_reason": user.ban_reason,
    }
    return _compact(data)
