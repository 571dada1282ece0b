from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ban_triggers(sender, using, **kwargs) -> None:
    """SQLite drops a table's triggers when a migration rebuilds it: put the ban table's back."""
    from django.db import connections

    from accounts import ban_table

    ban_table.ensure(connections[using])


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from auditlog.registry import auditlog
        from axes.signals import user_locked_out
        from django.contrib.auth import get_user_model

        from accounts import identity
        from accounts.app_users import figures
        from accounts.receivers import audit_lockout
        from audit.signals import recorded

        user_locked_out.connect(audit_lockout, dispatch_uid="accounts.audit_lockout")
        post_migrate.connect(_ban_triggers, sender=self, dispatch_uid="accounts.ban_triggers")
        # Cached staff snapshots die with every change of the user or their devices.
        identity.connect()
        # Every audited change of a tenant queues a refresh of its stored figures.
        recorded.connect(figures.on_recorded, dispatch_uid="accounts.figures_dirty")
        # Staff rows, logged automatically. The password hash is excluded outright: masking
        # would still store half of it.
        auditlog.register(get_user_model(), exclude_fields=["password", "last_login", "updated_at"])

