"""Issue 11, finding 6: ``/t/<slug>/admins/add/`` gives one answer whether or not the address
has a staff account, and an existing staff member (of another tenant, say) is invited to accept
the role, not attached. Before the fix: "is now viewer" for an existing member (attached at once)
against "Invitation sent" for an unknown address."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import User
from audit.models import AuditEntry
from outbox.models import OutboxMessage
from tenants.models import TenantAdmin, TenantAdminInvite
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def other(make_tenant):
    return make_tenant("other")


def _answer(response) -> str:
    """The page after the redirect, minus what differs by nature (CSRF tokens, the address typed)."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
    html = re.sub(r"/admins/invites/[0-9a-f-]{36}/", "/admins/invites/ID/", html)
    html = re.sub(r"<time[^>]*>.*?</time>", "TIME", html)  # each offer's own expiry instant
    return html.replace("victim@other.test", "ADDRESS").replace("nobody@other.test", "ADDRESS")


def test_existing_and_unknown_addresses_get_the_same_answer_and_nobody_is_attached(staff_factory, acme, other):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    victim = staff_factory("victim@other.test", name="Victim Name", tenants={other: "admin"})
    answers, trails = [], []
    for email in ("victim@other.test", "nobody@other.test"):
        c = login_verified(Client(), boss)
        response = c.post("/t/acme/admins/add/", {"email": email, "role": "viewer"}, follow=True)
        assert response.status_code == 200
        answers.append(_answer(response))
        trails.append(list(AuditEntry.objects.filter(tenant=acme, event__startswith="tenant_admin")
                           .order_by("-id").values_list("event", flat=True)[:1]))
        TenantAdminInvite.objects.filter(user__email=email).update(revoked_at="2000-01-01T00:00Z")
    assert "Invitation sent to ADDRESS: they become viewer of this tenant when they accept it." in answers[0]
    assert answers[0] == answers[1]
    assert "Victim Name" not in answers[0]
    assert trails == [["tenant_admin.invite"], ["tenant_admin.invite"]]
    assert not AuditEntry.objects.filter(tenant=acme, event="staff.invite").exists()
    # Nobody was attached to acme: not the existing member, not the new one.
    assert list(TenantAdmin.objects.filter(tenant=acme).values_list("user__email", flat=True)) == [
        "boss@console.test"]
    assert User.objects.filter(email="nobody@other.test").exists()
    assert OutboxMessage.objects.filter(to=victim.email, kind="tenant_admin_invite").count() == 1


def test_the_member_accepts_or_declines_on_the_home_page(staff_factory, acme, other):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    member = staff_factory("member@other.test", tenants={other: "support"})
    login_verified(Client(), boss).post("/t/acme/admins/add/", {"email": "member@other.test", "role": "support"})
    invite = TenantAdminInvite.objects.get(user=member)
    c = login_verified(Client(), member)
    home = c.get("/")
    assert b"Invitations to tenants" in home.content and b'data-invite="acme"' in home.content
    assert c.get("/t/acme/users/").status_code == 404  # not a member before accepting
    # Somebody else cannot answer it.
    assert login_verified(Client(), boss).post(f"/invites/{invite.pk}/accept/").status_code == 404
    response = c.post(f"/invites/{invite.pk}/accept/", follow=True)
    assert "You are now support of Acme." in response.content.decode()
    assert TenantAdmin.objects.get(tenant=acme, user=member).role == "support"
    assert c.get("/t/acme/users/").status_code == 200
    assert c.post(f"/invites/{invite.pk}/accept/").status_code == 404  # answered
    accepted = AuditEntry.objects.get(event="tenant_admin.invite_accepted", tenant=acme)
    assert accepted.actor == member and accepted.additional_data["invited_by"] == str(boss.pk)
    # Declining: nothing attached, audited.
    stranger = staff_factory("stranger@console.test")
    login_verified(Client(), boss).post("/t/acme/admins/add/", {"email": "stranger@console.test", "role": "admin"})
    offered = TenantAdminInvite.objects.get(user=stranger)
    login_verified(Client(), stranger).post(f"/invites/{offered.pk}/decline/")
    assert not TenantAdmin.objects.filter(tenant=acme, user=stranger).exists()
    assert AuditEntry.objects.filter(event="tenant_admin.invite_declined", tenant=acme).count() == 1


def test_admins_withdraw_their_tenants_invitations_only(staff_factory, acme, other):
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    rival = staff_factory("rival@console.test", tenants={other: "admin"})
    member = staff_factory("member@console.test")
    c = login_verified(Client(), boss)
    c.post("/t/acme/admins/add/", {"email": "member@console.test", "name": "Typed Name", "role": "viewer"})
    invite = TenantAdminInvite.objects.get(user=member)
    page = c.get("/t/acme/admins/").content.decode()
    assert 'data-invite="member@console.test"' in page and "Typed Name" in page
    assert login_verified(Client(), rival).post(f"/t/other/admins/invites/{invite.pk}/withdraw/").status_code == 404
    assert login_verified(Client(), rival).post(f"/t/acme/admins/invites/{invite.pk}/withdraw/").status_code == 404
    assert c.post(f"/t/acme/admins/invites/{invite.pk}/withdraw/").status_code == 302
    assert login_verified(Client(), member).post(f"/invites/{invite.pk}/accept/").status_code == 404
    assert not TenantAdmin.objects.filter(tenant=acme, user=member).exists()
    assert AuditEntry.objects.filter(event="tenant_admin.invite_withdrawn", actor=boss).count() == 1


def test_a_tenant_admin_cannot_attach_anyone_through_the_service(staff_factory, acme, other):
    from accounts.services import staff as services
    from core.errors import Refused

    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    victim = staff_factory("victim@other.test", tenants={other: "admin"})
    with pytest.raises(Refused) as refused:
        services.tenant_admin_assign(actor=boss, tenant=acme, user=victim, role="viewer")
    assert refused.value.code == "invite_instead"
    assert not TenantAdmin.objects.filter(tenant=acme, user=victim).exists()
