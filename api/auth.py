"""Who is calling: the credential in the headers, its tenant, its limits.

GoTrue surface: ``apikey: <key>`` or ``Authorization: Bearer <key>`` (both, when both are
sent, must carry the same key). Native: ``Authorization: Bearer <acpat_...|acsk_...>`` or
``apikey``. No credential → 401 ``no_authorization``; an unknown, revoked or expired one, or a
key of another tenant → 401 ``bad_jwt`` (never telling whether the tenant exists). Failed
authentications are limited per client address; every authenticated call counts against its
credential's per-minute and per-hour quotas (``core.policy``), in the shared cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from ninja.security import APIKeyHeader, HttpBearer

from api.http import ApiError
from audit import services as audit
from core import request_context
from core.policy import policy
from credentials.models import ApiKey, StaffToken
from credentials.services import ApiKeyActor, credential_for
from tenants.models import Tenant

BAD_KEY = "Invalid API key"


@dataclass
class Caller:
    credential: ApiKey | StaffToken
    actor: Any  # ApiKeyActor or the staff User behind a personal token
    tenant: Tenant | None = None

    @property
    def is_key(self) -> bool:
        return isinstance(self.credential, ApiKey)


def presented_secret(request: HttpRequest) -> str | None:
    """The secret in ``apikey`` or the bearer; 403 when both are present and differ."""
    apikey = request.headers.get("apikey", "").strip()
    auth = request.headers.get("Authorization", "").strip()
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if apikey and bearer and apikey != bearer:
        raise ApiError(403, "not_admin", "Authorization must carry the same service key as apikey")
    return apikey or bearer or None


# --- Counting in the shared cache ---------------------------------------------------------------


def _hit(key: str, window: int, now: float) -> tuple[int, int]:
    """Count one request in the fixed window containing ``now``; (count, seconds to reset)."""
    start = int(now // window) * window
    cache_key = f"api:rl:{key}:{window}:{start}"
    cache.add(cache_key, 0, window + 5)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1, window + 5)
        count = 1
    return count, max(1, start + window - int(now))


def _failure_check(request: HttpRequest) -> None:
    """429 once an address has failed to authenticate too often this minute."""
    ip = request_context.client_ip(request) or "unknown"
    now = int(time.time())
    count = cache.get(f"api:rl:authfail:{ip}:60:{now // 60 * 60}", 0)
    if count >= policy().api_auth_failures_per_minute:
        raise ApiError(429, "over_request_rate_limit", "Too many failed authentications from this address",
                       headers={"Retry-After": str(60 - int(time.time()) % 60 or 1)})


def _failed(request: HttpRequest, secret: str | None, *, tenant: Tenant | None) -> ApiError:
    ip = request_context.client_ip(request) or "unknown"
    _hit(f"authfail:{ip}", 60, time.time())
    prefix = (secret or "")[:13]
    # Audited at most once a minute per prefix and address (prefix only, never the secret).
    if cache.add(f"api:authfail-audit:{prefix}:{ip}", 1, 60):
        audit.record(event="api.auth_failed", actor=None, tenant=tenant, target_model=ApiKey,
                     target_pk="", target_repr=prefix, action=audit.ACCESS,
                     data={"prefix": prefix, "path": request.path[:300]})
    if not secret:
        return ApiError(401, "no_authorization", "This endpoint requires a valid API key in apikey or "
                        "Authorization: Bearer")
    return ApiError(401, "bad_jwt", BAD_KEY)


def rate_limit(request: HttpRequest, caller: Caller) -> None:
    """Count the call; sets the RateLimit headers (``request.api_rate_headers``); 429 when over."""
    p = policy()
    now = time.time()
    windows = (("min", 60, p.api_rate_per_minute), ("hour", 3600, p.api_rate_per_hour))
    used = [(name, window, quota, *_hit(f"{caller.credential.pk}", window, now)) for name, window, quota in windows]
    headers = {
        "RateLimit-Policy": ", ".join(f'"{name}";q={quota};w={window}' for name, window, quota, _c, _t in used),
        "RateLimit": ", ".join(f'"{name}";r={max(0, quota - count)};t={reset}'
                               for name, _w, quota, count, reset in used),
    }
    request.api_rate_headers = headers  # type: ignore[attr-defined]
    over = [reset for _name, _w, quota, count, reset in used if count > quota]
    if over:
        raise ApiError(429, "over_request_rate_limit", "Rate limit exceeded for this key",
                       headers={**headers, "Retry-After": str(max(over))})


def authenticate(request: HttpRequest, *, tenant: Tenant | None = None, secret: str | None = None,
                 keys_allowed: bool = True, require_tenant: bool = False) -> Caller:
    """The caller behind the request's credential, its limits counted.

    With ``tenant`` (the tenant of the URL), a service key must be that tenant's; a personal
    token's member must hold a role there (checked by the caller's permission). Binds the
    credential's facts to the request so every audit entry names it.
    """
    cached: Caller | None = getattr(request, "api_caller", None)
    if cached is not None and secret is None:  # already authenticated (and counted) for this request
        if isinstance(cached.credential, ApiKey) and not keys_allowed:
            raise ApiError(401, "bad_jwt", "This endpoint takes a personal token (acpat_...), not a service key")
        return cached
    _failure_check(request)
    if secret is None:
        secret = presented_secret(request)
    cred = credential_for(secret, remote_addr=request_context.client_ip(request)) if secret else None
    foreign = isinstance(cred, ApiKey) and (
        not keys_allowed or (tenant is not None and cred.tenant_id != tenant.pk)
    )
    if cred is None or foreign or (require_tenant and tenant is None):
        raise _failed(request, secret, tenant=tenant)
    if isinstance(cred, ApiKey):
        if not cred.tenant.is_usable:
            raise ApiError(403, "tenant_unavailable", "This tenant is not available.")
        caller = Caller(credential=cred, actor=ApiKeyActor(cred), tenant=cred.tenant)
    else:
        caller = Caller(credential=cred, actor=cred.user, tenant=tenant)
    request_context.bind_credential({"via": "api", "credential_prefix": cred.prefix, "credential_id": str(cred.pk)})
    request.api_caller = caller  # type: ignore[attr-defined]
    rate_limit(request, caller)
    if isinstance(cred, StaffToken) and cred.read_only and request.method not in ("GET", "HEAD", "OPTIONS"):
        raise ApiError(403, "read_only_token", "This personal token is read only.")
    return caller


# --- django-ninja's authentication step (runs before any parameter is read) ---------------------


def _ninja_authenticate(request: HttpRequest) -> Caller:
    """The credential of the request: for the GoTrue surface it must be the URL tenant's."""
    match = getattr(request, "resolver_match", None)
    slug = (match.kwargs.get("slug") if match else None) or ""
    if request.path_info.startswith("/t/"):
        from tenants.selectors import tenant_get

        return authenticate(request, tenant=tenant_get(slug=slug), require_tenant=True)
    caller = authenticate(request)
    media_check(request)
    return caller


_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def media_check(request: HttpRequest) -> None:
    """Native surface: a body is JSON (``application/json`` or a ``+json`` type) or, on the
    user import, CSV; anything else is 415 before the body is read. GoTrue's surface reads JSON
    whatever the type (its clients send what they send), so it is not checked there."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if request.method not in _BODY_METHODS or length <= 0:
        return
    media = (request.content_type or "").lower()
    if media == "application/json" or media.endswith("+json"):
        return
    if media == "text/csv" and request.path_info.rstrip("/").endswith("/users/import"):
        return
    raise ApiError(415, "unsupported_media_type",
                   f"Send the body as application/json (got {media[:60] or 'no Content-Type'}).")


class ServiceKeyHeader(APIKeyHeader):
    """``apikey: acsk_...`` (supabase-js sends it with the same value as the bearer)."""

    param_name = "apikey"

    def __call__(self, request: HttpRequest) -> Caller:
        return _ninja_authenticate(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:  # pragma: no cover - __call__ instead
        return None


class BearerCredential(HttpBearer):
    """``Authorization: Bearer acsk_...|acpat_...``."""

    def __call__(self, request: HttpRequest) -> Caller:
        return _ninja_authenticate(request)

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - __call__ instead
        return None


API_AUTH = [ServiceKeyHeader(), BearerCredential()]
