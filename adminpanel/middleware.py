from __future__ import annotations

from collections.abc import Callable

from auditlog.context import set_extra_data
from django.http import HttpRequest, HttpResponse

from adminpanel import request_context

# No inline scripts or styles anywhere: everything is served from /static/.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)


def security_headers(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        if not request.path.startswith("/static/"):
            # Console pages carry personal data: never cache them.
            response.headers["Cache-Control"] = "no-store"
        return response

    return middleware


def bind_request_context(get_response: Callable[[HttpRequest], HttpResponse]):
    """Binds client address and correlation id for the audit trail (auditlog included)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        ctx = request_context.bind(request)
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
        try:
            with set_extra_data(
                context_data={"actor": actor, "remote_addr": ctx.remote_addr, "remote_port": None}
            ):
                response = get_response(request)
        finally:
            request_context.reset()
        response.headers["X-Request-ID"] = ctx.correlation_id
        return response

    return middleware
