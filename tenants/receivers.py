from __future__ import annotations

from tenants.db import is_tenant_alias
from tenants.router import is_tenant_model


def veto_tenant_database_instances(sender, instance, action, **kwargs) -> bool | None:
    """auditlog's ``pre_log``: never log tenant-database rows automatically.

    auditlog reads the "before" row from the control database, so its diff of a tenant row would
    be wrong; the services write those entries through ``audit.services.record()`` instead.
    """
    if is_tenant_model(sender) or is_tenant_alias(getattr(instance._state, "db", None)):
        return False
    return None
