"""The admin API's routes: one django-ninja ``NinjaAPI`` for both surfaces (so one OpenAPI 3.1
document, ``/api/v1/openapi.json``, generated from these views), then JSON catch-alls so that
nothing under the API prefixes ever answers with an HTML page or a redirect."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser

from api import (  # noqa: F401 - they add their routes
    gotrue,
    native,
    native_instance,
    native_jobs,
    native_manage,
    native_users,
    native_webhooks,
)
from api.auth import API_AUTH, media_check
from api.http import UNEXPECTED, ApiError, error_response, gotrue_error, native_error
from api.reference import reference_page
from core.api_paths import api_surface
from core.errors import ServiceError

log = logging.getLogger("api")


class LenientJson(Parser):
    """GoTrue's body rules: read JSON whatever the Content-Type, an empty body is ``{}``, and a
    body that is not a JSON object is ``bad_json``. Native bodies must be JSON (415)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        if api_surface(request.path_info) == "native":  # also the routes without a credential (setup)
            media_check(request)
        raw = request.body
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, "bad_json", f"Could not parse request body as JSON: {str(exc)[:200]}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "bad_json", "Could not parse request body as JSON: not a JSON object")
        return data


class AdminAPI(NinjaAPI):
    """The document is built once per process and prefix: its routes are fixed at import, and
    building it costs about 1.5 s of pydantic schema generation (``/api-reference/`` and
    ``/api/v1/openapi.json`` built it on every request)."""

    def get_openapi_schema(self, *, path_prefix: str | None = None,
                           path_params: dict[str, Any] | None = None) -> OpenAPISchema:
        key = (path_prefix, tuple(sorted((path_params or {}).items())))
        documents: dict[Any, OpenAPISchema] = self.__dict__.setdefault("_documents", {})
        if key not in documents:
            documents[key] = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return documents[key]


api = AdminAPI(
    title="Admin console API",
    version="1.0.0",
    description=(
        "Two surfaces. GoTrue-compatible admin API per tenant at /t/{slug}/auth/v1 (bare JSON, "
        "GoTrue error bodies, X-Total-Count/Link pages), for @supabase/supabase-js, @supabase/auth-js and "
        "supabase-auth. Native management API at /api/v1 ({success, data, meta} envelope, cursor pages). "
        "Credentials: a tenant service key (apikey header or Authorization: Bearer acsk_...) or a staff "
        "personal token (Authorization: Bearer acpat_...)."
    ),
    openapi_url="/api/v1/openapi.json",
    docs_url=None,
    parser=LenientJson(),
    urls_namespace="api",
    auth=API_AUTH,  # the credential is checked before any parameter or body is read
)
api.add_router("", gotrue.router)
api.add_router("", native.router)


def _service_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    mapped = native_error(exc) if api_surface(request.path_info) == "native" else gotrue_error(exc)
    return error_response(request, mapped)


def _validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg", "invalid value"))
    if api_surface(request.path_info) == "native":
        return error_response(request, ApiError(422, "validation_failed", message,
                                                details={"errors": json.loads(json.dumps(exc.errors, default=str))}))
    return error_response(request, ApiError(400, "bad_json", f"Could not parse request body as JSON: {message}"))


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        cause = exc.__cause__
        if isinstance(cause, ApiError):  # our parser's own verdict (bad_json)
            return error_response(request, cause)
        return error_response(request, ApiError(400, "bad_json", "Could not parse request body as JSON"))
    return error_response(request, ApiError(exc.status_code, "validation_failed", str(exc)))


def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("API failure on %s %s", request.method, request.path)
    return error_response(request, ApiError(500, "unexpected_failure", UNEXPECTED))


def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(request, exc)


_HANDLERS: list[tuple[type[Exception], Any]] = [
    (ApiError, _api_error), (ServiceError, _service_error), (NinjaValidationError, _validation),
    (HttpError, _http_error), (Exception, _unexpected),
]
for _exc, _handler in _HANDLERS:
    api.add_exception_handler(_exc, _handler)


END_USER = ("signup", "token", "verify", "user", "recover", "otp", "magiclink", "factors", "authorize", "sso",
            "settings", "callback", "reauthenticate", "resend", "saml", "jwks", ".well-known", "oauth", "admin/sso")


@csrf_exempt
def feature_disabled(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return error_response(request, ApiError(404, "feature_disabled", "This feature is not available on this server"))


@csrf_exempt
def end_user_route(request: HttpRequest, slug: str, **kwargs: Any) -> HttpResponse:
    return error_response(request, ApiError(
        404, "feature_disabled",
        f"This server implements only the GoTrue admin API; end users sign in at /p/{slug}/"))


@csrf_exempt
def not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """JSON 404 for any other API path; a trailing slash the route does not have is forgiven
    (GoTrue accepts both forms) by serving the slash-less route, never by redirecting."""
    path = request.path_info
    if path.endswith("/") and len(path) > 1:
        try:
            match = resolve(path.rstrip("/"))
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            request.resolver_match = match
            return match.func(request, *match.args, **match.kwargs)
    return error_response(request, ApiError(404, "not_found", "Not found"))


def _specific_first(patterns: list[Any]) -> list[Any]:
    """Literal segments before parameters (``users/invite`` before ``users/<user_id>``), whatever
    order the endpoints were declared in."""
    # ninja's own root route ("": its docs home, a 404 with docs_url=None) is dropped: mounted at
    # the site's root it would answer "/" in place of the console's home (its only other use,
    # the prefix of the OpenAPI paths, is the site's root: ``api.get_root_path`` below).
    patterns = [p for p in patterns if str(p.pattern)]
    return sorted(patterns, key=lambda p: [1 if seg.startswith("<") else 0 for seg in str(p.pattern).split("/")])


_ninja_patterns, _app, _namespace = api.urls
api.get_root_path = lambda path_params: "/"  # type: ignore[method-assign]
_T = r"^t/(?P<slug>[^/]+)/auth/v1/"
urlpatterns = [
    path("", (_specific_first(list(_ninja_patterns)), _app, _namespace)),
    re_path(_T + r"admin/(?:oauth|custom-providers|sso|audit)(?:/.*)?$", feature_disabled),
    re_path(_T + r"admin/users/[^/]+/passkeys(?:/.*)?$", feature_disabled),
    re_path(_T + r"(?:" + "|".join(e.replace(".", r"\.") for e in END_USER) + r")(?:/.*)?$", end_user_route),
    re_path(r"^t/[^/]+/auth/v1(?:/.*)?$", not_found),
    re_path(r"^api/v1(?:/.*)?$", not_found),
    # A console page (staff session, default deny), not an API path.
    path("api-reference/", reference_page, name="reference"),
]
