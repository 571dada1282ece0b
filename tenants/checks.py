from __future__ import annotations

from django.core.checks import CheckMessage, Error, Tags, Warning, register


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


@register()
def tenant_servers_configured(app_configs, **kwargs):
    """tenants.E011: every key of TENANT_DATABASE_SERVERS parses and uses the control
    database's engine, and TENANT_DEFAULT_SERVER is one of them (checked at every start)."""
    from tenants.capacity import server_key_errors

    return [Error(problem, id="tenants.E011") for problem in server_key_errors()]


@register(Tags.database)
def tenant_connections_fit(app_configs, databases=None, **kwargs):
    """tenants.E010: the planned connections fit each server's max_connections;
    tenants.E012: no tenant is placed on a server that is not configured;
    tenants.W010: a server did not answer. Run by ``migrate`` and ``check --database default``."""
    if not databases or "default" not in databases:
        return []
    from tenants import capacity

    messages: list[CheckMessage] = []
    for key, count in capacity.unknown_placements().items():
        messages.append(Error(
            f"{count} tenant(s) are placed on the server {key!r}, which TENANT_DATABASE_SERVERS "
            "does not name: their pages would fail. Configure it again.", id="tenants.E012"))
    for plan in capacity.plan():
        if plan.error:
            messages.append(Warning(f"Tenant server {plan.server!r} did not answer: {plan.error}",
                                    id="tenants.W010"))
        elif plan.fits is False:
            messages.append(Error(
                f"Server {plan.server!r}: up to {plan.planned} connections planned "
                f"(manage.py tenants capacity), {plan.available} available "
                f"(max_connections {plan.max_connections} - {plan.reserved} reserved).",
                hint="Lower WEB_WORKERS, WEB_THREADS or TENANT_CONNECTIONS_PER_THREAD, raise "
                     "max_connections, or put PgBouncer in transaction mode in front "
                     "(DATABASE_POOLER=transaction).",
                id="tenants.E010"))
    return messages
