from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"
    verbose_name = "API credentials"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.services.staff import staff_credentials_reset

        def revoke_tokens(sender, *, user, reason, **kwargs) -> None:
            from credentials.services import staff_tokens_revoke_all

            staff_tokens_revoke_all(user=user, reason=reason)

        staff_credentials_reset.connect(revoke_tokens, dispatch_uid="credentials.revoke_tokens", weak=False)
