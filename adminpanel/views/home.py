from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.models import Tenant


def home(request: HttpRequest) -> HttpResponse:
    # Until sign-in exists this page only says the console is up; it names no tenant.
    active = Tenant.objects.filter(status=Tenant.Status.ACTIVE).count()
    return render(request, "adminpanel/home.html", {"active_tenants": active})
