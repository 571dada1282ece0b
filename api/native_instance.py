"""Native API: tenants, their staff, settings, impersonations, the staff directory and first-run
setup. Tenant lifecycle and staff need a personal token (a service key never reaches them)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Schema

from accounts.selectors import staff_list, staff_setup_required, tenant_admin_list, tenant_memberships
from accounts.services import staff as staff_services
from api.http import ApiError
from api.native import BASE, ERRORS, ok, router, tenant_for
from api.native_users import Envelope, Strict, _instance_admin
from api.serializers import ts
from core.access import is_instance_admin
from portal import selectors as portal_selectors
from portal.services import impersonation as impersonations
from tenants import selectors as tenant_selectors
from tenants.config import tenant_settings
from tenants.models import Tenant


def _tenant(t: Tenant, *, admin: bool) -> dict[str, Any]:
    data = {"id": str(t.pk), "slug": t.slug, "name": t.name, "status": t.status, "is_default": t.is_default,
            "metadata": t.metadata, "created_at": ts(t.created_at), "updated_at": ts(t.updated_at),
            "suspended_at": ts(t.suspended_at), "deleted_at": ts(t.deleted_at), "purged_at": ts(t.purged_at)}
    if admin:
        data.update(db_server=t.db_server, db_name=t.db_name, last_error=t.last_error)
    return data


def _staff_caller(request: HttpRequest) -> Any:
    from api.native import caller_for

    return caller_for(request, keys_allowed=False)


@router.get(f"{BASE}/tenants", response={200: Envelope, **ERRORS}, tags=["tenants"], operation_id="native_tenants")
def tenants(request: HttpRequest, include_purged: bool = False) -> HttpResponse:
    _instance_admin(request)
    return ok([_tenant(t, admin=True) for t in tenant_selectors.tenant_list(include_purged=include_purged)])


@router.get(f"{BASE}/tenants/mine", response={200: Envelope, **ERRORS}, tags=["tenants"],
            operation_id="native_tenants_mine")
def tenants_mine(request: HttpRequest) -> HttpResponse:
    """Fluxbase ``listMine``: each tenant with the caller's role."""
    caller = _staff_caller(request)
    return ok([{**_tenant(m.tenant, admin=False), "my_role": m.role}
               for m in tenant_memberships(actor=caller.actor)])


@router.get(f"{BASE}/tenants/{{slug}}", response={200: Envelope, **ERRORS}, tags=["tenants"],
            operation_id="native_tenant_get")
def tenant_get(request: HttpRequest, slug: str) -> HttpResponse:
    caller = _staff_caller(request)
    tenant = tenant_for(request, caller, slug, "view_tenant")
    return ok(_tenant(tenant, admin=is_instance_admin(caller.actor)))


@router.get(f"{BASE}/tenants/{{slug}}/admins", response={200: Envelope, **ERRORS}, tags=["tenant-admins"],
            operation_id="native_tenant_admins")
def tenant_admins(request: HttpRequest, slug: str) -> HttpResponse:
    caller = _staff_caller(request)
    tenant = tenant_for(request, caller, slug, "view_tenant")
    return ok([{"id": a.pk, "tenant": tenant.slug, "user_id": str(a.user_id), "email": a.user.email,
                "name": a.user.name, "role": a.role, "has_totp": bool(getattr(a, "has_totp", False)),
                "created_at": ts(a.created_at)}
               for a in tenant_admin_list(tenant=tenant)])


@router.get(f"{BASE}/tenants/{{slug}}/settings", response={200: Envelope, **ERRORS}, tags=["tenants"],
            operation_id="native_tenant_settings")
def settings_get(request: HttpRequest, slug: str) -> HttpResponse:
    caller = _staff_caller(request)
    tenant = tenant_for(request, caller, slug, "manage_settings")
    return ok(tenant_settings(tenant).as_json())


def _imp(i: Any) -> dict[str, Any]:
    return {"id": str(i.pk), "staff": i.staff.email, "app_user_id": str(i.app_user_id),
            "app_user_email": i.app_user_email, "reason": i.reason, "started_at": ts(i.started_at),
            "expires_at": ts(i.expires_at), "ended_at": ts(i.ended_at), "end_reason": i.end_reason or None}


@router.get(f"{BASE}/tenants/{{slug}}/impersonations", response={200: Envelope, **ERRORS},
            tags=["tenants"], operation_id="native_impersonations")
def impersonation_list(request: HttpRequest, slug: str) -> HttpResponse:
    """Running and past impersonations. Starting one stays in the console, behind a fresh code."""
    caller = _staff_caller(request)
    tenant = tenant_for(request, caller, slug, "impersonate")
    impersonations.impersonations_expire(tenant=tenant)
    active, past = portal_selectors.impersonation_list(tenant=tenant)
    return ok({"active": [_imp(i) for i in active], "past": [_imp(i) for i in past]})


@router.post(f"{BASE}/tenants/{{slug}}/impersonations/{{impersonation_id}}/end", response={200: Envelope, **ERRORS},
             tags=["tenants"], operation_id="native_impersonation_end")
def impersonation_end(request: HttpRequest, slug: str, impersonation_id: str) -> HttpResponse:
    import uuid

    caller = _staff_caller(request)
    tenant = tenant_for(request, caller, slug, "impersonate")
    try:
        pk = uuid.UUID(impersonation_id)
    except ValueError as exc:
        raise ApiError(404, "not_found", "No such impersonation.") from exc
    return ok(_imp(impersonations.impersonation_end(actor=caller.actor, tenant=tenant, impersonation_id=pk)))


@router.get(f"{BASE}/staff", response={200: Envelope, **ERRORS}, tags=["staff"], operation_id="native_staff")
def staff(request: HttpRequest, q: str | None = None) -> HttpResponse:
    """Fluxbase's ``type: 'dashboard'`` users: every staff member and their tenant roles."""
    _instance_admin(request)
    return ok([{"id": str(u.pk), "email": u.email, "name": u.name, "type": "dashboard",
                "status": getattr(u, "status", ""),
                "is_instance_admin": u.is_superuser, "has_totp": bool(getattr(u, "has_totp", False)),
                "roles": [{"tenant": r.tenant.slug, "role": r.role} for r in u.tenant_roles.all()]}
               for u in staff_list(query=q or "")])


class SetupStatus(Schema):
    needs_setup: bool


class SetupStatusEnvelope(Schema):
    success: bool
    data: SetupStatus
    meta: Any


class SetupBody(Strict):
    email: str
    name: str = ""
    password: str


@router.get(f"{BASE}/setup", response={200: SetupStatusEnvelope, **ERRORS}, auth=None, tags=["me"],
            operation_id="native_setup_status")
def setup_status(request: HttpRequest) -> HttpResponse:
    """Fluxbase ``getSetupStatus``: whether first-run setup is still needed (no credential)."""
    return ok({"needs_setup": staff_setup_required()})


@router.post(f"{BASE}/setup", response={201: Envelope, **ERRORS}, auth=None, tags=["me"],
             operation_id="native_setup")
def setup(request: HttpRequest, body: SetupBody) -> HttpResponse:
    """Fluxbase ``setup``: the first instance admin, once (of two racing calls one wins, 409)."""
    user = staff_services.setup_first_admin(actor=None, email=body.email, name=body.name, password=body.password)
    return ok({"id": str(user.pk), "email": user.email, "name": user.name, "is_instance_admin": True}, status=201)
