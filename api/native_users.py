"""Native API: a tenant's app users (every console operation), batches, invitations, audit and
API keys. Same services, same permission matrix, same audit as the console."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from ninja import Schema
from pydantic import ConfigDict

from accounts.app_users import batches, selectors, services
from accounts.app_users.selectors import PER_PAGE_CHOICES, SORTS, STATUSES, UserFilters
from api.http import ApiError
from api.native import BASE, ERRORS, Meta, app_user_native, caller_for, ok, router, tenant_for
from api.serializers import ts
from audit import selectors as audit_selectors
from batchjobs import selectors as job_selectors
from batchjobs import services as job_services
from batchjobs.models import Job
from core.access import is_instance_admin
from core.policy import policy
from credentials import services as credentials
from credentials.models import ApiKey

U = f"{BASE}/tenants/{{slug}}/users"
ONE = f"{U}/{{user_id}}"


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")  # the native API refuses unknown members (422)


class Envelope(Schema):
    success: bool
    data: Any
    meta: Meta


def _date(value: str | None, name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, "validation_failed", f"{name}: enter a date as YYYY-MM-DD",
                       details={"fields": {name: ["Enter a date as YYYY-MM-DD."]}}) from exc


def _filters(q: str | None, status: str | None, role: str | None, mfa: str | None, created_from: str | None,
             created_to: str | None, signin_from: str | None, signin_to: str | None, sort: str | None) -> UserFilters:
    if status and status not in STATUSES:
        raise ApiError(400, "validation_failed", f"status: one of {', '.join(STATUSES)}")
    if mfa and mfa not in ("yes", "no"):
        raise ApiError(400, "validation_failed", "mfa: yes or no")
    if sort and sort not in SORTS:
        raise ApiError(400, "validation_failed", f"sort: one of {', '.join(SORTS)}")
    return UserFilters(
        q=(q or "")[:selectors.MAX_QUERY_LENGTH], status=status or "", role=role or "", mfa=mfa or "",
        created_from=_date(created_from, "created_from"), created_to=_date(created_to, "created_to"),
        signin_from=_date(signin_from, "signin_from"), signin_to=_date(signin_to, "signin_to"),
        sort=sort or "-created",
    )


def _user(tenant: Any, user_id: str) -> Any:
    user = selectors.app_user_get(tenant=tenant, user_id=user_id)
    if user is None:
        raise ApiError(404, "user_not_found", "No such user in this tenant.")
    return user


def _gate(request: HttpRequest, slug: str, action: str) -> tuple[Any, Any]:
    caller = caller_for(request)
    return tenant_for(request, caller, slug, action), caller.actor


# --- Reading -----------------------------------------------------------------------------------


@router.get(U, response={200: Envelope, **ERRORS}, tags=["users"], operation_id="native_users_list")
def users_list(request: HttpRequest, slug: str, q: str | None = None, status: str | None = None,
               role: str | None = None, mfa: str | None = None, created_from: str | None = None,
               created_to: str | None = None, signin_from: str | None = None, signin_to: str | None = None,
               sort: str | None = None, limit: int = 50, cursor: str | None = None) -> HttpResponse:
    """Keyset pages (``meta.next_cursor``), every filter of the console's list."""
    tenant, _actor = _gate(request, slug, "view_users")
    if limit not in PER_PAGE_CHOICES:
        raise ApiError(400, "validation_failed", f"limit: one of {', '.join(map(str, PER_PAGE_CHOICES))}")
    filters = _filters(q, status, role, mfa, created_from, created_to, signin_from, signin_to, sort)
    page = selectors.app_user_list(tenant=tenant, filters=filters, per_page=limit, cursor=cursor or "")
    headers = {"Link": f'<{request.path}?limit={limit}&cursor={page.next_cursor}>; rel="next"'} \
        if page.next_cursor else None
    return ok([app_user_native(u, full=False) for u in page.rows], headers=headers, extra_meta={
        "limit": limit, "next_cursor": page.next_cursor, "prev_cursor": page.prev_cursor,
        "total": page.total, "total_exact": page.total_exact})


CSV_RESPONSE = {"responses": {"200": {"description": "CSV, streamed",
                                       "content": {"text/csv": {"schema": {"type": "string"}}}}}}


@router.get(f"{U}/export.csv", tags=["users"], operation_id="native_users_export",
            response=ERRORS, openapi_extra=CSV_RESPONSE)
def users_export(request: HttpRequest, slug: str, q: str | None = None, status: str | None = None,
                 role: str | None = None, mfa: str | None = None, sort: str | None = None) -> HttpResponseBase:
    from accounts.app_users.csv_io import export_csv

    tenant, _actor = _gate(request, slug, "export_users")
    filters = _filters(q, status, role, mfa, None, None, None, None, sort)
    response = StreamingHttpResponse(export_csv(tenant=tenant, filters=filters), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-users.csv"'
    return response


@router.get(f"{U}/by-email", response={200: Envelope, **ERRORS}, tags=["users"],
            operation_id="native_user_by_email")
def user_by_email(request: HttpRequest, slug: str, email: str) -> HttpResponse:
    """Lookup by address (GoTrue's admin API has none): the canonical form, exact match."""
    tenant, _actor = _gate(request, slug, "view_users")
    user = selectors.app_user_by_email(tenant=tenant, email=email[:320])
    if user is None:
        raise ApiError(404, "user_not_found", "No user with this email address in this tenant.")
    return ok(app_user_native(user))


@router.get(ONE, response={200: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_get")
def user_get(request: HttpRequest, slug: str, user_id: str, expand: str | None = None) -> HttpResponse:
    """One user; ``expand=sessions,factors,links`` adds what hangs off it."""
    tenant, _actor = _gate(request, slug, "view_users")
    user = _user(tenant, user_id)
    data = app_user_native(user)
    parts = {p.strip() for p in (expand or "").split(",") if p.strip()}
    if "sessions" in parts:
        data["sessions"] = [_session(s) for s in selectors.app_user_sessions(tenant=tenant, user=user)]
    if "factors" in parts:
        data["factors"] = [_factor(f) for f in selectors.app_user_factors(tenant=tenant, user=user)]
    if "links" in parts:
        data["links"] = [_link(t) for t in selectors.app_user_pending_tokens(tenant=tenant, user=user)]
    return ok(data)


def _session(s: Any) -> dict[str, Any]:
    return {"id": str(s.pk), "created_at": ts(s.created_at), "last_seen_at": ts(s.last_seen_at),
            "expires_at": ts(s.expires_at), "ip_address": s.ip_address, "user_agent": s.user_agent,
            "aal": s.aal, "impersonated": bool(s.impersonator_id)}


def _factor(f: Any) -> dict[str, Any]:
    return {"id": str(f.pk), "kind": f.kind, "friendly_name": f.friendly_name, "confirmed_at": ts(f.confirmed_at),
            "last_used_at": ts(f.last_used_at), "created_at": ts(f.created_at)}


def _link(t: Any) -> dict[str, Any]:
    return {"id": str(t.pk), "purpose": t.purpose, "created_at": ts(t.created_at), "expires_at": ts(t.expires_at)}


def _entry(e: Any) -> dict[str, Any]:
    view = audit_selectors.present(e)
    return {
        "id": e.pk, "timestamp": ts(e.timestamp), "event": e.event, "action": view.action,
        "actor": {"id": str(e.actor_id) if e.actor_id else None, "email": view.actor},
        "impersonator": view.impersonator or None, "tenant": (e.additional_data or {}).get("tenant"),
        "target": {"type": view.target_type, "id": e.object_pk, "repr": e.object_repr},
        "changes": audit_selectors._mask(e.changes or {}), "data": audit_selectors._mask(e.additional_data or {}),
        "remote_addr": e.remote_addr, "request_id": e.cid,
    }


def _part(part: str):
    def view(request: HttpRequest, slug: str, user_id: str, limit: int = 50) -> HttpResponse:
        tenant, _actor = _gate(request, slug, "view_users")
        user = _user(tenant, user_id)
        limit = max(1, min(limit, 200))
        if part == "sessions":
            return ok([_session(s) for s in selectors.app_user_sessions(tenant=tenant, user=user, limit=limit)])
        if part == "factors":
            return ok([_factor(f) for f in selectors.app_user_factors(tenant=tenant, user=user)])
        if part == "links":
            return ok([_link(t) for t in selectors.app_user_pending_tokens(tenant=tenant, user=user)])
        return ok([_entry(e) for e in selectors.app_user_history(tenant=tenant, user=user, limit=limit)])

    view.__name__ = f"user_{part}"
    return view


for _part_name in ("sessions", "factors", "links", "history"):
    router.get(f"{ONE}/{_part_name}", response={200: Envelope, **ERRORS}, tags=["users"],
               operation_id=f"native_user_{_part_name}")(_part(_part_name))


@router.get(f"{BASE}/tenants/{{slug}}/invitations", response={200: Envelope, **ERRORS}, tags=["users"],
            operation_id="native_invitations")
def invitations(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _actor = _gate(request, slug, "view_invitations")
    return ok([{**app_user_native(u, full=False), "invite_expires_at": ts(getattr(u, "invite_expires_at", None))}
               for u in selectors.invitation_list(tenant=tenant)])


# --- Changing ----------------------------------------------------------------------------------


class UserCreate(Strict):
    email: str
    name: str = ""
    role: str = ""
    password: str = ""
    send_invitation: bool = False
    email_confirmed: bool = False
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None


class UserInvite(Strict):
    email: str
    name: str = ""
    role: str = ""
    user_metadata: dict[str, Any] | None = None


class UserPatch(Strict):
    name: str | None = None
    email: str | None = None
    role: str | None = None
    user_metadata: dict[str, Any] | None = None
    app_metadata: dict[str, Any] | None = None


class RolePatch(Strict):
    role: str


class Ban(Strict):
    duration: Literal["1h", "24h", "7d", "30d", "forever", "until"] = "24h"
    until: dt.datetime | None = None
    reason: str = ""


class Recovery(Strict):
    sign_out: bool = False


class SignOut(Strict):
    session_id: str | None = None


def _created(request: HttpRequest, slug: str, user: Any, data: Any = None) -> HttpResponse:
    return ok(data if data is not None else app_user_native(user), status=201,
              headers={"Location": f"{BASE}/tenants/{slug}/users/{user.pk}"})


@router.post(U, response={201: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_create")
def user_create(request: HttpRequest, slug: str, body: UserCreate) -> HttpResponse:
    tenant, actor = _gate(request, slug, "create_user")
    user = services.app_user_create(
        actor=actor, tenant=tenant, email=body.email, name=body.name, role=body.role, password=body.password,
        send_invitation=body.send_invitation, confirmed=body.email_confirmed,
        user_metadata=body.user_metadata, app_metadata=body.app_metadata,
    )
    return _created(request, slug, user)


@router.post(f"{U}/invite", response={201: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_invite")
def user_invite(request: HttpRequest, slug: str, body: UserInvite) -> HttpResponse:
    tenant, actor = _gate(request, slug, "invite_user")
    user = services.app_user_invite(actor=actor, tenant=tenant, email=body.email, name=body.name, role=body.role,
                                    user_metadata=body.user_metadata)
    return _created(request, slug, user, {"user": app_user_native(user), "email_sent": True})


@router.patch(ONE, response={200: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_update")
def user_update(request: HttpRequest, slug: str, user_id: str, body: UserPatch) -> HttpResponse:
    """Only the members present change; metadata objects replace (the GoTrue surface merges)."""
    tenant, actor = _gate(request, slug, "edit_user")
    user = _user(tenant, user_id)
    changes = body.model_dump(exclude_unset=True)
    user = services.app_user_update(actor=actor, tenant=tenant, user_id=user.pk, **changes)
    return ok(app_user_native(user))


@router.patch(f"{ONE}/role", response={200: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_role")
def user_role(request: HttpRequest, slug: str, user_id: str, body: RolePatch) -> HttpResponse:
    tenant, actor = _gate(request, slug, "change_role")
    user = services.app_user_update(actor=actor, tenant=tenant, user_id=_user(tenant, user_id).pk, role=body.role)
    return ok(app_user_native(user))


@router.delete(ONE, response={200: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_delete")
def user_delete(request: HttpRequest, slug: str, user_id: str, hard: bool = False) -> HttpResponse:
    tenant, actor = _gate(request, slug, "delete_user")
    user = _user(tenant, user_id)
    services.app_user_delete(actor=actor, tenant=tenant, user_id=user.pk, hard=hard)
    return ok({"id": str(user.pk), "deleted": "hard" if hard else "soft"})


@router.post(f"{ONE}/ban", response={200: Envelope, **ERRORS}, tags=["users"], operation_id="native_user_ban")
def user_ban(request: HttpRequest, slug: str, user_id: str, body: Ban | None = None) -> HttpResponse:
    tenant, actor = _gate(request, slug, "ban_user")
    body = body or Ban()
    until = services.ban_until_for(body.duration, until=body.until)
    user = services.app_user_ban(actor=actor, tenant=tenant, user_id=_user(tenant, user_id).pk, until=until,
                                 reason=body.reason)
    return ok(app_user_native(user))


def _simple(action: str, permission: str):
    def view(request: HttpRequest, slug: str, user_id: str) -> HttpResponse:
        tenant, actor = _gate(request, slug, permission)
        pk = _user(tenant, user_id).pk
        if action == "unban":
            return ok(app_user_native(services.app_user_unban(actor=actor, tenant=tenant, user_id=pk)))
        if action == "confirm-email":
            return ok(app_user_native(services.app_user_confirm_email(actor=actor, tenant=tenant, user_id=pk)))
        if action == "magic-link":
            token = services.app_user_send_magic_link(actor=actor, tenant=tenant, user_id=pk)
            return ok({"expires_at": ts(token.expires_at)})
        if action == "resend-invitation":
            token = services.app_user_invitation_resend(actor=actor, tenant=tenant, user_id=pk)
            return ok({"expires_at": ts(token.expires_at)})
        services.app_user_invitation_revoke(actor=actor, tenant=tenant, user_id=pk)
        return ok({"id": str(pk), "revoked": True})

    view.__name__ = f"user_{action.replace('-', '_')}"
    return view


for _action, _permission in (("unban", "unban_user"), ("confirm-email", "confirm_email"),
                             ("magic-link", "send_magic_link"), ("resend-invitation", "resend_invitation"),
                             ("revoke-invitation", "revoke_invitation")):
    router.post(f"{ONE}/{_action}", response={200: Envelope, **ERRORS}, tags=["users"],
                operation_id=f"native_user_{_action.replace('-', '_')}")(_simple(_action, _permission))


def _recovery(request: HttpRequest, slug: str, user_id: str, body: Recovery | None = None) -> HttpResponse:
    tenant, actor = _gate(request, slug, "send_recovery")
    token = services.app_user_send_recovery(actor=actor, tenant=tenant, user_id=_user(tenant, user_id).pk,
                                            sign_out=bool(body and body.sign_out))
    return ok({"expires_at": ts(token.expires_at)})


router.post(f"{ONE}/recovery", response={200: Envelope, **ERRORS}, tags=["users"],
            operation_id="native_user_recovery")(_recovery)
router.post(f"{ONE}/reset-password", response={200: Envelope, **ERRORS}, tags=["users"],
            operation_id="native_user_reset_password")(_recovery)


@router.post(f"{ONE}/sign-out", response={200: Envelope, **ERRORS}, tags=["users"],
             operation_id="native_user_sign_out")
def user_sign_out(request: HttpRequest, slug: str, user_id: str, body: SignOut | None = None) -> HttpResponse:
    """End one session (``session_id``) or all of them: GoTrue's API cannot sign out by user id."""
    tenant, actor = _gate(request, slug, "sign_out_user")
    ended = services.app_user_sign_out(actor=actor, tenant=tenant, user_id=_user(tenant, user_id).pk,
                                       session_id=body.session_id if body else None)
    return ok({"sessions_ended": ended})


@router.delete(f"{ONE}/factors", response={200: Envelope, **ERRORS}, tags=["users"],
               operation_id="native_user_factors_remove")
def factors_remove(request: HttpRequest, slug: str, user_id: str) -> HttpResponse:
    tenant, actor = _gate(request, slug, "remove_factor")
    return ok({"removed": services.app_user_factor_remove(actor=actor, tenant=tenant,
                                                          user_id=_user(tenant, user_id).pk)})


@router.delete(f"{ONE}/factors/{{factor_id}}", response={200: Envelope, **ERRORS}, tags=["users"],
               operation_id="native_user_factor_remove")
def factor_remove(request: HttpRequest, slug: str, user_id: str, factor_id: str) -> HttpResponse:
    tenant, actor = _gate(request, slug, "remove_factor")
    return ok({"removed": services.app_user_factor_remove(actor=actor, tenant=tenant,
                                                          user_id=_user(tenant, user_id).pk, factor_id=factor_id)})


# --- Batches -----------------------------------------------------------------------------------


class BatchFilter(Strict):
    q: str = ""
    status: str = ""
    role: str = ""
    mfa: str = ""


class Batch(Strict):
    # Every batch action of the console (accounts.app_users.job_actions.ACTIONS).
    action: Literal["ban", "unban", "send_recovery", "send_magic_link", "sign_out", "resend_invitation",
                    "delete", "hard_delete", "change_role", "confirm_email"]
    user_ids: list[str] | None = None
    filter: BatchFilter | None = None
    expected_count: int | None = None
    duration: Literal["1h", "24h", "7d", "30d", "forever", "until"] | None = None
    until: dt.datetime | None = None
    reason: str = ""
    sign_out: bool = False
    role: str = ""  # change_role: the new role


def _batch_as_job(job: Job) -> dict[str, Any]:
    """A job done in the request, reported as an in-request batch is (the same members)."""
    def items(result: str) -> list[dict[str, str]]:
        rows, _next = job_selectors.job_outcomes(job, result=result, limit=batches.REPORT_LIMIT)
        return [{"user_id": str(r.user_id or ""), "email": r.email, "error": r.reason} for r in rows]

    return {"action": job.action, "processed": job.processed, "skipped": job.skipped,
            "errors": items("error"), "skipped_items": items("skipped"), "error_count": job.errors,
            "success": job.errors == 0, "total": job.processed + job.skipped + job.errors, "job": str(job.pk)}


@router.post(f"{U}/batch", response={200: Envelope, 202: Envelope, **ERRORS}, tags=["batches"],
             operation_id="native_users_batch")
def users_batch(request: HttpRequest, slug: str, body: Batch) -> HttpResponse:
    """One action on many users, Supamode's per-item result (``processed``, ``skipped``, ``errors``).
    Over ``policy().job_inline_max`` users: a batch job, 202 Accepted with it (staff token or
    service key alike)."""
    tenant, actor = _gate(request, slug, "view_users")
    if (body.user_ids is None) == (body.filter is None):
        raise ApiError(422, "validation_failed", "Give exactly one of user_ids and filter")
    if body.user_ids is not None:
        selection = batches.Selection(ids=tuple(body.user_ids))
    else:
        assert body.filter is not None
        selection = batches.Selection(filters=_filters(body.filter.q, body.filter.status, body.filter.role,
                                                       body.filter.mfa, None, None, None, None, None))
    count = batches.selection_count(tenant=tenant, selection=selection)
    if body.expected_count is not None and count != body.expected_count:
        raise ApiError(409, "selection_changed", f"The selection now has {count} users, not {body.expected_count}")
    large = count > policy().job_inline_max
    if large or body.action not in batches.ACTIONS:
        # A batch job (frozen snapshot): a large one on the job workers, 202 with the job; a small
        # one of the actions only jobs run (magic link, permanent delete, role, confirm) here.
        job = job_services.batch_start(actor=actor, tenant=tenant, action=body.action, selection=selection, options={
            "duration": body.duration or "24h", "until": body.until if body.duration == "until" else None,
            "reason": body.reason, "sign_out": body.sign_out, "role": body.role,
        }, inline=not large)
        if job.state in (Job.State.QUEUED, Job.State.RUNNING, Job.State.SCHEDULED):
            return ok(job_json(job), status=202,
                      headers={"Location": f"{BASE}/tenants/{tenant.slug}/jobs/{job.pk}"})
        return ok(_batch_as_job(job))
    until = services.ban_until_for(body.duration or "24h", until=body.until) if body.action == "ban" else None
    result = batches.app_users_batch(actor=actor, tenant=tenant, action=body.action, selection=selection,
                                     until=until, reason=body.reason, sign_out=body.sign_out)
    return ok({**result.as_dict(), "total": result.total})


def job_json(job: Job) -> dict[str, Any]:
    """A batch job as the API shows it (``GET .../jobs/<id>`` follows it to the end)."""
    progress = job_selectors.job_progress(job)
    return {
        "id": str(job.pk), "kind": job.kind, "action": job.action, "state": job.state,
        "total": job.total, "preview_skipped": job.preview_skipped, "skip_reasons": job.skip_reasons,
        "processed": job.processed, "skipped": job.skipped, "errors": job.errors,
        "percent": progress.percent, "rate": round(progress.rate, 1) if progress.rate else None,
        "seconds_left": progress.seconds_left, "created_at": ts(job.created_at), "started_at": ts(job.started_at),
        "scheduled_for": ts(job.scheduled_for), "finished_at": ts(job.finished_at), "actor": job.actor_email,
    }


# --- Audit and API keys ------------------------------------------------------------------------


def _audit(request: HttpRequest, tenant: Any, *, export: bool) -> HttpResponseBase:
    filters = audit_selectors.AuditFilters.from_query(request.GET, allow_tenant=tenant is None)
    if filters.errors:
        raise ApiError(400, "validation_failed", "Bad audit filters", details={"fields": filters.errors})
    qs = audit_selectors.audit_entries(tenant=tenant, filters=filters)
    if export:
        def rows():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(audit_selectors.CSV_HEADER)
            for row in audit_selectors.csv_rows(qs):
                writer.writerow(row)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            yield buffer.getvalue()

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response
    try:
        limit = max(1, min(int(request.GET.get("limit", "50")), 200))
    except ValueError as exc:
        raise ApiError(400, "validation_failed", "limit: a number up to 200") from exc
    page = audit_selectors.audit_page(qs, cursor=request.GET.get("cursor", ""), size=limit)
    return ok([_entry(v.entry) for v in page.entries], extra_meta={"limit": limit, "next_cursor": page.next_cursor})


@router.get(f"{BASE}/tenants/{{slug}}/audit", response={200: Envelope, **ERRORS}, tags=["audit"],
            operation_id="native_tenant_audit")
def tenant_audit(request: HttpRequest, slug: str) -> HttpResponseBase:
    tenant, _actor = _gate(request, slug, "view_audit")
    return _audit(request, tenant, export=False)


@router.get(f"{BASE}/tenants/{{slug}}/audit/export.csv", response=ERRORS, tags=["audit"],
            operation_id="native_tenant_audit_export", openapi_extra=CSV_RESPONSE)
def tenant_audit_export(request: HttpRequest, slug: str) -> HttpResponseBase:
    tenant, _actor = _gate(request, slug, "view_audit")
    return _audit(request, tenant, export=True)


def _instance_admin(request: HttpRequest) -> Any:
    caller = caller_for(request, keys_allowed=False)
    if not is_instance_admin(caller.actor):
        raise ApiError(403, "not_admin", "Instance admins only.")
    return caller.actor


@router.get(f"{BASE}/audit", response={200: Envelope, **ERRORS}, tags=["audit"], operation_id="native_audit")
def instance_audit(request: HttpRequest) -> HttpResponseBase:
    _instance_admin(request)
    return _audit(request, None, export=False)


@router.get(f"{BASE}/audit/export.csv", response=ERRORS, tags=["audit"],
            operation_id="native_audit_export", openapi_extra=CSV_RESPONSE)
def instance_audit_export(request: HttpRequest) -> HttpResponseBase:
    _instance_admin(request)
    return _audit(request, None, export=True)


def _key(k: ApiKey) -> dict[str, Any]:
    return {"id": str(k.pk), "name": k.name, "prefix": k.prefix, "role": k.role,
            "created_by": k.created_by.email if k.created_by else None, "created_at": ts(k.created_at),
            "expires_at": ts(k.expires_at), "last_used_at": ts(k.last_used_at), "revoked_at": ts(k.revoked_at)}


def _key_manager(request: HttpRequest, slug: str) -> tuple[Any, Any]:
    caller = caller_for(request, keys_allowed=False)  # a leaked service key never manages keys
    return tenant_for(request, caller, slug, "manage_api_keys"), caller.actor


@router.get(f"{BASE}/tenants/{{slug}}/api-keys", response={200: Envelope, **ERRORS}, tags=["api-keys"],
            operation_id="native_api_keys")
def api_keys(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _actor = _key_manager(request, slug)
    return ok([_key(k) for k in credentials.api_key_list(tenant=tenant)])


@router.delete(f"{BASE}/tenants/{{slug}}/api-keys/{{key_id}}", response={200: Envelope, **ERRORS},
               tags=["api-keys"], operation_id="native_api_key_revoke")
def api_key_revoke(request: HttpRequest, slug: str, key_id: str) -> HttpResponse:
    tenant, actor = _key_manager(request, slug)
    return ok(_key(credentials.api_key_revoke(actor=actor, tenant=tenant, ref=key_id)))
