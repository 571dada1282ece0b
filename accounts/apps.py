from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from accounts.receivers import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="accounts.audit_lockout")

