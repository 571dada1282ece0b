"""The portal's typed request: what ``portal.gate.portal_view`` sets, declared once."""

from __future__ import annotations

from django.http import HttpRequest

from portal.services.common import PortalActor
from tenants.models import Tenant


class PortalRequest(HttpRequest):
    portal_tenant: Tenant
    portal_actor: PortalActor | None


class SignedInPortalRequest(PortalRequest):
    """Behind ``portal_view(signed_in=True)``: the actor is always there."""

    portal_actor: PortalActor
