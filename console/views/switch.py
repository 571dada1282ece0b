from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from console.decorators import resolve_tenant
from console.http import StaffRequest
from tenants.models import validate_slug


@require_GET
def tenant_switch(request: StaffRequest) -> HttpResponseRedirect:
    """The header's tenant switcher (works without JavaScript too): the tenant gate's lookup."""
    slug = request.GET.get("tenant", "")
    if not slug:
        return HttpResponseRedirect(reverse("console:home"))
    try:
        validate_slug(slug)
    except ValidationError:
        raise Http404("No such tenant.") from None
    tenant, _ = resolve_tenant(request, slug, "view_users")
    return HttpResponseRedirect(reverse("console:users-list", args=[tenant.slug]))
