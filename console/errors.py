"""The console's mapping of the error family (``core.errors``): once, for every view.

- In a form: ``form_add(form, exc)`` marks the fields the error names (or the whole form).
- After an action: ``flash(request, exc)`` shows the message on the page the user goes back to.
- Anything a view does not handle: ``ServiceErrorMiddleware`` answers with the status page
  (404, 403, 400, 409) that carries the error's message; a database that does not answer
  (a tenant's server down) gets the 503 page (``database_down``), never a 500.
- The status pages themselves (``handler400/403/404/500`` in ``config.urls``, and the CSRF failure
  view): one branded page in the console's or the portal's look. They show the refusal's own
  message (a 403 says why), never a traceback or the URL patterns, DEBUG on or off; the 500 is
  rendered without a request, so nothing that may have failed (database, session) is touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

from core.errors import Invalid, NotFound, Refused, ServiceError, Unavailable

RETRY_AFTER_SECONDS = 30


def form_add(form: forms.BaseForm, exc: ServiceError) -> None:
    """Put the error on the fields it names (when the form has them), else on the form."""
    placed = False
    for name, errors in exc.fields.items():
        if name in form.fields:
            for error in errors:
                form.add_error(name, error)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def flash(request: HttpRequest, exc: ServiceError) -> None:
    messages.error(request, exc.message)


def _as_http(exc: ServiceError) -> Exception:
    if isinstance(exc, NotFound):
        return Http404(exc.message)
    if isinstance(exc, Refused):
        return PermissionDenied(exc.message)
    return exc


def as_response(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    """The status page of an unhandled service error."""
    if isinstance(exc, NotFound):
        raise Http404(exc.message)
    if isinstance(exc, Refused):
        raise PermissionDenied(exc.message)
    title = "That did not work" if isinstance(exc, Invalid) else "That cannot be done now"
    return render(request, "console/error.html", {"title": title, "error": exc}, status=exc.status)


PORTAL_PATH = re.compile(r"^/p/(?P<slug>[a-z0-9-]{1,63})/")
TITLES = {
    400: ("That request could not be read", "Something in it was malformed. Go back and try again."),
    403: ("You cannot do this", "You do not have access to this page."),
    404: ("Page not found", "There is nothing at this address, or you do not have access to it."),
    500: ("Something went wrong", "The error was logged. Try again in a moment."),
    503: ("Temporarily unavailable", "A database this page needs is not answering. Try again in a minute."),
}


def _portal_name(slug: str, *, look_up: bool) -> str:
    if look_up:
        from tenants.models import Tenant

        try:
            tenant = Tenant.objects.filter(slug=slug, status__in=Tenant.VISIBLE_STATUSES).only("name").first()
        except DatabaseError:
            tenant = None
        if tenant is not None:
            return tenant.name
    return "Account portal"


def status_page(request: HttpRequest | None, status: int, message: str = "", *, path: str = "",
                look_up: bool = True) -> HttpResponse:
    """The branded status page: console look, or portal look under ``/p/<slug>/``."""
    title, default = TITLES[status]
    path = path or (request.path if request is not None else "")
    portal = PORTAL_PATH.match(path)
    context = {
        "status": status, "title": title, "message": message or default,
        "look": "portal" if portal else "console",
        "portal_name": _portal_name(portal["slug"], look_up=look_up) if portal else "",
        "home_url": f"/p/{portal['slug']}/" if portal else "/",
    }
    response = HttpResponse(loader.get_template("errors/page.html").render(context), status=status)
    response.branded = True  # type: ignore[attr-defined]  # the DEBUG 404 swap leaves it alone
    return response


def _message(exception: Exception | None) -> str:
    """A refusal's own message (``PermissionDenied("Your role ...")``), never a resolver dump."""
    if exception is None or not exception.args or not isinstance(exception.args[0], str):
        return ""
    return exception.args[0][:300]


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_page(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return status_page(request, 403, _message(exception))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = _message(exception) if isinstance(exception, Http404) else ""
    return status_page(request, 404, message)


def server_error(request: HttpRequest) -> HttpResponse:
    return status_page(None, 500, path=request.path, look_up=False)


def database_down(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A database did not answer (connection refused, timed out, dropped): 503 with
    ``Retry-After``, never a 500. After the tenant gate (console or portal) the page names the
    tenant and its server; otherwise it is the control database, and the page is rendered
    without touching it."""
    import logging

    logging.getLogger("console.errors").warning("Database unavailable on %s: %s", request.path, exception)
    tenant = getattr(request, "tenant", None) or getattr(request, "portal_tenant", None)
    if tenant is not None:
        response = status_page(request, 503, (
            f"The database of tenant {tenant.slug!r} is not answering right now (server "
            f"{tenant.db_server!r}). Nothing was changed; try again in a minute."))
    else:
        response = status_page(request, 503, look_up=False)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return status_page(request, 403, "This form had expired or came from another site. Reload the page and "
                       "try again.")


class ServiceErrorMiddleware:
    """Maps a service error that escaped its view to the status page (never a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.DEBUG and response.status_code == 404 and not getattr(response, "branded", False) \
                and "text/html" in response.get("Content-Type", ""):
            # DEBUG's technical 404 lists every URL pattern: the branded page stands in for it.
            return status_page(request, 404)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ServiceError):
            exception = _as_http(exception)
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        if isinstance(exception, PermissionDenied):
            return permission_denied(request, exception)
        if isinstance(exception, Unavailable):
            response = status_page(request, 503, exception.message)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        if isinstance(exception, ServiceError):
            return as_response(request, exception)
        if isinstance(exception, OperationalError | InterfaceError):
            return database_down(request, exception)
        return None
