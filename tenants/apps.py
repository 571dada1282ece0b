from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from auditlog.registry import auditlog
        from auditlog.signals import pre_log
        from django.core.exceptions import ImproperlyConfigured
        from django.db.models.signals import post_migrate

        from tenants import capacity, checks, signals  # noqa: F401 - checks registers the system checks

        # Server keys are validated at start-up, in every process (web, workers, commands): a
        # typo in TENANT_DATABASE_SERVERS or TENANT_DEFAULT_SERVER refuses to start.
        problems = capacity.server_key_errors()
        if problems:
            raise ImproperlyConfigured(" ".join(problems))
        from tenants.models import Tenant, TenantAdmin
        from tenants.receivers import veto_tenant_database_instances

        post_migrate.connect(signals.ensure_default_tenant, sender=self)
        post_migrate.connect(signals.refresh_templates, sender=self)
        # Tenant connections: the few a thread used last stay open, the rest close at the end
        # of each request (after Django's close_old_connections); pg_type lookups shared.
        from django.core.signals import request_finished

        from tenants import db

        request_finished.connect(db.release_connections, dispatch_uid="tenants.db.release")
        db.install_type_handlers()
        # Tenant rows are never logged automatically (auditlog would diff them against the
        # control database); their services write the trail.
        pre_log.connect(veto_tenant_database_instances, dispatch_uid="tenants.veto_tenant_db")
        # The control-plane models of the tenancy plane, logged automatically.
        auditlog.register(Tenant, exclude_fields=["updated_at"])
        auditlog.register(TenantAdmin)
