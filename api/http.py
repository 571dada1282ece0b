"""The wire rules both API surfaces share: errors, their two GoTrue formats and the native
envelope, and the mapping of the services' error family onto them.

GoTrue surface (``/t/<slug>/auth/v1/``): a request carrying ``X-Supabase-Api-Version`` with a
date on or after 2024-01-01 gets ``{"code": "<text>", "message": ...}`` and the header echoed
(the clients read ``code`` only then); any other request gets the legacy
``{"code": <status>, "error_code": ..., "msg": ...}``. Native surface (``/api/v1/``):
``{"success": false, "error": {"code", "reason", "message", "details"}, "meta": {...}}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse

from core import request_context
from core.api_paths import api_surface
from core.errors import Conflict, Invalid, NotFound, Refused, ServiceError

API_VERSION = "2024-01-01"
_VERSION_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
JSON = "application/json"

# Native error categories (HTTP status -> code).
NATIVE_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED", 429: "RATE_LIMITED", 500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE",
}
UNEXPECTED = "Unexpected failure, please check server logs for more information"


@dataclass
class ApiError(Exception):
    """An answer that is an error: ``status``, a snake_case ``code`` (GoTrue's vocabulary,
    the native ``reason``), a message for people, and extras."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # GoTrue body members (weak_password)
    details: Any = None  # native error.details

    def __str__(self) -> str:
        return self.message


def wants_new_errors(request: HttpRequest) -> bool:
    match = _VERSION_RE.match(request.headers.get("X-Supabase-Api-Version", "").strip())
    return match is not None and match.group(0) >= API_VERSION


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    response = HttpResponse(body, status=status, content_type=JSON)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def meta() -> dict[str, Any]:
    ctx = request_context.current()
    return {"request_id": ctx.correlation_id if ctx else None}


def error_response(request: HttpRequest, error: ApiError) -> HttpResponse:
    """The error in the format of the surface the request is on."""
    headers = dict(error.headers)
    if api_surface(request.path_info) == "native":
        body: dict[str, Any] = {
            "success": False,
            "error": {"code": NATIVE_CODES.get(error.status, "ERROR"), "reason": error.code,
                      "message": error.message, "details": error.details},
            "meta": meta(),
        }
        return json_response(body, status=error.status, headers=headers)
    headers["x-sb-error-code"] = error.code
    if wants_new_errors(request):
        headers["X-Supabase-Api-Version"] = API_VERSION
        body = {"code": error.code, "message": error.message, **error.extra}
    else:
        body = {"code": error.status, "error_code": error.code, "msg": error.message, **error.extra}
    return json_response(body, status=error.status, headers=headers)


# --- Service errors -> API errors --------------------------------------------------------------

_WEAK = {"too_short": "length", "blank_password": "characters", "required": "characters"}


def gotrue_error(exc: ServiceError) -> ApiError:
    """GoTrue's status and code for a service error (GoTrue's own table where it has one)."""
    code, message = exc.code, exc.message
    if isinstance(exc, NotFound):
        reason = {"factor_not_found": "mfa_factor_not_found", "session_not_found": "session_not_found"}
        return ApiError(404, reason.get(code, "user_not_found"), message)
    if isinstance(exc, Refused):
        return ApiError(403, "not_admin", message)
    if isinstance(exc, Conflict):
        if code in ("email_taken", "already_invited"):
            return ApiError(422, "email_exists", message)
        if code == "user_exists":
            return ApiError(422, "user_already_exists", message)
        if code == "banned":
            return ApiError(400, "user_banned", message)
        return ApiError(422, "validation_failed", message)
    if isinstance(exc, Invalid):
        if exc.field == "password" and code in _WEAK:
            return ApiError(422, "weak_password", message, extra={"weak_password": {"reasons": [_WEAK[code]]}})
        if code == "domain_not_allowed":
            return ApiError(400, "email_address_not_authorized", message)
        return ApiError(400, "validation_failed", message)
    return ApiError(exc.status, "validation_failed", message)


def native_error(exc: ServiceError) -> ApiError:
    """The native status and reason: the same vocabulary as GoTrue's, statuses of the family
    (Invalid 422, Conflict 409) except that a weak password is 422 everywhere."""
    base = gotrue_error(exc)
    details: dict[str, Any] = {}
    if exc.fields:
        details["fields"] = exc.fields
    if "weak_password" in base.extra:
        details["reasons"] = base.extra["weak_password"]["reasons"]
    if isinstance(exc, Invalid):
        status = 422
    elif isinstance(exc, Conflict):
        status = 409
    else:
        status = base.status
    reason = base.code
    if isinstance(exc, Conflict) and reason == "validation_failed":
        reason = exc.code or "invalid_state"
    return ApiError(status, reason, exc.message, details=details or None)
