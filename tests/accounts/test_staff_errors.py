"""The staff services refuse with the error family of ``core.errors``, each with a stable code
(and the field it is about), and compound work happens in one transaction."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import StaffInvitation, User
from accounts.services import staff as services
from accounts.services import tenant_invites
from audit.models import AuditEntry
from core.errors import Conflict, Invalid, NotFound, Refused
from outbox.models import OutboxMessage
from tenants.models import TenantAdmin
from tenants.services import tenant_suspend
from tests.accounts.helpers import enrol
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "a-long-enough-passphrase-7"


def _nothing_left_of(email: str) -> None:
    assert not User.objects.filter(email=email).exists()
    assert not StaffInvitation.objects.exists()
    assert not TenantAdmin.objects.filter(user__email=email).exists()
    assert not OutboxMessage.objects.exists()
    assert not AuditEntry.objects.filter(object_repr=email).exists()


# --- One transaction -------------------------------------------------------------------------


def test_invite_with_a_tenant_role_is_one_transaction(admin_user, acme, monkeypatch):
    def broken_assign(**kwargs):
        raise RuntimeError("the assignment failed")

    monkeypatch.setattr(services, "_assign", broken_assign)
    with pytest.raises(RuntimeError):
        services.staff_invite(actor=admin_user, email="half@console.test", tenant=acme,
                              role="support")
    _nothing_left_of("half@console.test")


def test_the_invite_page_makes_one_service_call_that_leaves_nothing_on_failure(
    admin_client, acme, monkeypatch
):
    def refused_assign(**kwargs):
        raise Conflict("The assignment was refused.", code="test_refusal")

    monkeypatch.setattr(services, "_assign", refused_assign)
    response = admin_client.post("/staff/invite/", {
        "email": "half@console.test", "name": "Half", "tenant": "acme", "role": "support",
    })
    assert response.status_code == 400
    assert b"The assignment was refused." in response.content
    _nothing_left_of("half@console.test")


def test_the_invite_page_assigns_the_role_with_the_invitation(admin_client, acme):
    response = admin_client.post("/staff/invite/", {
        "email": "whole@console.test", "name": "Whole", "tenant": "acme", "role": "viewer",
    })
    assert response.status_code == 302
    member = User.objects.get(email="whole@console.test")
    assert TenantAdmin.objects.get(tenant=acme, user=member).role == "viewer"
    assert StaffInvitation.objects.filter(user=member).count() == 1


def test_no_invitation_into_a_tenant_that_cannot_take_staff(admin_user, acme):
    from tenants.services import tenant_delete

    tenant_delete(actor=None, tenant=acme)
    acme.refresh_from_db()
    with pytest.raises(Conflict) as refused:
        services.staff_invite(actor=admin_user, email="late@console.test", tenant=acme,
                              role="viewer")
    assert refused.value.code == "not_assignable"
    _nothing_left_of("late@console.test")


# --- Codes and fields ------------------------------------------------------------------------


def test_input_errors_name_their_field(admin_user):
    cases = [
        ({"email": "not-an-email"}, "invalid_email", "email"),
        ({"email": "a\x00@console.test"}, "invalid_email", "email"),
        ({"email": "ok@console.test", "name": "Evil\u202eName"}, "forbidden_characters", "name"),
        ({"email": "ok@console.test", "name": "n" * 151}, "too_long", "name"),
    ]
    for kwargs, code, field in cases:
        with pytest.raises(Invalid) as refused:
            services.staff_invite(actor=admin_user, **kwargs)
        assert (refused.value.code, refused.value.field) == (code, field), kwargs
    assert User.objects.count() == 1


def test_an_existing_email_is_a_conflict_in_any_case(admin_user):
    with pytest.raises(Conflict) as refused:
        services.staff_invite(actor=admin_user, email="ROOT@Console.test")
    assert refused.value.code == "exists" and refused.value.field == "email"
    assert refused.value.message == "A staff member with this email address already exists."


def test_emails_are_stored_and_found_in_their_canonical_form(admin_user, staff_factory):
    member = services.staff_invite(actor=admin_user, email="  Mixed.Case@Console.TEST ")
    assert member.email == "mixed.case@console.test"
    made = staff_factory("Other.Person@Console.test")
    assert made.email == "other.person@console.test"


def test_self_actions_and_the_last_admin_are_refused_with_codes(admin_user, acme, staff_factory):
    for action in (
        lambda: services.staff_deactivate(actor=admin_user, user=admin_user),
        lambda: services.staff_set_instance_admin(actor=admin_user, user=admin_user, value=False),
        lambda: services.staff_otp_reset(actor=admin_user, user=admin_user),
    ):
        with pytest.raises(Refused) as refused:
            action()
        assert refused.value.code == "self_action"
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    with pytest.raises(Refused) as refused:
        services.staff_deactivate(actor=admin_user, user=boss)
    assert refused.value.code == "last_admin"
    assert refused.value.facts == {"tenants": ["acme"]}


def test_tenant_roles_refusals(admin_user, acme, staff_factory):
    member = staff_factory("member@console.test", tenants={acme: "viewer"})
    with pytest.raises(Invalid) as refused:
        services.tenant_admin_assign(actor=admin_user, tenant=acme, user=member, role="owner")
    assert (refused.value.code, refused.value.field) == ("invalid_role", "role")
    with pytest.raises(Conflict) as conflict:
        tenant_invites.tenant_admin_add(actor=admin_user, tenant=acme, email="MEMBER@console.test",
                                        role="support")
    assert (conflict.value.code, conflict.value.field) == ("exists", "email")
    stranger = staff_factory("stranger@console.test")
    with pytest.raises(NotFound) as missing:
        services.tenant_admin_change_role(actor=admin_user, tenant=acme, user=stranger,
                                          role="admin")
    assert missing.value.code == "not_assigned"
    services.staff_deactivate(actor=admin_user, user=stranger)
    with pytest.raises(Conflict) as inactive:
        services.tenant_admin_assign(actor=admin_user, tenant=acme, user=stranger, role="viewer")
    assert inactive.value.code == "inactive"
    tenant_suspend(actor=None, tenant=acme)  # suspended tenants still take staff
    acme.refresh_from_db()
    services.tenant_admin_assign(actor=admin_user, tenant=acme, user=member, role="support")


def test_invitation_refusals(admin_user):
    member = services.staff_invite(actor=admin_user, email="new@console.test")
    with pytest.raises(Conflict) as refused:
        services.staff_invitation_accept(token="no-such-token", password=GOOD_PASSWORD)
    assert refused.value.code == "invalid_link"
    member.set_password(GOOD_PASSWORD)
    member.save()
    with pytest.raises(Conflict) as refused:
        services.staff_invitation_resend(actor=admin_user, user=member)
    assert refused.value.code == "already_done"


def test_a_weak_password_names_the_password_field(admin_user):
    with pytest.raises(Invalid) as refused:
        services.staff_password_change(actor=admin_user, current_password="wrong",
                                       new_password=GOOD_PASSWORD)
    assert (refused.value.code, refused.value.field) == ("wrong_password", "current_password")
    from tests.conftest import STAFF_PASSWORD

    with pytest.raises(Invalid) as refused:
        services.staff_password_change(actor=admin_user, current_password=STAFF_PASSWORD,
                                       new_password="short")
    assert refused.value.code == "weak_password" and refused.value.field == "password"
    assert refused.value.fields["password"] and all(
        isinstance(m, str) for m in refused.value.fields["password"])
    assert "too short" in refused.value.message


def test_second_factor_refusals(admin_user):
    from accounts import otp

    secret = otp.new_pending_secret()
    with pytest.raises(Invalid) as refused:
        services.staff_totp_enrol(actor=admin_user, secret=secret, code="000000")
    assert (refused.value.code, refused.value.field) == ("bad_code", "code")
    enrol(admin_user)
    with pytest.raises(Conflict) as done:
        services.staff_totp_enrol(actor=admin_user, secret=secret, code="000000")
    assert done.value.code == "already_done"
    with pytest.raises(Invalid) as refused:
        services.staff_totp_replace(actor=admin_user, current_code="000000", secret=secret,
                                    new_code="000000")
    assert (refused.value.code, refused.value.field) == ("bad_current_code", "current_code")


def test_one_click_refusals_are_shown_on_the_page(client, admin_user, staff_factory):
    login_verified(client, admin_user)
    page = client.post(f"/staff/{admin_user.pk}/deactivate/", follow=True)
    assert b"You cannot deactivate yourself. Ask another instance admin." in page.content
    member = staff_factory("member@console.test")
    page = Client()
    login_verified(page, admin_user)
    response = page.post(f"/staff/{member.pk}/resend/", follow=True)
    assert b"This member has already accepted the invitation." in response.content
