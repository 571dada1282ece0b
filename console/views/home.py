from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import otp
from accounts.app_users.stats import overview_for
from accounts.selectors import recent_activity, tenant_memberships
from console.http import StaffRequest


@require_GET
def home(request: StaffRequest) -> HttpResponse:
    """The console home: the tenants I can reach with my role, and what I did lately."""
    memberships = tenant_memberships(actor=request.user)
    return render(request, "console/home.html", {
        "memberships": memberships,
        "overview": overview_for(
            [m.tenant for m in memberships], roles={m.tenant.slug: m.role for m in memberships}
        ),
        "activity": recent_activity(actor=request.user),
        "backup_left": otp.backup_codes_left(request.user),
    })
