"""The native management API at ``/api/v1/``: one envelope ``{success, data, meta}``, cursor
pages, personal tokens (and tenant service keys on their own tenant's user endpoints).

Other modules add their endpoints to ``router`` (paths are absolute: ``/api/v1/...``), with the
helpers here: ``caller_for`` (authentication), ``tenant_for`` (a tenant the caller may see, else
404), ``ok`` and ``page`` (the envelope).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema

from accounts.selectors import tenant_memberships
from api.auth import Caller, authenticate
from api.http import ApiError, json_response, meta
from core.access import is_instance_admin, role_can
from credentials.models import ApiKey
from tenants.access import actor_role
from tenants.models import Tenant
from tenants.selectors import tenant_get

router = Router()
BASE = "/api/v1"


class Meta(Schema):
    request_id: str | None = None
    limit: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None
    total: int | None = None
    total_exact: bool | None = None


class ErrorBody(Schema):
    code: str
    reason: str
    message: str
    details: Any = None


class Error(Schema):
    success: bool
    error: ErrorBody
    meta: Meta


ERRORS: dict[int, Any] = {code: Error for code in (400, 401, 403, 404, 405, 409, 413, 422, 429, 500)}


def ok(data: Any, *, status: int = 200, extra_meta: dict[str, Any] | None = None,
       headers: dict[str, str] | None = None) -> HttpResponse:
    return json_response({"success": True, "data": data, "meta": {**meta(), **(extra_meta or {})}},
                         status=status, headers=headers)


def caller_for(request: HttpRequest, *, keys_allowed: bool = True) -> Caller:
    return authenticate(request, keys_allowed=keys_allowed)


def tenant_for(request: HttpRequest, caller: Caller, slug: str, action: str) -> Tenant:
    """The tenant of the URL when the caller has a role there (else 404, like the console: an
    unassigned tenant looks like it does not exist), and 403 when the role lacks ``action``."""
    tenant = tenant_get(slug=slug)
    role = actor_role(caller.actor, tenant) if tenant is not None and tenant.is_usable else None
    if tenant is None or role is None:
        raise ApiError(404, "tenant_not_found", "No such tenant.")
    if not role_can(role, action):
        raise ApiError(403, "not_admin", "Your role in this tenant does not allow this.")
    return tenant


# --- Schemas -----------------------------------------------------------------------------------


class TenantRoleOut(Schema):
    slug: str
    name: str
    status: str
    role: str


class MeOut(Schema):
    kind: str
    user: dict[str, Any] | None = None
    token: dict[str, Any] | None = None
    key: dict[str, Any] | None = None
    tenants: list[TenantRoleOut]


class MeEnvelope(Schema):
    success: bool
    data: MeOut
    meta: Meta


class AppUserOut(Schema):
    id: str
    email: str
    name: str
    role: str
    status: str
    email_confirmed_at: str | None = None
    invited_at: str | None = None
    banned_until: str | None = None
    ban_reason: str
    last_sign_in_at: str | None = None
    mfa_enabled: bool
    deleted_at: str | None = None
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class AppUserEnvelope(Schema):
    success: bool
    data: AppUserOut
    meta: Meta


class AppUserListEnvelope(Schema):
    success: bool
    data: list[AppUserOut]
    meta: Meta


def _ts(value: Any) -> str | None:
    from api.serializers import ts

    return ts(value)


def app_user_native(user: Any, *, full: bool = True) -> dict[str, Any]:
    data = {
        "id": str(user.pk), "email": user.email, "name": user.name, "role": user.role, "status": user.status,
        "email_confirmed_at": _ts(user.email_confirmed_at), "invited_at": _ts(user.invited_at),
        "banned_until": _ts(user.banned_until), "ban_reason": user.ban_reason,
        "last_sign_in_at": _ts(user.last_sign_in_at), "mfa_enabled": user.mfa_enabled,
        "deleted_at": _ts(user.deleted_at), "created_at": _ts(user.created_at), "updated_at": _ts(user.updated_at),
    }
    if full:
        data["user_metadata"] = user.user_metadata
        data["app_metadata"] = user.app_metadata
    return data


# --- Endpoints ---------------------------------------------------------------------------------


@router.get(f"{BASE}/me", response={200: MeEnvelope, **ERRORS}, tags=["me"], operation_id="native_me")
def me(request: HttpRequest) -> HttpResponse:
    """Who is calling: the staff member and token, or the service key and its tenant."""
    caller = caller_for(request)
    cred = caller.credential
    if isinstance(cred, ApiKey):
        tenant = cred.tenant
        return ok({"kind": "service_key",
                   "key": {"id": str(cred.pk), "name": cred.name, "prefix": cred.prefix, "role": cred.role,
                           "tenant": tenant.slug, "expires_at": _ts(cred.expires_at)},
                   "tenants": [{"slug": tenant.slug, "name": tenant.name, "status": tenant.status,
                                "role": cred.role}]})
    user = caller.actor
    tenants = [{"slug": m.tenant.slug, "name": m.tenant.name, "status": m.tenant.status, "role": m.role}
               for m in tenant_memberships(actor=user)]
    return ok({"kind": "staff",
               "user": {"id": str(user.pk), "email": user.email, "name": user.name,
                        "is_instance_admin": is_instance_admin(user)},
               "token": {"id": str(cred.pk), "name": cred.name, "prefix": cred.prefix, "read_only": cred.read_only,
                         "expires_at": _ts(cred.expires_at)},
               "tenants": tenants})
