"""One confirmation for every destructive action: a dialog with JavaScript, a page without.

A destructive form carries ``<input type="hidden" name="confirm_step" value="page">`` and its
button ``data-confirm="..."``. With JavaScript, ``app.js`` opens the confirmation dialog and, on
"Confirm", drops ``confirm_step`` and submits. Without JavaScript the field arrives and
``confirm_first`` answers with the confirmation page instead of acting: it names the action and
who it affects (``console.sudo.describe``) and posts the same fields back without the step. A
POST without the field (the dialog was confirmed, or another client) acts at once: the
confirmation is for people, the permission and fresh-code gates stay where they are.
"""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from console import sudo
from console.decorators import View

STEP_FIELD = "confirm_step"


def confirm_first(view: View) -> View:
    """Answer a POST that still carries ``confirm_step`` with the confirmation page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST" and request.POST.get(STEP_FIELD) == "page":
            return confirm_page(request, kwargs)
        return view(request, *args, **kwargs)

    return wrapper


def confirm_page(request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponse:
    label, details = sudo.describe(request, kwargs)
    fields = [(k, v) for k in request.POST for v in request.POST.getlist(k)
              if k not in {STEP_FIELD, "csrfmiddlewaretoken"}]
    referer = request.headers.get("Referer", "")
    back = referer if referer.startswith(request.build_absolute_uri("/")) else "/"
    layout = "layouts/tenant.html" if getattr(request, "tenant", None) is not None else "layouts/base.html"
    return render(request, "components/confirm_page.html", {
        "layout": layout, "label": label, "details": details, "fields": fields, "action": request.path,
        "back": back,
    })
