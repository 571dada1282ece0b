"""Creating, revoking and checking API credentials. Every change is audited.

A service key is created for one tenant with a tenant role (``admin``, ``support``, ``viewer``)
by a tenant admin (or by an operator on the command line, ``actor=None``); a personal token is
created by a staff member for themselves and acts as them, for at most ``api_token_max_days``.
The secret is returned once and only its SHA-256 is kept.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from core.access import ROLES, is_instance_admin, role_can
from core.errors import Conflict, Invalid, NotFound, Refused
from core.policy import policy
from core.text import clean_text
from credentials.models import ApiKey, StaffToken
from tenants.access import actor_role
from tenants.models import Tenant

KEY_PREFIX = "acsk_"
TOKEN_PREFIX = "acpat_"  # noqa: S105 - the recognisable start of a token, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last-used time written at most this often
NAME_MAX = 100


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _new_secret(kind: str) -> tuple[str, str, str]:
    """(raw secret, prefix, hash). 256 random bits after the recognisable kind."""
    body = secrets.token_urlsafe(32)
    raw = kind + body
    return raw, kind + body[:8], hash_secret(raw)


@dataclass(frozen=True)
class ApiKeyActor:
    """The actor a service key's calls reach the services as: its role in its tenant only
    (``tenants.access.actor_role`` reads ``tenant_scope``), no staff user behind it (audit
    entries name it by ``email``: ``api-key:<prefix>``, never a real address)."""

    key: ApiKey
    is_authenticated = True
    is_superuser = False
    pk = None

    @property
    def is_active(self) -> bool:
        """A revoked or expired key has no role anywhere (a job it started stops)."""
        return self.key.is_live()

    @property
    def email(self) -> str:
        return f"api-key:{self.key.prefix}"

    @property
    def tenant_scope(self) -> tuple[Any, str]:
        return self.key.tenant_id, self.key.role


def _clean_name(value: Any) -> str:
    return clean_text(value, label="A name", max_length=NAME_MAX, field="name", required=True)


def _clean_expiry(value: datetime | None, *, now: datetime, max_days: int | None = None) -> datetime | None:
    if value is None:
        return None if max_days is None else now + timedelta(days=max_days)
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value <= now:
        raise Invalid("The expiry must be in the future.", code="in_past", field="expires_at")
    if max_days is not None and value > now + timedelta(days=max_days):
        raise Invalid(f"A personal token lasts at most {max_days} days.", code="too_long", field="expires_at")
    return value


# --- Service keys ------------------------------------------------------------------------------


def _check_key_manager(actor: Any, tenant: Tenant) -> None:
    if actor is None:
        return  # the command line (an operator on the server)
    if not role_can(actor_role(actor, tenant), "manage_api_keys") or getattr(actor, "tenant_scope", None):
        raise Refused("Only a tenant admin manages this tenant's API keys.", code="role",
                      action="manage_api_keys")


def api_key_create(
    *, actor: Any, tenant: Tenant, name: Any, role: Any, expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new service key; returns it and its secret (shown once, never stored)."""
    _check_key_manager(actor, tenant)
    if not tenant.is_usable:
        raise Conflict("This tenant is not available.", code="tenant_unavailable")
    name = _clean_name(name)
    if role not in ROLES:
        raise Invalid(f"Choose a role: {', '.join(ROLES)}.", code="unknown_role", field="role")
    now = timezone.now()
    expires = _clean_expiry(expires_at, now=now)
    raw, prefix, digest = _new_secret(KEY_PREFIX)
    with transaction.atomic():
        key = ApiKey.objects.create(
            tenant=tenant, name=name, role=role, prefix=prefix, secret_hash=digest,
            created_by=actor if getattr(actor, "pk", None) else None, created_at=now, expires_at=expires,
        )
        audit.record(
            event="api_key.create", actor=actor, tenant=tenant, target=key, action=audit.CREATE,
            data={"prefix": prefix, "name": name, "role": role, "expires_at": expires},
        )
    return key, raw


def api_key_list(*, tenant: Tenant) -> list[ApiKey]:
    return list(ApiKey.objects.filter(tenant=tenant).select_related("created_by", "revoked_by"))


def api_key_find(*, tenant: Tenant, ref: Any) -> ApiKey:
    """One key of the tenant by id or prefix (another tenant's key is not found)."""
    ref = str(ref or "").strip()
    qs = ApiKey.objects.filter(tenant=tenant)
    key = qs.filter(prefix=ref).first() if ref.startswith(KEY_PREFIX) else None
    if key is None:
        try:
            key = qs.filter(pk=ref).first()
        except Exception:  # noqa: BLE001 - not a UUID: not found like any unknown id
            key = None
    if key is None:
        raise NotFound("No such API key in this tenant.", code="api_key_not_found")
    return key


def api_key_revoke(*, actor: Any, tenant: Tenant, ref: Any) -> ApiKey:
    """Revoke at once (the next call with it answers 401). Revoking twice changes nothing."""
    _check_key_manager(actor, tenant)
    with transaction.atomic():
        key = api_key_find(tenant=tenant, ref=ref)
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is not None:
            return key
        key.revoked_at = timezone.now()
        key.revoked_by = actor if getattr(actor, "pk", None) else None
        key.save(update_fields=["revoked_at", "revoked_by"])
        audit.record(
            event="api_key.revoke", actor=actor, tenant=tenant, target=key,
            data={"prefix": key.prefix, "name": key.name, "role": key.role},
        )
    return key


# --- Personal tokens ---------------------------------------------------------------------------


def staff_token_create(
    *, actor: Any, name: Any, expires_at: datetime | None = None, read_only: bool = False,
) -> tuple[StaffToken, str]:
    """A personal token of ``actor`` (a staff member, for themselves), at most 90 days."""
    if (actor is None or getattr(actor, "pk", None) is None or not actor.is_active
            or getattr(actor, "tenant_scope", None)):
        raise Refused("Only a signed-in staff member creates a personal token.", code="role")
    name = _clean_name(name)
    now = timezone.now()
    expires = _clean_expiry(expires_at, now=now, max_days=policy().api_token_max_days)
    assert expires is not None  # with max_days, an absent expiry means the maximum
    raw, prefix, digest = _new_secret(TOKEN_PREFIX)
    with transaction.atomic():
        token = StaffToken.objects.create(
            user=actor, name=name, prefix=prefix, secret_hash=digest, read_only=bool(read_only),
            created_at=now, expires_at=expires,
        )
        audit.record(
            event="staff_token.create", actor=actor, tenant=None, target=token, action=audit.CREATE,
            data={"prefix": prefix, "name": name, "read_only": bool(read_only), "expires_at": expires},
        )
    return token, raw


def staff_token_list(*, user: Any) -> list[StaffToken]:
    return list(StaffToken.objects.filter(user=user))


def staff_token_revoke(*, actor: Any, token_id: Any) -> StaffToken:
    """Revoke one's own token (an instance admin may revoke anybody's)."""
    try:
        qs = StaffToken.objects.filter(pk=token_id)
        token = qs.first()
    except Exception:  # noqa: BLE001 - not a UUID
        token = None
    if token is None or (token.user_id != getattr(actor, "pk", None) and not is_instance_admin(actor)):
        raise NotFound("No such token.", code="token_not_found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(event="staff_token.revoke", actor=actor, tenant=None, target=token,
                     data={"prefix": token.prefix, "name": token.name})
    return token


def staff_tokens_revoke_all(*, user: Any, reason: str) -> int:
    """Every live token of a member, at once (second factor reset, deactivation)."""
    now = timezone.now()
    ids = list(StaffToken.objects.filter(user=user, revoked_at__isnull=True).values_list("pk", flat=True))
    if not ids:
        return 0
    StaffToken.objects.filter(pk__in=ids).update(revoked_at=now)
    audit.record(event="staff_token.revoke_all", actor=None, tenant=None, target=user,
                 data={"tokens": len(ids), "reason": reason})
    return len(ids)


# --- Checking a presented secret ---------------------------------------------------------------


def credential_for(raw: str, *, remote_addr: str | None = None) -> ApiKey | StaffToken | None:
    """The live credential a presented secret names, or ``None`` (unknown, revoked, expired,
    owner deactivated, tenant unusable is reported by the caller). Notes its last use."""
    if not isinstance(raw, str) or len(raw) > 200:
        return None
    now = timezone.now()
    cred: ApiKey | StaffToken | None
    if raw.startswith(KEY_PREFIX):
        cred = ApiKey.objects.select_related("tenant").filter(secret_hash=hash_secret(raw)).first()
    elif raw.startswith(TOKEN_PREFIX):
        cred = StaffToken.objects.select_related("user").filter(secret_hash=hash_secret(raw)).first()
    else:
        return None
    if cred is None or not cred.is_live(now):
        return None
    if cred.last_used_at is None or now - cred.last_used_at >= LAST_USED_RESOLUTION:
        type(cred).objects.filter(pk=cred.pk).update(last_used_at=now, last_used_ip=remote_addr)
        cred.last_used_at = now
    return cred
