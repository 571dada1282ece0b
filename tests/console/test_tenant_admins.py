from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import staff as services
from audit.models import AuditEntry
from core.errors import Refused
from outbox.models import OutboxMessage
from tenants.models import TenantAdmin, TenantAdminInvite
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def other(make_tenant):
    return make_tenant("other")


def _client(user) -> Client:
    return login_verified(Client(), user)


def test_tenant_admin_manages_the_staff_of_their_tenant(staff_factory, acme):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    helper = staff_factory("helper@console.test")
    c = _client(boss)
    page = c.get("/t/acme/admins/")
    assert page.status_code == 200 and b"boss@console.test" in page.content
    # An existing staff member is invited; the role is theirs once they accept (test_tenant_invites.py).
    assert c.post("/t/acme/admins/add/", {"email": "Helper@console.test", "role": "support"}).status_code == 302
    assert not TenantAdmin.objects.filter(tenant=acme, user=helper).exists()
    _client(helper).post(f"/invites/{TenantAdminInvite.objects.get(user=helper).pk}/accept/")
    assert TenantAdmin.objects.get(tenant=acme, user=helper).role == "support"
    # Invite a new one: to the console, and to the tenant.
    assert c.post("/t/acme/admins/add/", {"email": "fresh@console.test", "role": "viewer"}).status_code == 302
    fresh = User.objects.get(email="fresh@console.test")
    assert not fresh.is_superuser and not TenantAdmin.objects.filter(tenant=acme, user=fresh).exists()
    assert TenantAdminInvite.objects.get(user=fresh).role == "viewer"
    assert OutboxMessage.objects.get(to="fresh@console.test", kind="staff_invite").tenant == acme
    TenantAdmin.objects.create(tenant=acme, user=fresh, role="viewer")  # as if accepted
    # Change a role, remove.
    c.post(f"/t/acme/admins/{helper.pk}/role/", {"role": "admin"})
    assert TenantAdmin.objects.get(tenant=acme, user=helper).role == "admin"
    c.post(f"/t/acme/admins/{fresh.pk}/remove/")
    assert not TenantAdmin.objects.filter(tenant=acme, user=fresh).exists()
    events = set(AuditEntry.objects.filter(tenant=acme).values_list("event", flat=True))
    assert {"tenant_admin.invite", "tenant_admin.invite_accepted", "tenant_admin.role_change",
            "tenant_admin.remove"} <= events
    # Bad input changes nothing.
    response = c.post("/t/acme/admins/add/", {"email": "x" * 300, "role": "viewer"})
    assert response.status_code == 400
    response = c.post("/t/acme/admins/add/", {"email": "helper@console.test", "role": "viewer"})
    assert response.status_code == 400 and b"already has a role" in response.content
    c.post(f"/t/acme/admins/{helper.pk}/role/", {"role": "superuser"})
    assert TenantAdmin.objects.get(tenant=acme, user=helper).role == "admin"


def test_support_gets_404_elsewhere_and_is_refused_admin_actions(staff_factory, acme, other):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    support = staff_factory("support@console.test", tenants={acme: "support"})
    c = _client(support)
    assert c.get("/t/other/admins/").status_code == 404
    assert c.post("/t/other/admins/add/", {"email": "x@console.test", "role": "admin"}).status_code == 404
    assert c.get("/t/nope/admins/").status_code == 404
    assert c.get("/t/acme/admins/").status_code == 403
    assert c.post("/t/acme/admins/add/", {"email": "x@console.test", "role": "admin"}).status_code == 403
    assert c.post(f"/t/acme/admins/{boss.pk}/remove/").status_code == 403
    assert c.post(f"/t/acme/admins/{support.pk}/role/", {"role": "admin"}).status_code == 403
    assert TenantAdmin.objects.get(tenant=acme, user=support).role == "support"
    assert not User.objects.filter(email="x@console.test").exists()
    with pytest.raises(Refused) as exc:
        services.tenant_admin_assign(actor=support, tenant=acme, user=support, role="admin")
    assert exc.value.code == "forbidden"


def test_a_tenant_admin_cannot_demote_or_remove_themselves_or_the_last_admin(staff_factory, acme):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    root = staff_factory("root@console.test", superuser=True)
    c = _client(boss)
    response = c.post(f"/t/acme/admins/{boss.pk}/remove/", follow=True)
    assert b"You cannot remove yourself" in response.content
    response = c.post(f"/t/acme/admins/{boss.pk}/role/", {"role": "viewer"}, follow=True)
    assert b"You cannot change the role of yourself" in response.content
    assert TenantAdmin.objects.get(tenant=acme, user=boss).role == "admin"
    # An instance admin is refused too: boss is the tenant's last admin.
    with pytest.raises(Refused, match="last one") as exc:
        services.tenant_admin_remove(actor=root, tenant=acme, user=boss)
    assert exc.value.code == "last_admin"
    with pytest.raises(Refused, match="last one") as exc:
        services.tenant_admin_change_role(actor=root, tenant=acme, user=boss, role="support")
    assert exc.value.code == "last_admin"
    second = staff_factory("second@console.test", tenants={acme: "admin"})
    services.tenant_admin_remove(actor=root, tenant=acme, user=boss)
    assert list(TenantAdmin.objects.filter(tenant=acme).values_list("user", flat=True)) == [second.pk]


def test_foreign_member_ids_answer_404(staff_factory, acme, other):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    elsewhere = staff_factory("elsewhere@console.test", tenants={other: "viewer"})
    c = _client(boss)
    assert c.post(f"/t/acme/admins/{elsewhere.pk}/remove/").status_code == 404
    assert c.post(f"/t/acme/admins/{elsewhere.pk}/role/", {"role": "admin"}).status_code == 404
    assert TenantAdmin.objects.get(tenant=other, user=elsewhere).role == "viewer"


def test_a_tenant_admin_cannot_invite_an_instance_admin(staff_factory, acme):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    with pytest.raises(Refused) as exc:
        services.staff_invite(actor=boss, email="evil@console.test", is_superuser=True, tenant=acme,
                              role="admin")
    assert exc.value.code == "forbidden"
    with pytest.raises(Refused) as exc:
        services.staff_invite(actor=boss, email="evil@console.test")
    assert exc.value.code == "forbidden"
