"""The GoTrue-compatible admin API of one tenant, at ``/t/<slug>/auth/v1/``.

Wire-compatible with GoTrue's admin endpoints (../shared/API.md §4), so that unmodified
``@supabase/supabase-js`` (``createClient(".../t/<slug>", key).auth.admin``), ``@supabase/auth-js``
(``GoTrueAdminApi``) and Python ``supabase-auth`` work. Every change goes through the services of
``accounts.app_users`` (the same permission matrix and audit as the console); the views only
translate the wire.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Router, Schema

from accounts.app_users import selectors, services
from accounts.models import BANNED_FOREVER, ActionToken, AppUser
from accounts.tokens import hash_token, token_link
from api.auth import Caller, authenticate, presented_secret
from api.duration import parse_go_duration
from api.http import ApiError, json_response
from api.serializers import factor_json, user_json
from core import request_context
from core.access import role_can
from core.errors import Conflict, Refused
from portal.services.common import PortalActor
from portal.services.sessions import session_end, session_validate
from tenants.access import actor_role
from tenants.config import tenant_settings
from tenants.models import Tenant
from tenants.selectors import tenant_get

router = Router(tags=["gotrue-admin"])
BASE = "/t/{slug}/auth/v1"
TAG = ["gotrue-admin"]
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 1000
ADMIN_SETS_NO_PW_MESSAGE = "An administrator never sets a user's password here; send a recovery link instead."


# --- Schemas (what the OpenAPI document says; the views answer exactly these) -----------------


class GoTrueError(Schema):
    """Both formats: 2024-01-01 (``code`` text, ``message``) and legacy (``code`` status,
    ``error_code``, ``msg``)."""

    code: int | str
    message: str | None = None
    msg: str | None = None
    error_code: str | None = None
    weak_password: dict[str, list[str]] | None = None


class Factor(Schema):
    id: str
    friendly_name: str | None = None
    factor_type: str
    status: str
    created_at: str
    updated_at: str
    phone: str | None = None
    last_challenged_at: str | None = None


class Identity(Schema):
    identity_id: str
    id: str
    user_id: str
    identity_data: dict[str, Any]
    provider: str
    last_sign_in_at: str | None = None
    created_at: str
    updated_at: str
    email: str | None = None


class User(Schema):
    id: str
    aud: str
    role: str
    email: str
    phone: str
    email_confirmed_at: str | None = None
    confirmed_at: str | None = None
    invited_at: str | None = None
    confirmation_sent_at: str | None = None
    recovery_sent_at: str | None = None
    last_sign_in_at: str | None = None
    app_metadata: dict[str, Any]
    user_metadata: dict[str, Any]
    identities: list[Identity]
    factors: list[Factor] | None = None
    created_at: str
    updated_at: str
    banned_until: str | None = None
    deleted_at: str | None = None
    is_anonymous: bool
    name: str
    status: str
    mfa_enabled: bool
    ban_reason: str


class UserList(Schema):
    users: list[User]
    aud: str


class GeneratedLink(User):
    action_link: str
    email_otp: str
    hashed_token: str
    redirect_to: str
    verification_type: str


class Health(Schema):
    version: str
    name: str
    description: str


class AdminUserAttributes(Schema):
    """``createUser`` / ``updateUserById`` attributes; ``null`` means absent, unknown members
    are ignored (GoTrue's Go structs do the same)."""

    email: str | None = None
    password: str | None = None
    email_confirm: bool | None = None
    phone: str | None = None
    phone_confirm: bool | None = None
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None
    role: str | None = None
    ban_duration: str | None = None
    id: str | None = None
    name: str | None = None
    password_hash: str | None = None


class DeleteUserBody(Schema):
    should_soft_delete: bool | None = None


class InviteBody(Schema):
    email: str | None = None
    data: dict[str, Any] | None = None


class GenerateLinkBody(Schema):
    type: str | None = None
    email: str | None = None
    password: str | None = None
    new_email: str | None = None
    data: dict[str, Any] | None = None
    redirect_to: str | None = None
    redirectTo: str | None = None  # noqa: N815 - auth-js spreads its camelCase options here


ERRORS: dict[int, Any] = {code: GoTrueError for code in (400, 401, 403, 404, 405, 409, 413, 422, 429, 500)}


# --- Shared steps ------------------------------------------------------------------------------


def gate(request: HttpRequest, slug: str, action: str) -> tuple[Tenant, Caller]:
    """The tenant of the URL and the caller, or 401/403. A service key of another tenant and a
    personal token of somebody without a role there both answer 401 (the tenant may not exist)."""
    tenant = tenant_get(slug=slug)
    caller = authenticate(request, tenant=tenant, require_tenant=True)
    assert tenant is not None  # require_tenant: an unknown slug is refused like a wrong key
    role = actor_role(caller.actor, tenant)
    if role is None:
        raise ApiError(401, "bad_jwt", "Invalid API key")
    if not tenant.is_usable:
        raise ApiError(403, "tenant_unavailable", "This tenant is not available.")
    if not role_can(role, action):
        raise ApiError(403, "not_admin", "This API key's role does not allow this action.")
    return tenant, caller


def _uuid(value: str, name: str = "user_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ApiError(404, "validation_failed", f"{name} must be an UUID") from exc


def _user(tenant: Tenant, user_id: str) -> AppUser:
    user = selectors.app_user_get(tenant=tenant, user_id=_uuid(user_id))
    if user is None:
        raise ApiError(404, "user_not_found", "User not found")
    return user


def _link_times(tenant: Tenant, user: AppUser) -> dict:
    from tenants import db as tenant_db

    rows = (ActionToken.objects.using(tenant_db.using(tenant))
            .filter(user_id=user.pk, purpose__in=[ActionToken.Purpose.INVITE, ActionToken.Purpose.RECOVERY])
            .values_list("purpose", "created_at"))
    times: dict = {}
    for purpose, created in rows:
        if (user.pk, purpose) not in times or created > times[(user.pk, purpose)]:
            times[(user.pk, purpose)] = created
    return times


def full_user(tenant: Tenant, user_id: Any) -> dict[str, Any]:
    user = selectors.app_user_get(tenant=tenant, user_id=user_id)
    if user is None:
        raise ApiError(404, "user_not_found", "User not found")
    return user_json(user, factors=selectors.app_user_factors(tenant=tenant, user=user),
                     link_times=_link_times(tenant, user))


def ban_until(value: str | None) -> tuple[bool, Any]:
    """(given, until): ``until`` None lifts the ban; a positive duration bans until now + it."""
    if value is None:
        return False, None
    if value == "none":
        return True, None
    try:
        duration = parse_go_duration(value)
    except ValueError as exc:
        raise ApiError(400, "validation_failed", f"invalid format for ban duration: {exc}") from exc
    if duration <= timedelta(0):
        return True, None
    try:
        return True, min(timezone.now() + duration, BANNED_FOREVER)
    except OverflowError:
        return True, BANNED_FOREVER


def _role(value: str | None) -> str:
    return "" if value in (None, "", "authenticated") else str(value)


def _no_phone(body: AdminUserAttributes) -> None:
    if body.phone:
        raise ApiError(400, "phone_provider_disabled", "Phone signups are disabled")
    if body.password_hash:
        raise ApiError(400, "validation_failed", "password_hash is not supported")


def _int_param(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise ApiError(400, "validation_failed", "Bad Pagination Parameters")
    return int(value) or default


# --- Endpoints ---------------------------------------------------------------------------------


@router.get(f"{BASE}/health", response={200: Health}, auth=None, operation_id="gotrue_health")
def health(request: HttpRequest, slug: str) -> HttpResponse:
    return json_response({"version": "1.0.0", "name": "GoTrue",
                          "description": "GoTrue-compatible admin API of the admin console"})


@router.get(f"{BASE}/admin/users", response={200: UserList, **ERRORS}, operation_id="gotrue_list_users")
def list_users(request: HttpRequest, slug: str, page: str | None = None, per_page: str | None = None,
               filter: str | None = None, sort: str | None = None) -> HttpResponse:
    """``listUsers({page, perPage})``: newest first, ``X-Total-Count`` and ``Link`` pages."""
    tenant, _caller = gate(request, slug, "view_users")
    number = _int_param(page, 1)
    size = min(_int_param(per_page, DEFAULT_PER_PAGE), MAX_PER_PAGE)
    sort_value = (sort or "").strip()
    if sort_value not in ("", "created_at desc", "created_at asc", "created_at"):
        raise ApiError(400, "validation_failed", "Bad Sort Parameters")
    result = selectors.app_user_offset_page(tenant=tenant, page=number, per_page=size, filter=filter or "",
                                            ascending=sort_value == "created_at asc")
    last = math.ceil(result.total / size) if result.total else 0
    extra = {k: v for k, v in (("filter", filter), ("sort", sort)) if v}

    def url(n: int) -> str:  # page first: auth-js reads the first "=" of the URL
        query = f"page={n}&per_page={size}" + ("&" + urlencode(extra) if extra else "")
        return f"<{request.path}?{query}>"

    links = ([f'{url(number + 1)}; rel="next"'] if number < last else []) + [f'{url(last)}; rel="last"']
    body = {"users": [user_json(u, factors=result.factors.get(u.pk), link_times=result.link_times)
                      for u in result.users], "aud": "authenticated"}
    return json_response(body, headers={"X-Total-Count": str(result.total), "Link": ", ".join(links)})


@router.post(f"{BASE}/admin/users", response={200: User, **ERRORS}, operation_id="gotrue_create_user")
def create_user(request: HttpRequest, slug: str, body: AdminUserAttributes | None = None) -> HttpResponse:
    tenant, caller = gate(request, slug, "create_user")
    body = body or AdminUserAttributes()
    _no_phone(body)
    if not body.email:
        raise ApiError(400, "validation_failed", "Cannot create a user without either an email or phone")
    banned, until = ban_until(body.ban_duration)
    user = services.app_user_create(
        actor=caller.actor, tenant=tenant, email=body.email, name=body.name or "", role=_role(body.role),
        password=body.password or "", confirmed=bool(body.email_confirm),
        user_metadata=body.user_metadata, app_metadata=body.app_metadata, user_id=body.id or None,
    )
    if banned and until is not None:
        services.app_user_ban(actor=caller.actor, tenant=tenant, user_id=user.pk, until=until)
    return json_response(full_user(tenant, user.pk))


@router.get(f"{BASE}/admin/users/{{user_id}}", response={200: User, **ERRORS}, operation_id="gotrue_get_user")
def get_user(request: HttpRequest, slug: str, user_id: str) -> HttpResponse:
    tenant, _caller = gate(request, slug, "view_users")
    return json_response(full_user(tenant, _user(tenant, user_id).pk))


@router.put(f"{BASE}/admin/users/{{user_id}}", response={200: User, **ERRORS}, operation_id="gotrue_update_user")
def update_user(request: HttpRequest, slug: str, user_id: str, body: AdminUserAttributes | None = None) -> HttpResponse:
    """Only the members present change; metadata merges (``null`` removes a key)."""
    tenant, caller = gate(request, slug, "edit_user")
    body = body or AdminUserAttributes()
    user = _user(tenant, user_id)
    _no_phone(body)
    if body.password:
        raise ApiError(400, "validation_failed", ADMIN_SETS_NO_PW_MESSAGE)
    banned, until = ban_until(body.ban_duration)
    changes: dict[str, Any] = {}
    if body.email is not None:
        changes["email"] = body.email
    if body.name is not None:
        changes["name"] = body.name
    if body.role is not None:
        changes["role"] = _role(body.role)
    if banned:
        changes["ban"] = until
    # One transaction, as GoTrue: a part that fails (a taken email, a refused role) changes nothing.
    services.app_user_admin_update(
        actor=caller.actor, tenant=tenant, user_id=user.pk, user_metadata_patch=body.user_metadata or None,
        app_metadata_patch=body.app_metadata or None, email_confirm=bool(body.email_confirm), **changes,
    )
    return json_response(full_user(tenant, user.pk))


@router.delete(f"{BASE}/admin/users/{{user_id}}", response={200: dict, **ERRORS},
               operation_id="gotrue_delete_user")
def delete_user(request: HttpRequest, slug: str, user_id: str, body: DeleteUserBody | None = None) -> HttpResponse:
    """Hard delete, or GoTrue's soft delete (``should_soft_delete``); 200 ``{}`` either way."""
    tenant, caller = gate(request, slug, "delete_user")
    body = body or DeleteUserBody()
    user = _user(tenant, user_id)
    try:
        services.app_user_delete(actor=caller.actor, tenant=tenant, user_id=user.pk,
                                 hard=not body.should_soft_delete)
    except Conflict as exc:
        if exc.code != "already_deleted":
            raise
    return json_response({})


@router.get(f"{BASE}/admin/users/{{user_id}}/factors", response={200: list[Factor], **ERRORS},
            operation_id="gotrue_list_factors")
def list_factors(request: HttpRequest, slug: str, user_id: str) -> HttpResponse:
    tenant, _caller = gate(request, slug, "view_users")
    user = _user(tenant, user_id)
    return json_response([factor_json(f) for f in selectors.app_user_factors(tenant=tenant, user=user)])


@router.delete(f"{BASE}/admin/users/{{user_id}}/factors/{{factor_id}}", response={200: Factor, **ERRORS},
               operation_id="gotrue_delete_factor")
def delete_factor(request: HttpRequest, slug: str, user_id: str, factor_id: str) -> HttpResponse:
    """Removes the factor (every session of the user ends) and answers with it."""
    tenant, caller = gate(request, slug, "remove_factor")
    user = _user(tenant, user_id)
    fid = _uuid(factor_id, "factor_id")
    factor = next((f for f in selectors.app_user_factors(tenant=tenant, user=user) if f.pk == fid), None)
    if factor is None:
        raise ApiError(404, "mfa_factor_not_found", "Factor not found")
    services.app_user_factor_remove(actor=caller.actor, tenant=tenant, user_id=user.pk, factor_id=fid)
    return json_response(factor_json(factor))


@router.put(f"{BASE}/admin/users/{{user_id}}/factors/{{factor_id}}", response={404: GoTrueError},
            operation_id="gotrue_update_factor", auth=None)
def update_factor(request: HttpRequest, slug: str, user_id: str, factor_id: str) -> HttpResponse:
    raise ApiError(404, "feature_disabled", "Renaming factors is not supported")


@router.post(f"{BASE}/invite", response={200: User, **ERRORS}, operation_id="gotrue_invite")
def invite(request: HttpRequest, slug: str, body: InviteBody | None = None,
           redirect_to: str | None = None) -> HttpResponse:
    """``inviteUserByEmail``: a new invited user, or a new invitation for a pending one."""
    tenant, caller = gate(request, slug, "invite_user")
    body = body or InviteBody()
    if not body.email:
        raise ApiError(400, "validation_failed", "An email address is required")
    goto = redirect_to or ""  # the services keep it only if the tenant's allow-list holds it
    existing = selectors.app_user_by_email(tenant=tenant, email=body.email)
    if existing is not None and existing.status == "invited":
        services.app_user_invitation_resend(actor=caller.actor, tenant=tenant, user_id=existing.pk,
                                            redirect_to=goto)
        return json_response(full_user(tenant, existing.pk))
    if existing is not None and existing.email_confirmed_at is None and existing.deleted_at is None:
        # Created without a confirmation and never invited: GoTrue invites any unconfirmed user.
        services.app_user_invite_existing(actor=caller.actor, tenant=tenant, user_id=existing.pk,
                                          redirect_to=goto)
        return json_response(full_user(tenant, existing.pk))
    if existing is not None:
        raise ApiError(422, "email_exists", "A user with this email address has already been registered")
    user = services.app_user_invite(actor=caller.actor, tenant=tenant, email=body.email,
                                    user_metadata=body.data, redirect_to=goto)
    return json_response(full_user(tenant, user.pk))


@router.post(f"{BASE}/admin/generate_link", response={200: GeneratedLink, **ERRORS},
             operation_id="gotrue_generate_link")
def generate_link(request: HttpRequest, slug: str, body: GenerateLinkBody | None = None,
                  redirect_to: str | None = None) -> HttpResponse:
    """A link for the caller to deliver (nothing is mailed): the user's fields and the link's."""
    tenant, caller = gate(request, slug, "generate_link")
    body = body or GenerateLinkBody()
    kind = body.type or ""
    if kind in ("email_change_current", "email_change_new"):
        raise ApiError(400, "validation_failed", "Email change links are not supported; change the email "
                       "with PUT /admin/users/{id}")
    if not body.email:
        raise ApiError(400, "validation_failed", "An email address is required")
    user, token, raw, created = services.app_user_generate_link(
        actor=caller.actor, tenant=tenant, kind=kind, email=body.email, password=body.password or "",
        data=body.data,
    )
    # Query first (both clients put it there), then the body's, then auth-js's camelCase spread.
    asked = redirect_to or body.redirect_to or body.redirectTo or ""
    goto = tenant_settings(tenant).redirect_allowed(asked)  # not allowed: the site URL (GoTrue)
    data = full_user(tenant, user.pk)
    data.update({
        "action_link": token_link(tenant, token.purpose, raw, goto),
        "email_otp": "",
        "hashed_token": hash_token(raw),
        "redirect_to": goto or request_context.public_url(f"/p/{tenant.slug}/"),
        "verification_type": "signup" if kind == "magiclink" and created else kind,
    })
    return json_response(data)


_SESSION_CODES = {
    "none": "bad_jwt", "revoked": "session_not_found", "expired": "session_not_found",
    "impersonation_ended": "session_not_found", "banned": "user_banned", "deleted": "user_not_found",
    "unconfirmed": "email_not_confirmed",
}


@router.post(f"{BASE}/logout", response={204: None, **ERRORS}, operation_id="gotrue_logout", auth=None)
def logout(request: HttpRequest, slug: str, scope: str | None = None) -> HttpResponse:
    """``signOut(jwt, scope)``: the bearer is the user's portal session (not a key)."""
    auth = request.headers.get("Authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    tenant = tenant_get(slug=slug)
    apikey = request.headers.get("apikey", "").strip()
    if apikey and apikey != bearer:
        authenticate(request, tenant=tenant, require_tenant=True, secret=apikey)
    if not bearer:
        raise ApiError(401, "no_authorization", "This endpoint requires a Bearer token")
    scope = scope or "global"
    if scope not in ("global", "local", "others"):
        raise ApiError(400, "validation_failed", f'Unsupported logout scope "{scope[:20]}"')
    if tenant is None or not tenant.is_usable:
        raise ApiError(403, "bad_jwt", "Invalid session token")
    try:
        valid = session_validate(tenant=tenant, raw=bearer)
    except Refused as exc:
        raise ApiError(403, _SESSION_CODES.get(exc.code, "bad_jwt"), exc.message) from exc
    if valid.session.impersonator_id:
        raise ApiError(403, "not_admin", "An impersonation session cannot be signed out here")
    session_end(actor=PortalActor(user=valid.user, session=valid.session), tenant=tenant, scope=scope)
    return HttpResponse(status=204)


__all__ = ["router", "presented_secret"]
