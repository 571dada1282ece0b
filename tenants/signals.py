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
