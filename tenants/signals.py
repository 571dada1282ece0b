from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS


def ensure_default_tenant(sender, using=DEFAULT_DB_ALIAS, verbosity=1, **kwargs) -> None:
    """post_migrate of the control database: the default tenant exists from the first migrate."""
    if using != DEFAULT_DB_ALIAS or not getattr(settings, "TENANTS_CREATE_DEFAULT_ON_MIGRATE", True):
        return
    from tenants.models import Tenant
    from tenants.services import tenant_ensure_default

    existed = Tenant.objects.filter(is_default=True, status=Tenant.Status.ACTIVE).exists()
    tenant = tenant_ensure_default(actor=None)
    if not existed and verbosity >= 1:
        print(f"  Default tenant {tenant.slug!r} is ready (database {tenant.db_name}).")


_refreshed: set[str] = set()


def refresh_templates(sender, using=DEFAULT_DB_ALIAS, verbosity=1, **kwargs) -> None:
    """post_migrate of the control database: every server has the template of the current
    tenant schema, and the templates of older schemas are dropped (once per process: flush
    emits post_migrate too)."""
    from tenants import db

    if using != DEFAULT_DB_ALIAS or not db.templates_enabled():
        return
    for server in db.server_keys():
        if server in _refreshed:
            continue
        name = db.ensure_template(server)
        db.prune_templates(server)
        _refreshed.add(server)
        if name and verbosity >= 2:
            print(f"  Tenant template {name} is ready on server {server!r}.")
