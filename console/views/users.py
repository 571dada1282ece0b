"""The users console: list, detail, and every action on one user or a batch of them.

Each view: gate (verified staff, tenant + role via ``tenant_view``, recent OTP for destructive
actions) → form → one service call → redirect (or the page again with its errors). The tenant
always comes from the URL; a user id of another tenant answers 404 like an unknown one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.app_users import batches, csv_io, job_actions, selectors, services
from accounts.app_users import timeline as timeline_sel
from accounts.app_users.forms import (
    BATCH_ACTIONS,
    BanForm,
    BatchForm,
    CreateUserForm,
    DeleteForm,
    ImportForm,
    InviteForm,
    MetadataForm,
    ProfileForm,
    RecoveryForm,
    UserFilterForm,
)
from accounts.models import AppUser
from accounts.services import staff as staff_services
from batchjobs import services as job_services
from console.confirm import confirm_first
from console.decorators import audit_refusal, recent_otp_required, tenant_view
from console.errors import flash, form_add
from console.http import ConsoleRequest
from console.views import jobs
from core.access import MATRIX, role_can
from core.emails import same_email
from core.errors import Invalid, NotFound, ServiceError
from core.moments import query_moment
from core.policy import policy
from tenants.config import tenant_settings


def _perms(request: ConsoleRequest) -> dict[str, bool]:
    return {action: role_can(request.tenant_role, action) for action in MATRIX}


def _user_or_404(request: ConsoleRequest, user_id: Any) -> AppUser:
    user = selectors.app_user_get(tenant=request.tenant, user_id=user_id)
    if user is None:
        raise Http404("No such user.")
    return user


def _detail_url(request: ConsoleRequest, user_id: Any) -> str:
    return reverse("console:users-detail", args=[request.tenant.slug, user_id])


def _list_url(request: ConsoleRequest, params: dict | None = None) -> str:
    url = reverse("console:users-list", args=[request.tenant.slug])
    return f"{url}?{urlencode(params)}" if params else url


def _act(request: ConsoleRequest, user_id: Any, call: Callable[[AppUser], Any], success: str,
         *, gone: bool = False) -> HttpResponse:
    """Run one service on one user; report its outcome as a message and go back (a user,
    session or factor that is not there: 404)."""
    user = _user_or_404(request, user_id)
    try:
        call(user)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ServiceError as exc:
        flash(request, exc)
        return redirect(_detail_url(request, user.pk))
    messages.success(request, success.format(email=user.email))
    return redirect(_list_url(request) if gone else _detail_url(request, user.pk))


def _form_error(request: ConsoleRequest, form: forms.Form) -> None:
    """A one-click form that did not parse: its errors as messages on the page it goes back to."""
    if form.is_valid():
        return
    for field, errors in form.errors.items():
        label = form.fields[field].label or field.replace("_", " ") if field != "__all__" else ""
        for error in errors:
            messages.error(request, f"{str(label).capitalize()}: {error}" if label else str(error))


# --- List ------------------------------------------------------------------------------------


def _sort_links(filters: selectors.UserFilters, per_page: int) -> dict[str, dict[str, str]]:
    links = {}
    for key in ("created", "last_sign_in", "email", "name", "role", "status"):
        current = filters.sort.lstrip("-") == key
        descending = filters.sort.startswith("-")
        if current:
            new = key if descending else f"-{key}"
        else:
            new = key if key in ("email", "name", "role", "status") else f"-{key}"
        params = {**filters.as_params(), "sort": new}
        if per_page != selectors.DEFAULT_PER_PAGE:
            params["per_page"] = str(per_page)
        links[key] = {
            "url": "?" + urlencode(params),
            "state": ("descending" if descending else "ascending") if current else "none",
        }
    return links


def _page_start(request: ConsoleRequest, page: selectors.UserPage) -> int:
    """The position of the page's first row, carried by the pager links (``at``); 1 without a
    cursor. Display only: a keyset page does not know its offset, the links count for it."""
    if not request.GET.get("cursor"):
        return 1
    try:
        at = int(request.GET.get("at", "1")[:9])
    except ValueError:
        return 1
    return at if 1 <= at <= max(page.total, 1) else 1


@require_POST
@tenant_view("view_users")
def user_columns(request: ConsoleRequest) -> HttpResponse:
    """Save the columns this staff member wants in the users list, then back to the list."""
    staff_services.staff_user_columns_set(actor=request.user, shown=request.POST.getlist("show"))
    back = request.POST.get("next", "")
    list_url = _list_url(request)
    return redirect(back if back.startswith(list_url) else list_url)


@require_GET
@tenant_view("view_users")
def user_list(request: ConsoleRequest) -> HttpResponse:
    settings = tenant_settings(request.tenant)
    form = UserFilterForm(request.GET, settings=settings)
    filters = form.filters()
    per_page = form.value("per_page") or selectors.DEFAULT_PER_PAGE
    if request.GET.get("count") == "1":  # the exact capped total, asked for after the rows
        return _user_total(request, filters)
    page = selectors.app_user_list(
        tenant=request.tenant, filters=filters, per_page=per_page, cursor=form.value("cursor") or "",
        defer_total=True,
    )
    params = filters.as_params()
    if per_page != selectors.DEFAULT_PER_PAGE:
        params["per_page"] = str(per_page)
    perms = _perms(request)
    start = _page_start(request, page) if page.rows else 0
    context = {
        "tenant": request.tenant,
        "form": form,
        "filters": filters,
        "page": page,
        "per_page": per_page,
        "query": urlencode(params),
        "filter_params": sorted(filters.as_params().items()),
        "next_url": "?" + urlencode({**params, "cursor": page.next_cursor, "at": start + len(page.rows)})
        if page.next_cursor else "",
        "prev_url": "?" + urlencode({**params, "cursor": page.prev_cursor, "at": max(1, start - per_page)})
        if page.prev_cursor else "",
        "range_start": start, "range_end": start + len(page.rows) - 1 if page.rows else 0,
        "ignored_filters": [form.fields[name].label or name.replace("_", " ") for name in form.errors
                            if name not in ("cursor", "__all__")],
        "sort_links": _sort_links(filters, per_page),
        "column_choices": list(staff_services.USER_COLUMNS.items()),
        "hidden_columns": [c for c in request.user.hidden_user_columns.split(",") if c in staff_services.USER_COLUMNS],
        "perms": perms,
        "count_url": "?" + urlencode({**filters.as_params(), "count": "1"}),
        "batch_actions": [(k, v) for k, v in BATCH_ACTIONS.items() if perms[job_actions.ACTIONS[k]]],
        "roles": settings.roles,
        **jobs.indicator_context(request.tenant),
        "now": timezone.now(),
    }
    partial = request.htmx and request.htmx.target == "users-table"
    template = "console/users/list.html" + ("#users-table" if partial else "")
    return render(request, template, context)


def _user_total(request: ConsoleRequest, filters: selectors.UserFilters) -> HttpResponse:
    """The users page's total when its first count stopped early (``UserPage.total_deferred``):
    the exact count up to the cap, as the fragment that replaces the provisional one."""
    cap = policy().exact_count_cap
    total = selectors.app_user_matching_count(tenant=request.tenant, filters=filters, cap=cap)
    page = selectors.UserPage(rows=[], per_page=0, total=min(total, cap), total_exact=total <= cap,
                              filters=filters)
    return render(request, "console/users/list.html#users-total", {"page": page, "filters": filters})


@require_GET
@tenant_view("export_users")
def user_export(request: ConsoleRequest) -> StreamingHttpResponse:
    filters = UserFilterForm(request.GET, settings=tenant_settings(request.tenant)).filters()
    lines = csv_io.app_user_export(actor=request.user, tenant=request.tenant, filters=filters)
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="users-{request.tenant.slug}-{stamp}.csv"'
    return response


# --- Creating and inviting ---------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_view("invite_user")
def user_invite(request: ConsoleRequest) -> HttpResponse:
    settings = tenant_settings(request.tenant)
    form = InviteForm(request.POST or None, settings=settings)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.app_user_invite(
                actor=request.user, tenant=request.tenant, email=form.cleaned_data["email"],
                name=form.cleaned_data["name"], role=form.cleaned_data["role"],
                user_metadata=form.cleaned_data["user_metadata"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, f"Invitation sent to {user.email}.")
            return redirect(_detail_url(request, user.pk))
    return render(request, "console/users/invite.html", {"form": form, "tenant": request.tenant,
                                                             "settings": settings})


@require_http_methods(["GET", "POST"])
@tenant_view("create_user")
def user_create(request: ConsoleRequest) -> HttpResponse:
    settings = tenant_settings(request.tenant)
    form = CreateUserForm(request.POST or None, settings=settings)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.app_user_create(
                actor=request.user, tenant=request.tenant, email=data["email"], name=data["name"],
                role=data["role"], password=data["password"] if data["mode"] == "password" else "",
                send_invitation=data["mode"] == "invite", confirmed=data["confirmed"],
                user_metadata=data["user_metadata"], app_metadata=data["app_metadata"],
            )
        except ServiceError as exc:
            form_add(form, exc)
        else:
            messages.success(request, f"{user.email} was created.")
            return redirect(_detail_url(request, user.pk))
    return render(request, "console/users/create.html", {"form": form, "tenant": request.tenant,
                                                             "settings": settings})


# --- Detail ------------------------------------------------------------------------------------


_EMPTY: tuple[Any, ...] = (None, "", {}, [], False)


def _timeline(request: ConsoleRequest, user: AppUser) -> timeline_sel.TimelinePage:
    """The timeline page the query asks for (``kind`` repeated, ``before`` an ISO time)."""
    before = query_moment(request.GET.get("before"))  # malformed or off the calendar: the first page
    return timeline_sel.app_user_timeline(tenant=request.tenant, user=user,
                                          kinds=request.GET.getlist("kind")[:10], before=before)


@require_GET
@tenant_view("view_users")
def user_detail(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _detail_page(request, _user_or_404(request, user_id))


def _detail_page(request: ConsoleRequest, user: AppUser, *, ban_form: BanForm | None = None) -> HttpResponse:
    """The user page; with a bound ``ban_form`` its errors sit on the ban fields (status 400)."""
    tenant = request.tenant
    timeline = _timeline(request, user)
    if request.htmx and request.htmx.target == "user-timeline":
        return render(request, "console/users/detail.html#user-timeline",
                      {"tenant": tenant, "u": user, "timeline": timeline, "timeline_kinds": timeline_sel.KINDS})
    settings = tenant_settings(tenant)
    context = {
        "timeline": timeline, "timeline_kinds": timeline_sel.KINDS,
        "tenant": tenant,
        "u": user,
        "perms": _perms(request),
        "sessions": selectors.app_user_sessions(tenant=tenant, user=user),
        "factors": selectors.app_user_factors(tenant=tenant, user=user),
        "tokens": selectors.app_user_pending_tokens(tenant=tenant, user=user),
        "empty": _EMPTY,
        "profile_form": ProfileForm(
            initial={"email": user.email, "name": user.name, "role": user.role}, settings=settings
        ),
        "metadata_form": MetadataForm(initial={
            "user_metadata": json.dumps(user.user_metadata, indent=2, ensure_ascii=False),
            "app_metadata": json.dumps(user.app_metadata, indent=2, ensure_ascii=False),
        }),
        "ban_form": ban_form or BanForm(),
        "protected": user.role in settings.protected_roles,
        "now": timezone.now(),
    }
    return render(request, "console/users/detail.html", context, status=400 if ban_form is not None else 200)


# --- One-user actions --------------------------------------------------------------------------


@require_POST
@tenant_view("edit_user")
def user_edit(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponseBase:
    form = ProfileForm(request.POST, settings=tenant_settings(request.tenant))
    if not form.is_valid():
        _form_error(request, form)
        return redirect(_detail_url(request, _user_or_404(request, user_id).pk))
    user = _user_or_404(request, user_id)
    if not same_email(form.cleaned_data["email"], user.email):
        # A new address is how an account is taken over (its links go there): step up first.
        return recent_otp_required(_user_edit_save)(request, user, form.cleaned_data)
    return _user_edit_save(request, user, form.cleaned_data)


def _user_edit_save(request: ConsoleRequest, user: AppUser, data: dict[str, Any]) -> HttpResponse:
    saved = "Profile saved."
    if not same_email(data["email"], user.email):
        new = data["email"].replace("{", "{{").replace("}", "}}")  # _act formats the message
        saved = (f"Profile saved. The address changes to {new} when the link just mailed there is "
                 "opened; {email} has been told.")
    return _act(request, user.pk, lambda u: services.app_user_update(
        actor=request.user, tenant=request.tenant, user_id=u.pk, name=data["name"],
        email=data["email"], role=data["role"],
    ), saved)


@require_POST
@tenant_view("edit_user")
def user_metadata(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    form = MetadataForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return redirect(_detail_url(request, _user_or_404(request, user_id).pk))
    data = form.cleaned_data
    return _act(request, user_id, lambda u: services.app_user_update(
        actor=request.user, tenant=request.tenant, user_id=u.pk,
        user_metadata=data["user_metadata"], app_metadata=data["app_metadata"],
    ), "Metadata saved.")


@require_POST
@tenant_view("ban_user")
@confirm_first
@recent_otp_required
def user_ban(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    # Errors go on the ban form's fields, once each (no flash message): the page is answered again.
    form = BanForm(request.POST)
    user = _user_or_404(request, user_id)
    if not form.is_valid():
        return _detail_page(request, user, ban_form=form)
    try:
        until = services.ban_until_for(form.cleaned_data["duration"], until=form.cleaned_data["until"])
        services.app_user_ban(actor=request.user, tenant=request.tenant, user_id=user.pk,
                              until=until, reason=form.cleaned_data["reason"])
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except Invalid as exc:
        form_add(form, exc)
        return _detail_page(request, user, ban_form=form)
    except ServiceError as exc:
        flash(request, exc)
        return redirect(_detail_url(request, user.pk))
    messages.success(request, f"{user.email} is banned and signed out everywhere.")
    return redirect(_detail_url(request, user.pk))


@require_POST
@tenant_view("unban_user")
def user_unban(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _act(request, user_id, lambda u: services.app_user_unban(
        actor=request.user, tenant=request.tenant, user_id=u.pk), "{email} is no longer banned.")


@require_POST
@tenant_view("send_recovery")
def user_recovery(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    sign_out = RecoveryForm(request.POST).is_valid() and bool(request.POST.get("sign_out"))
    done = "A password-recovery link was sent to {email}" + (" and every session ended." if sign_out else ".")
    return _act(request, user_id, lambda u: services.app_user_send_recovery(
        actor=request.user, tenant=request.tenant, user_id=u.pk, sign_out=sign_out), done)


@require_POST
@tenant_view("send_magic_link")
def user_magic_link(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _act(request, user_id, lambda u: services.app_user_send_magic_link(
        actor=request.user, tenant=request.tenant, user_id=u.pk), "A magic link was sent to {email}.")


@require_POST
@tenant_view("sign_out_user")
@confirm_first
def user_sign_out(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    session_id = request.POST.get("session_id") or None
    done = "The session was ended." if session_id else "{email} was signed out everywhere."
    return _act(request, user_id, lambda u: services.app_user_sign_out(
        actor=request.user, tenant=request.tenant, user_id=u.pk, session_id=session_id), done)


@require_POST
@tenant_view("remove_factor")
@confirm_first
@recent_otp_required
def user_factor_remove(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    factor_id = request.POST.get("factor_id") or None
    done = "The factor was removed." if factor_id else "Every factor of {email} was removed."
    return _act(request, user_id, lambda u: services.app_user_factor_remove(
        actor=request.user, tenant=request.tenant, user_id=u.pk, factor_id=factor_id), done)


@require_POST
@tenant_view("confirm_email")
def user_confirm_email(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _act(request, user_id, lambda u: services.app_user_confirm_email(
        actor=request.user, tenant=request.tenant, user_id=u.pk), "The address {email} is confirmed.")


@require_POST
@tenant_view("resend_invitation")
def user_resend_invitation(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    return _act(request, user_id, lambda u: services.app_user_invitation_resend(
        actor=request.user, tenant=request.tenant, user_id=u.pk), "A new invitation was sent to {email}.")


@require_POST
@tenant_view("delete_user")
@confirm_first
@recent_otp_required
def user_delete(request: ConsoleRequest, user_id: uuid.UUID) -> HttpResponse:
    form = DeleteForm(request.POST)
    if not form.is_valid():
        _form_error(request, form)
        return redirect(_detail_url(request, _user_or_404(request, user_id).pk))
    hard = form.cleaned_data["mode"] == "hard"
    done = "{email} was deleted permanently." if hard else "{email} was deleted."
    return _act(request, user_id, lambda u: services.app_user_delete(
        actor=request.user, tenant=request.tenant, user_id=u.pk, hard=hard), done, gone=hard)


# --- Batches: a frozen preview, then a job (console.views.jobs shows and starts it) -------------

# Actions with options, chosen on a page of their own before the preview freezes the targets.
_OPTION_ACTIONS = frozenset({"ban", "change_role", "send_recovery"})
_OPTION_FIELDS = {"csrfmiddlewaretoken", "confirm", "duration", "until", "reason", "sign_out", "role"}


@require_POST
@tenant_view("view_users")
def users_batch(request: ConsoleRequest) -> HttpResponseBase:
    action = request.POST.get("action", "")
    if action not in job_actions.ACTIONS:
        messages.error(request, "Choose an action for the selected users.")
        return redirect(_list_url(request))
    if not role_can(request.tenant_role, job_actions.ACTIONS[action]):
        audit_refusal(request, action=job_actions.ACTIONS[action], reason="role", tenant=request.tenant)
        raise PermissionDenied("Your role in this tenant does not allow this.")
    run: Callable[..., HttpResponseBase] = _users_batch_preview
    if action in job_actions.DESTRUCTIVE:
        run = recent_otp_required(run)
    return run(request, action)


def _users_batch_preview(request: ConsoleRequest, action: str) -> HttpResponse:
    """Options first when the action has some; then freeze the targets and show the preview."""
    tenant = request.tenant
    settings = tenant_settings(tenant)
    form = BatchForm(request.POST)
    filters = UserFilterForm(request.POST, settings=settings).filters()
    back = _list_url(request, filters.as_params())
    if not form.is_valid():
        _form_error(request, form)
        return redirect(back)
    data = form.cleaned_data
    if action in _OPTION_ACTIONS and not data["confirm"]:
        return _batch_options(request, action, data, back=back, filters=filters)
    selection = (
        batches.Selection(filters=filters) if data["scope"] == "all"
        else batches.Selection(ids=tuple(data["ids"]))
    )
    options = {
        "duration": data["duration"], "until": data["until"] if data["duration"] == "until" else None,
        "reason": data["reason"], "sign_out": data["sign_out"], "role": data["role"],
    }
    try:
        job = job_services.batch_preview(actor=request.user, tenant=tenant, action=action, selection=selection,
                                         options=options)
    except ServiceError as exc:
        if action in _OPTION_ACTIONS:
            return _batch_options(request, action, data, back=back, filters=filters, error=exc.message)
        flash(request, exc)
        return redirect(back)
    return redirect(reverse("console:job-detail", args=[tenant.slug, job.pk]))


def _batch_options(request: ConsoleRequest, action: str, data: dict[str, Any], *, back: str,
                   filters: selectors.UserFilters, error: str = "") -> HttpResponse:
    context = {
        "tenant": request.tenant, "action": action, "label": BATCH_ACTIONS[action], "scope": data["scope"],
        "selected": len(data["ids"] or ()), "error": error, "filters": filters, "back": back,
        "carry": [(k, v) for k, values in request.POST.lists() if k not in _OPTION_FIELDS for v in values],
        "ban_form": BanForm(initial={"duration": data["duration"] or "24h", "reason": data["reason"]}),
        "roles": tenant_settings(request.tenant).roles, "role": data["role"],
        "destructive": action in job_actions.DESTRUCTIVE,
    }
    return render(request, "console/users/batch_options.html", context, status=400 if error else 200)


# --- Import: the rows frozen as a job's targets, previewed and started like a batch ---------------


@require_http_methods(["GET", "POST"])
@tenant_view("import_users")
def user_import(request: ConsoleRequest) -> HttpResponse:
    tenant = request.tenant
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            rows = csv_io.parse_import(form.cleaned_data["file"].read(), max_rows=policy().job_max_users,
                                       max_bytes=csv_io.IMPORT_JOB_MAX_BYTES)
            job = job_services.import_preview(actor=request.user, tenant=tenant, rows=rows)
        except ServiceError as exc:
            form_add(form, exc)
        else:
            return redirect(reverse("console:job-detail", args=[tenant.slug, job.pk]))
    return render(request, "console/users/import.html", {
        "tenant": tenant, "settings": tenant_settings(tenant), "form": form,
        "max_bytes": csv_io.IMPORT_JOB_MAX_BYTES,
    })
