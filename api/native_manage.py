"""Native API: the changes of the instance plane (tenant lifecycle, tenant staff, staff members,
tenant settings and mail templates, CSV import, one's own tokens). Personal tokens only: a
tenant service key never reaches them (401), and the services check the member's roles again."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Schema
from pydantic import ConfigDict
from pydantic import ValidationError as PydanticValidationError

from accounts.app_users import batches, csv_io
from accounts.app_users import tenant_settings as settings_services
from accounts.models import User
from accounts.selectors import staff_get, staff_roles, tenant_admin_get
from accounts.services import staff as staff_services
from accounts.services import tenant_invites
from api.http import ApiError
from api.native import BASE, ERRORS, caller_for, ok, router, tenant_for
from api.native_instance import _tenant
from api.native_users import Envelope, Strict, _instance_admin
from api.serializers import ts
from core.errors import ServiceError
from credentials import services as credentials
from tenants import emails
from tenants import services as tenant_services
from tenants.selectors import tenant_get

T = f"{BASE}/tenants/{{slug}}"


def _pat(request: HttpRequest) -> Any:
    return caller_for(request, keys_allowed=False).actor


def _any_tenant(slug: str) -> Any:
    """Instance admins see every tenant, deleted and failed ones too (lifecycle calls)."""
    tenant = tenant_get(slug=slug)
    if tenant is None:
        raise ApiError(404, "tenant_not_found", "No such tenant.")
    return tenant


# --- Tenant lifecycle (instance admins) -------------------------------------------------------


class TenantCreate(Strict):
    slug: str
    name: str
    metadata: dict[str, Any] | None = None
    db_server: str | None = None


class TenantPatch(Strict):
    name: str | None = None
    metadata: dict[str, Any] | None = None


class Purge(Strict):
    confirm_slug: str


@router.post(f"{BASE}/tenants", response={201: Envelope, 202: Envelope, **ERRORS}, tags=["tenants"],
             operation_id="native_tenant_create")
def tenant_create(request: HttpRequest, body: TenantCreate) -> HttpResponse:
    """201 when the tenant is ready; 202 (``provisioning``/``failed``, ``last_error``) when its
    database is not done yet: ``POST /tenants/{slug}/retry`` resumes."""
    actor = _instance_admin(request)
    existed = tenant_get(slug=body.slug) is not None
    try:
        tenant = tenant_services.tenant_create(actor=actor, slug=body.slug, name=body.name, metadata=body.metadata,
                                               db_server=body.db_server)
    except ServiceError:
        found = None if existed else tenant_get(slug=body.slug)
        if found is None:  # refused before anything was registered (slug taken, bad input)
            raise
        tenant = found  # registered, its database not finished: 202, the tenant tells why
    status = 201 if tenant.status == tenant.Status.ACTIVE else 202
    return ok(_tenant(tenant, admin=True), status=status, headers={"Location": f"{BASE}/tenants/{tenant.slug}"})


@router.patch(T, response={200: Envelope, **ERRORS}, tags=["tenants"], operation_id="native_tenant_update")
def tenant_update(request: HttpRequest, slug: str, body: TenantPatch) -> HttpResponse:
    actor = _instance_admin(request)
    tenant = _any_tenant(slug)
    tenant = tenant_services.tenant_update(
        actor=actor, tenant=tenant, name=body.name if body.name is not None else tenant.name,
        metadata=body.metadata if body.metadata is not None else tenant.metadata)
    return ok(_tenant(tenant, admin=True))


@router.delete(T, response={200: Envelope, **ERRORS}, tags=["tenants"], operation_id="native_tenant_delete")
def tenant_delete(request: HttpRequest, slug: str) -> HttpResponse:
    actor = _instance_admin(request)
    return ok(_tenant(tenant_services.tenant_delete(actor=actor, tenant=_any_tenant(slug)), admin=True))


def _transition(name: str):
    service = getattr(tenant_services, f"tenant_{name}")

    def view(request: HttpRequest, slug: str) -> HttpResponse:
        actor = _instance_admin(request)
        return ok(_tenant(service(actor=actor, tenant=_any_tenant(slug)), admin=True))

    view.__name__ = f"tenant_{name}"
    return view


for _name in ("restore", "suspend", "resume", "retry"):
    router.post(f"{T}/{_name}", response={200: Envelope, **ERRORS}, tags=["tenants"],
                operation_id=f"native_tenant_{_name}")(_transition(_name))


@router.post(f"{T}/migrate", response={200: Envelope, **ERRORS}, tags=["tenants"],
             operation_id="native_tenant_migrate")
def tenant_migrate(request: HttpRequest, slug: str) -> HttpResponse:
    actor = _instance_admin(request)
    result = tenant_services.tenant_migrate(actor=actor, tenant=_any_tenant(slug))
    return ok({"status": "migrated", **{k: v for k, v in result.items() if k != "status"}})


@router.post(f"{BASE}/tenants/migrate", response={200: Envelope, **ERRORS}, tags=["tenants"],
             operation_id="native_tenants_migrate_all")
def tenants_migrate_all(request: HttpRequest) -> HttpResponse:
    """Every tenant; the batch result of Supamode's shape (``processed``, ``skipped``, ``errors``)."""
    actor = _instance_admin(request)
    outcomes = tenant_services.tenant_migrate_all(actor=actor)
    errors = [{"tenant": o.tenant.slug, "error": o.error} for o in outcomes if o.error]
    processed = sum(1 for o in outcomes if not o.error and o.result is not None)
    return ok({"success": not errors, "processed": processed, "skipped": len(outcomes) - processed - len(errors),
               "errors": errors, "total": len(outcomes)})


@router.post(f"{T}/purge", response={200: Envelope, **ERRORS}, tags=["tenants"], operation_id="native_tenant_purge")
def tenant_purge(request: HttpRequest, slug: str, body: Purge) -> HttpResponse:
    actor = _instance_admin(request)
    tenant = tenant_services.tenant_purge(actor=actor, tenant=_any_tenant(slug), confirm_slug=body.confirm_slug)
    return ok(_tenant(tenant, admin=True))


# --- A tenant's staff ---------------------------------------------------------------------------


class AdminAssign(Strict):
    role: Literal["admin", "support", "viewer"]
    user_id: str | None = None
    email: str | None = None
    name: str = ""


class AdminRole(Strict):
    role: Literal["admin", "support", "viewer"]


def _staff(user_id: str) -> User:
    try:
        user = staff_get(pk=uuid.UUID(user_id))
    except ValueError:
        user = None
    if user is None:
        raise ApiError(404, "not_found", "No such staff member.")
    return user


def _assignment(a: Any, slug: str) -> dict[str, Any]:
    return {"id": a.pk, "tenant": slug, "user_id": str(a.user_id), "email": a.user.email, "name": a.user.name,
            "role": a.role, "created_at": ts(a.created_at)}


@router.post(f"{T}/admins", response={201: Envelope, **ERRORS}, tags=["tenant-admins"],
             operation_id="native_tenant_admin_assign")
def tenant_admin_assign(request: HttpRequest, slug: str, body: AdminAssign) -> HttpResponse:
    """``{"user_id", "role"}`` assigns a member; ``{"email", "role"}`` assigns or invites one."""
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_tenant_admins")
    if (body.user_id is None) == (body.email is None):
        raise ApiError(422, "validation_failed", "Give exactly one of user_id and email")
    if body.user_id is not None:
        a = staff_services.tenant_admin_assign(actor=caller.actor, tenant=tenant, user=_staff(body.user_id),
                                               role=body.role)
        return ok({**_assignment(a, slug), "invited": False}, status=201)
    # By address: always an offer the member accepts (the same answer whether or not the address
    # has a staff account, so the API cannot be used to find out who works here).
    invite = tenant_invites.tenant_admin_add(actor=caller.actor, tenant=tenant, email=body.email or "",
                                             role=body.role, name=body.name)
    return ok({"tenant": slug, "email": invite.user.email, "role": invite.role, "invited": True,
               "expires_at": ts(invite.expires_at)}, status=201)


@router.patch(f"{T}/admins/{{user_id}}", response={200: Envelope, **ERRORS}, tags=["tenant-admins"],
              operation_id="native_tenant_admin_role")
def tenant_admin_role(request: HttpRequest, slug: str, user_id: str, body: AdminRole) -> HttpResponse:
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_tenant_admins")
    a = staff_services.tenant_admin_change_role(actor=caller.actor, tenant=tenant, user=_staff(user_id),
                                                role=body.role)
    return ok(_assignment(a, slug))


@router.delete(f"{T}/admins/{{user_id}}", response={200: Envelope, **ERRORS}, tags=["tenant-admins"],
               operation_id="native_tenant_admin_remove")
def tenant_admin_remove(request: HttpRequest, slug: str, user_id: str) -> HttpResponse:
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_tenant_admins")
    user = _staff(user_id)
    if tenant_admin_get(tenant=tenant, user_pk=user.pk) is None:
        raise ApiError(404, "not_found", "This member has no role in this tenant.")
    staff_services.tenant_admin_remove(actor=caller.actor, tenant=tenant, user=user)
    return ok({"user_id": str(user.pk), "removed": True})


# --- Staff members (instance admins) -----------------------------------------------------------


class StaffInvite(Strict):
    email: str
    name: str = ""
    is_instance_admin: bool = False
    tenant: str | None = None
    role: Literal["admin", "support", "viewer"] | None = None


def _member(u: User) -> dict[str, Any]:
    return {"id": str(u.pk), "email": u.email, "name": u.name, "type": "dashboard", "is_active": u.is_active,
            "is_instance_admin": u.is_superuser,
            "roles": [{"tenant": r.tenant.slug, "role": r.role} for r in staff_roles(user=u)]}


@router.get(f"{BASE}/staff/{{user_id}}", response={200: Envelope, **ERRORS}, tags=["staff"],
            operation_id="native_staff_get")
def staff_member(request: HttpRequest, user_id: str) -> HttpResponse:
    _instance_admin(request)
    return ok(_member(_staff(user_id)))


@router.post(f"{BASE}/staff", response={201: Envelope, **ERRORS}, tags=["staff"], operation_id="native_staff_invite")
def staff_invite(request: HttpRequest, body: StaffInvite) -> HttpResponse:
    actor = _instance_admin(request)
    tenant = _any_tenant(body.tenant) if body.tenant else None
    user = staff_services.staff_invite(actor=actor, email=body.email, name=body.name,
                                       is_superuser=body.is_instance_admin, tenant=tenant, role=body.role)
    return ok(_member(user), status=201, headers={"Location": f"{BASE}/staff/{user.pk}"})


@router.post(f"{BASE}/staff/{{user_id}}/deactivate", response={200: Envelope, **ERRORS}, tags=["staff"],
             operation_id="native_staff_deactivate")
def staff_deactivate(request: HttpRequest, user_id: str) -> HttpResponse:
    actor = _instance_admin(request)
    return ok(_member(staff_services.staff_deactivate(actor=actor, user=_staff(user_id))))


@router.post(f"{BASE}/staff/{{user_id}}/reactivate", response={200: Envelope, **ERRORS}, tags=["staff"],
             operation_id="native_staff_reactivate")
def staff_reactivate(request: HttpRequest, user_id: str) -> HttpResponse:
    actor = _instance_admin(request)
    return ok(_member(staff_services.staff_reactivate(actor=actor, user=_staff(user_id))))


@router.get(f"{BASE}/staff/{{user_id}}/roles", response={200: Envelope, **ERRORS}, tags=["staff"],
            operation_id="native_staff_roles")
def staff_member_roles(request: HttpRequest, user_id: str) -> HttpResponse:
    _instance_admin(request)
    return ok([{"tenant": r.tenant.slug, "role": r.role} for r in staff_roles(user=_staff(user_id))])


# --- Tenant settings and mail templates (Fluxbase's settings and emailTemplates) ---------------


class SettingsPatch(Schema):
    model_config = ConfigDict(extra="allow")


@router.patch(f"{T}/settings", response={200: Envelope, **ERRORS}, tags=["tenants"],
              operation_id="native_tenant_settings_update")
def settings_update(request: HttpRequest, slug: str, body: SettingsPatch) -> HttpResponse:
    """Any subset of the tenant's settings (``GET .../settings`` names them); checked by the
    service (unknown names, bounds, roles still in use)."""
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_settings")
    values = _json(request)  # every member (the schema only documents that any are allowed)
    if not isinstance(values, dict):
        raise ApiError(400, "bad_json", "The body must be a JSON object.")
    updated = settings_services.tenant_settings_update(actor=caller.actor, tenant=tenant, values=values)
    return ok(updated.as_json())


class Template(Strict):
    subject: str
    body: str


@router.get(f"{T}/email-templates", response={200: Envelope, **ERRORS}, tags=["tenants"],
            operation_id="native_email_templates")
def email_templates(request: HttpRequest, slug: str) -> HttpResponse:
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_settings")
    return ok({kind: emails.template_for(tenant, kind) for kind in emails.KINDS})


@router.put(f"{T}/email-templates/{{kind}}", response={200: Envelope, **ERRORS}, tags=["tenants"],
            operation_id="native_email_template_update")
def email_template_update(request: HttpRequest, slug: str, kind: str, body: Template) -> HttpResponse:
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_settings")
    if kind not in emails.KINDS:
        raise ApiError(404, "not_found", f"No such template: one of {', '.join(emails.KINDS)}")
    tenant = settings_services.email_template_update(actor=caller.actor, tenant=tenant, kind=kind,
                                                     subject=body.subject, body=body.body)
    return ok(emails.template_for(tenant, kind))


@router.delete(f"{T}/email-templates/{{kind}}", response={200: Envelope, **ERRORS}, tags=["tenants"],
               operation_id="native_email_template_reset")
def email_template_reset(request: HttpRequest, slug: str, kind: str) -> HttpResponse:
    caller = caller_for(request, keys_allowed=False)
    tenant = tenant_for(request, caller, slug, "manage_settings")
    if kind not in emails.KINDS:
        raise ApiError(404, "not_found", f"No such template: one of {', '.join(emails.KINDS)}")
    tenant = settings_services.email_template_reset(actor=caller.actor, tenant=tenant, kind=kind)
    return ok(emails.template_for(tenant, kind))


# --- CSV import ---------------------------------------------------------------------------------


class ImportRow(Strict):
    email: str
    name: str = ""
    role: str = ""


class ImportBody(Strict):
    rows: list[ImportRow]


def _row(r: batches.InviteRow) -> dict[str, Any]:
    return {"line": r.line, "email": r.email, "name": r.name, "role": r.role, "error": r.error or None,
            "skip": r.skip or None}


@router.post(f"{T}/users/import", response={200: Envelope, **ERRORS}, tags=["batches"],
             operation_id="native_users_import",
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": {"$ref": "#/components/schemas/ImportBody"}},
                 "text/csv": {"schema": {"type": "string"}}}}})
def users_import(request: HttpRequest, slug: str, dry_run: bool = False) -> HttpResponse:
    """Invite many: ``text/csv`` (header ``email[,name,role]``) or ``{"rows": [...]}``. With
    ``dry_run`` each row's verdict, nothing changed; else the batch result (ids are ``line N``).
    Importing the same file twice invites nobody twice."""
    caller = caller_for(request)
    tenant = tenant_for(request, caller, slug, "import_users")
    if request.content_type == "text/csv":
        rows = csv_io.parse_import(request.body)
    else:
        try:
            body = ImportBody.model_validate(_json(request))
        except PydanticValidationError as exc:
            raise ApiError(422, "validation_failed", "Send text/csv or {\"rows\": [{\"email\", ...}]}",
                           details={"errors": exc.errors(include_url=False, include_context=False)}) from exc
        rows = [batches.InviteRow(line=i + 2, email=r.email, name=r.name, role=r.role) for i, r in enumerate(body.rows)]
    if dry_run:
        return ok([_row(r) for r in batches.invite_rows_check(actor=caller.actor, tenant=tenant, rows=rows)])
    result = batches.app_users_invite_many(actor=caller.actor, tenant=tenant, rows=rows)
    return ok({**result.as_dict(), "total": result.total})


def _json(request: HttpRequest) -> Any:
    import json

    try:
        return json.loads(request.body or b"{}")
    except ValueError as exc:
        raise ApiError(400, "bad_json", "The body is not JSON.") from exc


# --- One's own tokens ---------------------------------------------------------------------------


@router.get(f"{BASE}/me/tokens", response={200: Envelope, **ERRORS}, tags=["me"], operation_id="native_my_tokens")
def my_tokens(request: HttpRequest) -> HttpResponse:
    actor = _pat(request)
    return ok([{"id": str(t.pk), "name": t.name, "prefix": t.prefix, "read_only": t.read_only,
                "created_at": ts(t.created_at), "expires_at": ts(t.expires_at), "last_used_at": ts(t.last_used_at),
                "revoked_at": ts(t.revoked_at)} for t in credentials.staff_token_list(user=actor)])


@router.delete(f"{BASE}/me/tokens/{{token_id}}", response={200: Envelope, **ERRORS}, tags=["me"],
               operation_id="native_my_token_revoke")
def my_token_revoke(request: HttpRequest, token_id: str) -> HttpResponse:
    actor = _pat(request)
    token = credentials.staff_token_revoke(actor=actor, token_id=token_id)
    return ok({"id": str(token.pk), "revoked_at": ts(token.revoked_at)})

