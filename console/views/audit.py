"""The audit viewer: ``/audit/`` (instance admins, everything) and ``/t/<slug>/audit/`` (one
tenant's entries, tenant admins). Read only: there is no form or URL that changes an entry."""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit import chain, selectors
from console.decorators import instance_admin_required, tenant_view
from console.http import ConsoleRequest, StaffRequest
from tenants.models import Tenant


class _Echo:
    """csv.writer wants a file; this one hands each line straight back."""

    def write(self, value: str) -> str:
        return value


def _page(
    request: StaffRequest, *, tenant: Tenant | None, template: str, extra: dict[str, Any]
) -> HttpResponse:
    filters = selectors.AuditFilters.from_query(request.GET, allow_tenant=tenant is None)
    qs = selectors.audit_entries(tenant=tenant, filters=filters)
    page = selectors.audit_page(qs, cursor=request.GET.get("after", ""))
    if tenant is None:
        base, export = reverse("console:audit-instance"), reverse("console:audit-instance-export")
    else:
        base = reverse("console:audit-tenant", args=[tenant.slug])
        export = reverse("console:audit-tenant-export", args=[tenant.slug])
    key = chain.chain_key(tenant.pk if tenant is not None else None)
    context = {
        "chain": chain.chain_state(key),
        "page": page, "filters": filters, "querystring": urlencode(filters.as_query()),
        "actions": list(selectors.ACTIONS), "scoped_tenant": tenant, "base": base,
        "export": export, "tenant_choices": None, **extra,
    }
    if request.htmx and request.headers.get("HX-Target") == "audit-results":
        template = "console/audit/_results.html"
    return render(request, template, context)


def _export(request: StaffRequest, *, tenant: Tenant | None) -> StreamingHttpResponse:
    filters = selectors.AuditFilters.from_query(request.GET, allow_tenant=tenant is None)
    qs = selectors.audit_entries(tenant=tenant, filters=filters)
    writer = csv.writer(_Echo())
    rows = (
        writer.writerow([selectors.csv_safe(str(cell)) for cell in row])
        for row in selectors.csv_rows(qs)
    )
    name = f"audit-{tenant.slug if tenant else 'all'}-{timezone.now():%Y%m%d-%H%M}.csv"
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@instance_admin_required
@require_GET
def audit_instance(request: StaffRequest) -> HttpResponse:
    tenants = Tenant.objects.order_by("slug").values_list("slug", flat=True)[:500]
    return _page(request, tenant=None, template="console/audit/list.html",
                 extra={"tenant_choices": list(tenants)})


@instance_admin_required
@require_GET
def audit_instance_export(request: StaffRequest) -> StreamingHttpResponse:
    return _export(request, tenant=None)


@require_GET
@tenant_view(action="view_audit")
def audit_tenant(request: ConsoleRequest) -> HttpResponse:
    return _page(request, tenant=request.tenant, template="console/audit/tenant.html", extra={})


@require_GET
@tenant_view(action="view_audit")
def audit_tenant_export(request: ConsoleRequest) -> StreamingHttpResponse:
    return _export(request, tenant=request.tenant)
