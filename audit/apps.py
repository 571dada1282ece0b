from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from auditlog.registry import auditlog
        from auditlog.signals import pre_log
        from django.contrib.auth import get_user_model

        from audit import checks  # noqa: F401 - registers the system check
        from audit.receivers import veto_tenant_database_instances
        from tenants.models import Tenant, TenantAdmin

        pre_log.connect(veto_tenant_database_instances, dispatch_uid="audit.veto_tenant_db")
        # Control-plane models, logged automatically. The password hash is excluded outright:
        # masking would still store half of it.
        auditlog.register(get_user_model(), exclude_fields=["password", "last_login", "updated_at"])
        auditlog.register(Tenant, exclude_fields=["updated_at"])
        auditlog.register(TenantAdmin)
