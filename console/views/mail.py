"""The mail outbox, for instance admins: follow an invitation link without an SMTP server."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from console.decorators import instance_admin_required
from console.http import StaffRequest
from core.moments import query_moment
from core.text import search_term
from outbox.models import OutboxMessage
from outbox.selectors import PAGE_SIZE, outbox_get, outbox_list
from outbox.services import keeps_links, redact_links


@instance_admin_required
@require_GET
def mail_list(request: StaffRequest) -> HttpResponse:
    before = query_moment(request.GET.get("before", ""))
    filters, ignored = _filters(request)
    messages_ = outbox_list(before=before, q=filters["q"], status=filters["status"], kind=filters["kind"],
                            tenant_slug=filters["tenant_slug"])
    older = messages_[-1].created_at.isoformat() if len(messages_) == PAGE_SIZE else None
    query = urlencode({k: v for k, v in filters.items() if v})
    return render(request, "console/mail/list.html", {
        "outbox": messages_, "older": older, "paged": before is not None, "filters": filters,
        "ignored": ignored, "query": query, "statuses": OutboxMessage.Status.choices, "kinds": KINDS,
    })


KINDS = ("invite", "recovery", "magic_link", "email_change", "staff_invite")


def _filters(request: StaffRequest) -> tuple[dict[str, str], list[str]]:
    """Search and filters from the query string; a value that cannot be one is named, not used."""
    get = request.GET
    filters = {"q": search_term(get.get("q"), max_length=200), "status": get.get("status", ""),
               "kind": get.get("kind", ""), "tenant_slug": search_term(get.get("tenant"), max_length=63)}
    ignored = []
    if filters["status"] and filters["status"] not in OutboxMessage.Status.values:
        ignored.append("status")
        filters["status"] = ""
    if filters["kind"] and filters["kind"] not in KINDS:
        ignored.append("kind")
        filters["kind"] = ""
    return filters, ignored


@instance_admin_required
@require_GET
def mail_detail(request: StaffRequest, pk: uuid.UUID) -> HttpResponse:
    message = outbox_get(pk=pk)
    if message is None:
        raise Http404("No such message.")
    body = message.body if keeps_links() else redact_links(message.body)
    return render(request, "console/mail/detail.html",
                  {"message": message, "body": body, "links_hidden": not keeps_links()})
