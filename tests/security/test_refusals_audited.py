"""Every refused authorization is in the audit trail (SECURITY.md, "Audit"): a role that lacks
the action (403), a tenant the actor is not assigned to (404), an instance page (404)."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry


def _refusals(**filters):
    return AuditEntry.objects.filter(event="authz.refused", **filters)


@pytest.mark.django_db(transaction=True)
def test_gate_refusals_are_audited(make_tenant, staff_factory, as_staff, client):
    acme, other = make_tenant("acme"), make_tenant("other")
    viewer = staff_factory(tenants={acme: "viewer"})
    as_staff(viewer)

    assert client.get("/t/acme/audit/").status_code == 403
    entry = _refusals(actor=viewer, tenant=acme).get()
    assert entry.additional_data["action"] == "view_audit"
    assert entry.additional_data["reason"] == "role"

    assert client.get("/t/other/users/").status_code == 404
    assert _refusals(actor=viewer, tenant=other,
                     additional_data__reason="not_assigned").count() == 1

    assert client.post("/t/acme/users/batch/", {"action": "ban"}).status_code == 403
    assert _refusals(actor=viewer, additional_data__action="ban_user").count() == 1

    for url in ("/tenants/", "/staff/", "/mail/", "/audit/"):
        assert client.get(url).status_code == 404
    assert _refusals(actor=viewer, additional_data__reason="not_instance_admin").count() == 4


@pytest.mark.django_db
def test_unknown_tenants_and_anonymous_visitors_write_nothing(staff_factory, as_staff, client):
    assert client.get("/tenants/").status_code == 302  # to sign-in
    as_staff(staff_factory())
    assert client.get("/t/nowhere/users/").status_code == 404
    assert not _refusals().exists()
