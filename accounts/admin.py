"""Django admin registrations: tenants, assignments, staff users, the audit trail.

The admin is an inspection tool. Changes with rules (roles, the last admin, deactivation,
second factors, tenant lifecycle) go through the console, whose services enforce and audit
them; here only a tenant's name and metadata can be edited (auditlog records that change).
"""

from __future__ import annotations

from auditlog.admin import LogEntryAdmin
from django.contrib import admin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import StaffInvitation, User
from audit.models import AuditEntry
from tenants.models import Tenant, TenantAdmin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TenantRoleInline(admin.TabularInline):
    model = TenantAdmin
    fk_name = "user"
    fields = ("tenant", "role", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class StaffUserAdmin(ReadOnlyAdmin):
    list_display = ("email", "name", "is_active", "is_superuser", "last_login", "created_at")
    list_filter = ("is_active", "is_superuser")
    search_fields = ("email", "name")
    ordering = ("email",)
    fields = ("email", "name", "is_active", "is_superuser", "last_login", "created_at",
              "updated_at")
    inlines = [TenantRoleInline]


@admin.register(Tenant)
class TenantModelAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "status", "is_default", "db_server", "created_at")
    list_filter = ("status", "is_default", "db_server")
    search_fields = ("slug", "name")
    fields = ("slug", "name", "status", "is_default", "db_server", "db_name", "schema_version",
              "metadata", "last_error", "created_at", "updated_at", "suspended_at", "deleted_at",
              "purged_at")
    readonly_fields = tuple(f for f in fields if f not in {"name", "metadata"})

    def has_add_permission(self, request) -> bool:
        return False  # tenants are created with their database: the console or `manage.py tenants`

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TenantAdmin)
class TenantAdminModelAdmin(ReadOnlyAdmin):
    list_display = ("user", "tenant", "role", "created_at", "created_by")
    list_filter = ("role", "tenant")
    search_fields = ("user__email", "tenant__slug")
    list_select_related = ("user", "tenant", "created_by")


@admin.register(StaffInvitation)
class StaffInvitationAdmin(ReadOnlyAdmin):
    list_display = ("user", "created_at", "expires_at", "used_at", "revoked_at", "created_by")
    fields = ("user", "created_at", "expires_at", "used_at", "revoked_at", "created_by")
    list_select_related = ("user", "created_by")


class AuditEntryAdmin(LogEntryAdmin):
    """The audit trail, read only: never added, changed or deleted here (not even by cascade)."""

    list_display = ["created", "event", "resource_url", "action", "user_url", "tenant",
                    "remote_addr"]
    list_filter = ["event", "action", "tenant"]
    search_fields = ["event", "object_repr", "actor_email", "remote_addr", "cid"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


for model in (AuditEntry, TOTPDevice, StaticDevice):
    # Devices hold TOTP secrets and backup codes: managed in the console, never shown here.
    if admin.site.is_registered(model):
        admin.site.unregister(model)
admin.site.register(AuditEntry, AuditEntryAdmin)
