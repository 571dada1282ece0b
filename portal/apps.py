from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Tenant portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from outbox.services import register_preparer
        from portal.services.auth import LINK_PREPARER, link_mail_prepare

        register_preparer(LINK_PREPARER, link_mail_prepare)
