from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.selectors import tenant_search
from console.decorators import resolve_tenant
from console.http import StaffRequest
from core.text import search_term
from tenants.models import validate_slug

SWITCH_RESULTS = 10


@require_GET
def tenant_switch(request: StaffRequest) -> HttpResponse:
    """The header's tenant switcher, a search. ``?tenant=<slug>`` goes to that tenant (the
    tenant gate's lookup: 404 for unknown and not mine alike); ``?q=`` lists the reachable
    tenants whose name or slug contains it (htmx: the results box alone, as the user types;
    without JavaScript: a page, or straight to the one tenant whose slug is exactly ``q``)."""
    slug = request.GET.get("tenant", "")
    query = search_term(request.GET.get("q"))
    if slug:
        try:
            validate_slug(slug)
        except ValidationError:
            raise Http404("No such tenant.") from None
        tenant, _ = resolve_tenant(request, slug, "view_users")
        return HttpResponseRedirect(reverse("console:users-list", args=[tenant.slug]))
    if not query and not request.htmx:
        return HttpResponseRedirect(reverse("console:home"))
    matches = tenant_search(actor=request.user, query=query, limit=SWITCH_RESULTS) if query else []
    if not request.htmx and len(matches) == 1 and matches[0].tenant.slug == query:
        return HttpResponseRedirect(reverse("console:users-list", args=[query]))
    template = "console/switch.html#switch-results" if request.htmx else "console/switch.html"
    return render(request, template, {"matches": matches, "query": query, "limit": SWITCH_RESULTS})
