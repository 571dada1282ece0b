"""API credentials in the console: a tenant's service keys (``/t/<slug>/api-keys/``, tenant
admins) and one's own personal tokens (``/account/tokens/``). Creating and revoking need a
recent OTP; a new secret is shown once, on the page that answers the creation, and never again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from console.confirm import confirm_first
from console.decorators import recent_otp_required, tenant_view
from console.errors import flash
from console.http import ConsoleRequest, StaffRequest
from core.access import ROLES
from core.errors import Invalid, NotFound, ServiceError
from core.policy import policy
from credentials import services

ACTION = "manage_api_keys"


def _expiry(raw: str) -> datetime | None:
    """The end of the chosen day (a date field), or None when left empty."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()  # noqa: DTZ007 - a calendar date
    except ValueError as exc:
        raise Invalid("Enter the expiry as a date (YYYY-MM-DD).", code="bad_date", field="expires_at") from exc
    return timezone.make_aware(datetime.combine(day, time.max))


def _keys_page(request: ConsoleRequest, *, new_key: str = "", status: int = 200) -> HttpResponse:
    return render(request, "console/api_keys/list.html", {
        "keys": services.api_key_list(tenant=request.tenant), "roles": ROLES, "new_key": new_key,
        "now": timezone.now(),
    }, status=status)


@never_cache
@require_GET
@tenant_view(ACTION)
def api_keys(request: ConsoleRequest) -> HttpResponse:
    return _keys_page(request)


@never_cache
@require_POST
@tenant_view(ACTION)
@recent_otp_required
def api_key_create(request: ConsoleRequest) -> HttpResponse:
    try:
        key, raw = services.api_key_create(
            actor=request.user, tenant=request.tenant, name=request.POST.get("name", ""),
            role=request.POST.get("role", ""), expires_at=_expiry(request.POST.get("expires_at", "")),
        )
    except ServiceError as exc:
        flash(request, exc)
        return _keys_page(request, status=400)
    messages.success(request, f"Key {key.prefix} created. Copy it now: it is not shown again.")
    return _keys_page(request, new_key=raw)


@require_POST
@tenant_view(ACTION)
@confirm_first
@recent_otp_required
def api_key_revoke(request: ConsoleRequest, key_id: uuid.UUID) -> HttpResponse:
    try:
        key = services.api_key_revoke(actor=request.user, tenant=request.tenant, ref=str(key_id))
    except NotFound as exc:  # another tenant's key, or none: 404 like every foreign id
        raise Http404(exc.message) from None
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"Key {key.prefix} revoked: it stops working at once.")
    return HttpResponseRedirect(reverse("console:api-keys", args=[request.tenant.slug]))


def _tokens_page(request: StaffRequest, *, new_token: str = "", status: int = 200) -> HttpResponse:
    max_days = policy().api_token_max_days
    return render(request, "console/api_keys/tokens.html", {
        "tokens": services.staff_token_list(user=request.user), "new_token": new_token,
        "max_days": max_days, "now": timezone.now(),
        "default_expiry": (timezone.localdate() + timedelta(days=30)).isoformat(),
    }, status=status)


@never_cache
@require_GET
def staff_tokens(request: StaffRequest) -> HttpResponse:
    return _tokens_page(request)


@never_cache
@require_POST
@recent_otp_required
def staff_token_create(request: StaffRequest) -> HttpResponse:
    try:
        expires = _expiry(request.POST.get("expires_at", ""))
        if expires is not None:  # the end of the chosen day, but never past the maximum
            expires = min(expires, timezone.now() + timedelta(days=policy().api_token_max_days))
        _token, raw = services.staff_token_create(
            actor=request.user, name=request.POST.get("name", ""), expires_at=expires,
            read_only=request.POST.get("read_only") == "on",
        )
    except ServiceError as exc:
        flash(request, exc)
        return _tokens_page(request, status=400)
    messages.success(request, "Token created. Copy it now: it is not shown again.")
    return _tokens_page(request, new_token=raw)


@require_POST
@confirm_first
@recent_otp_required
def staff_token_revoke(request: StaffRequest, token_id: uuid.UUID) -> HttpResponse:
    try:
        token = services.staff_token_revoke(actor=request.user, token_id=token_id)
    except NotFound as exc:  # another member's token, or none: 404 like every foreign id
        raise Http404(exc.message) from None
    except ServiceError as exc:
        flash(request, exc)
    else:
        messages.success(request, f"Token {token.prefix} revoked.")
    return HttpResponseRedirect(reverse("console:staff-tokens"))
