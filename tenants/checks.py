from __future__ import annotations

from django.core.checks import Error, register


@register()
def tenant_models_not_registered_with_auditlog(app_configs, **kwargs):
    """tenants.E001: a tenant model registered with auditlog would be diffed against the wrong
    database (auditlog reads the old row from the control database). Services audit them."""
    from auditlog.registry import auditlog

    from tenants.router import is_tenant_model

    return [
        Error(
            f"{model._meta.label} lives in tenant databases and must not be registered with "
            "auditlog; its services record changes through audit.services.record().",
            id="tenants.E001",
        )
        for model in auditlog.get_models()
        if is_tenant_model(model)
    ]
