from __future__ import annotations

import pytest

from accounts.services.staff import staff_deactivate, tenant_admin_remove
from core.errors import Refused

pytestmark = pytest.mark.django_db


def test_the_last_working_admin_of_a_tenant_cannot_be_deactivated_or_removed(make_tenant, staff_factory):
    acme = make_tenant("acme")
    root = staff_factory(superuser=True)
    ann = staff_factory("ann@console.test", tenants={acme: "admin"})
    bob = staff_factory("bob@console.test", tenants={acme: "admin"})
    staff_deactivate(actor=root, user=bob)  # ann is still a working admin: allowed
    with pytest.raises(Refused, match="last active admin of acme") as refused:
        staff_deactivate(actor=root, user=ann)
    assert refused.value.code == "last_admin"
    ann.refresh_from_db()
    assert ann.is_active
    # A deactivated admin does not count: removing ann would leave only bob (inactive).
    with pytest.raises(Refused, match="last one") as refused:
        tenant_admin_remove(actor=root, tenant=acme, user=ann)
    assert refused.value.code == "last_admin"
