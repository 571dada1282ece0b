from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import otp
from accounts.app_users.stats import overview_for
from accounts.selectors import recent_activity, tenant_memberships_page
from accounts.services import tenant_invites
from console.http import StaffRequest

HOME_PAGE_SIZE = 24


def _page_number(raw: str | None) -> int:
    try:
        return max(int(raw or 1), 1)
    except ValueError:
        return 1


@require_GET
def home(request: StaffRequest) -> HttpResponse:
    """The console home: a page of the tenants I can reach (searchable), with my role and their
    stored figures, and what I did lately. No tenant database is opened here."""
    page = tenant_memberships_page(
        actor=request.user, query=request.GET.get("q", ""), page=_page_number(request.GET.get("page")),
        per_page=HOME_PAGE_SIZE, with_figures=True,
    )
    return render(request, "console/home.html", {
        "memberships": page.rows,
        "tenants_page": page,
        "overview": overview_for([m.tenant for m in page.rows],
                                 roles={m.tenant.slug: m.role for m in page.rows}),
        "activity": recent_activity(actor=request.user),
        "backup_left": otp.backup_codes_left(request.user),
        "tenant_invites": tenant_invites.tenant_invites_for(user=request.user),
    })
