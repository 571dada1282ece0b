from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants import signals

        post_migrate.connect(signals.ensure_default_tenant, sender=self)
