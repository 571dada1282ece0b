"""The API's outer wrapper (first in ``MIDDLEWARE``): on API paths only, bodies are bounded,
every answer is JSON (Django's HTML 404/405/500 pages and any redirect become the surface's JSON
error), and the rate-limit and API-version headers are added."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from api import idempotency
from api.http import API_VERSION, JSON, UNEXPECTED, ApiError, error_response, wants_new_errors
from core.api_paths import api_surface
from core.policy import policy

log = logging.getLogger("api")

_BY_STATUS = {
    400: ("bad_json", "Bad request"), 403: ("no_authorization", "Forbidden"), 404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"), 413: ("request_entity_too_large", "Request body too large"),
}


def _as_json(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A non-JSON answer on an API path, as the surface's JSON error."""
    status = response.status_code
    if 300 <= status < 400:  # never a redirect: httpx would turn a POST into a GET
        return error_response(request, ApiError(403, "no_authorization", "HTTPS required"))
    if status >= 500:
        return error_response(request, ApiError(500, "unexpected_failure", UNEXPECTED))
    code, message = _BY_STATUS.get(status, ("validation_failed", "Request refused"))
    error = ApiError(status, code, message)
    if status == 405 and response.has_header("Allow"):
        error.headers["Allow"] = response["Allow"]
    return error_response(request, error)


def api_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        if api_surface(request.path_info) is None:
            return get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > policy().api_body_max_bytes:
            response = error_response(request, ApiError(413, "request_entity_too_large", "Request body too large"))
        else:
            try:
                response = idempotency.run(request, get_response) if idempotency.applies(request) \
                    else get_response(request)
            except Exception:  # noqa: BLE001 - an API answer is JSON, whatever failed
                log.exception("API failure on %s %s", request.method, request.path)
                response = error_response(request, ApiError(500, "unexpected_failure", UNEXPECTED))
        if response.status_code >= 300 and response.status_code != 304 and \
                not response.get("Content-Type", "").startswith(JSON):
            response = _as_json(request, response)
        for key, value in getattr(request, "api_rate_headers", {}).items():
            response.headers.setdefault(key, value)
        if wants_new_errors(request):
            response.headers["X-Supabase-Api-Version"] = API_VERSION
        return response

    return middleware
