from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from tenants.access import actor_role
from tenants.models import Tenant, validate_slug


@require_GET
def tenant_switch(request: HttpRequest) -> HttpResponseRedirect:
    """The header's tenant switcher (works without JavaScript too)."""
    slug = request.GET.get("tenant", "")
    if not slug:
        return HttpResponseRedirect(reverse("console:home"))
    try:
        validate_slug(slug)
    except Exception:  # noqa: BLE001 - any bad slug is just "not found"
        raise Http404("No such tenant.") from None
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None or actor_role(request.user, tenant) is None:
        raise Http404("No such tenant.")
    return HttpResponseRedirect(reverse("console:users-list", args=[tenant.slug]))
