"""The console's typed requests: what the staff middleware and the tenant gate set, declared once.

Views annotate ``request: StaffRequest`` (any verified console page) or ``request: ConsoleRequest``
(behind ``tenant_view``); mypy then knows ``request.user`` is staff and ``request.tenant`` is set.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User
from tenants.models import Tenant


class StaffRequest(HttpRequest):
    """A request the staff middleware let through: a signed-in, TOTP-verified staff member."""

    user: User  # narrowed: the middleware refused anonymous ones
    htmx: HtmxDetails


class ConsoleRequest(StaffRequest):
    """A request under ``/t/<slug>/`` after ``console.decorators.tenant_view``."""

    tenant: Tenant
    tenant_role: str
    tenant_alias: str
