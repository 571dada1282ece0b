"""The console's mapping of the error family (``core.errors``): once, for every view.

- In a form: ``form_add(form, exc)`` marks the fields the error names (or the whole form).
- After an action: ``flash(request, exc)`` shows the message on the page the user goes back to.
- Anything a view does not handle: ``ServiceErrorMiddleware`` answers with the status page
  (404, 403, 400, 409) that carries the error's message, and a database that does not answer
  with a 503 page (``database_down``).
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

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


def as_response(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    """The status page of an unhandled service error."""
    if isinstance(exc, NotFound):
        raise Http404(exc.message)
    if isinstance(exc, Refused):
        raise PermissionDenied(exc.message)
    if isinstance(exc, Unavailable):
        response = render(request, "console/error.html",
                          {"title": "Temporarily unavailable", "error": exc}, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    title = "That did not work" if isinstance(exc, Invalid) else "That cannot be done now"
    return render(request, "console/error.html", {"title": title, "error": exc}, status=exc.status)


def database_down(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A database did not answer (connection refused, timed out, dropped): 503, never 500.
    A tenant's database (the request went through the tenant gate, or the portal's) gets the
    console's page naming the tenant; the control database gets a plain page, since rendering
    the console's would ask that very database for the session."""
    tenant = getattr(request, "tenant", None) or getattr(request, "portal_tenant", None)
    if tenant is not None:
        return as_response(request, Unavailable(
            f"The database of tenant {tenant.slug!r} is not answering right now (server "
            f"{tenant.db_server!r}). Nothing was changed; try again in a minute.", code="tenant_database_down"))
    response = HttpResponse(
        "<!doctype html><title>Temporarily unavailable</title><h1>Temporarily unavailable</h1>"
        "<p>The console's database is not answering right now. Try again in a minute.</p>",
        status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class ServiceErrorMiddleware:
    """Maps a service error that escaped its view to the status page (never a 500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ServiceError):
            return as_response(request, exception)
        if isinstance(exception, OperationalError | InterfaceError):
            import logging

            logging.getLogger("console.errors").warning("Database unavailable on %s: %s", request.path, exception)
            return database_down(request, exception)
        return None
