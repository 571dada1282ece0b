"""The baseline: a stock Django admin changelist of AppUser on the benchmark tenant's table.

Stock settings (two COUNT(*), OFFSET paging, ``icontains`` search), ``search_fields`` on email and
name, 50 rows a page, the same table and indexes as our list.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from accounts.models import AppUser
from tenants import db as tenant_db
from tenants.models import Tenant


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("banned", "Banned"), ("deleted", "Deleted"), ("unconfirmed", "Unconfirmed")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "banned":
            return queryset.filter(banned_until__gt=timezone.now(), deleted_at__isnull=True)
        if value == "deleted":
            return queryset.filter(deleted_at__isnull=False)
        if value == "unconfirmed":
            return queryset.filter(email_confirmed_at__isnull=True, deleted_at__isnull=True)
        return queryset


class AppUserBaselineAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "role", "mfa_enabled", "last_sign_in_at", "created_at")
    search_fields = ("email", "name")
    list_filter = (StatusFilter, "role")
    list_per_page = 50
    ordering = ("-created_at", "-id")

    def get_queryset(self, request):
        tenant = Tenant.objects.get(slug=request.bench_slug)
        return super().get_queryset(request).using(tenant_db.using(tenant))


class BenchAdminSite(admin.AdminSite):
    site_header = "Baseline admin"

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def wrapper(request, *args, **kwargs):
            request.bench_slug = request.COOKIES.get("bench_tenant", "")
            return inner(request, *args, **kwargs)

        return wrapper


site = BenchAdminSite(name="bench_admin")
site.register(AppUser, AppUserBaselineAdmin)
