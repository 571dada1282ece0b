from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import StaffInvitation, User
from accounts.services import staff as services
from audit.models import AuditEntry
from core.errors import Refused
from outbox.models import OutboxMessage
from tenants.models import TenantAdmin
from tests.accounts.helpers import code_from_base32, enrol, sign_in_password
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db(transaction=False)

NEW_PASSWORD = "another-long-passphrase-42"


def _link(message: OutboxMessage) -> str:
    return re.search(r"http://[^\s]+/staff/accept/[^\s]+/", message.body).group(0)


def test_staff_list_is_for_instance_admins_only(admin_client, client, staff_factory):
    page = admin_client.get("/staff/")
    assert page.status_code == 200
    assert b"root@console.test" in page.content
    member = staff_factory("support@console.test")
    other = Client()
    login_verified(other, member)
    for path in ("/staff/", f"/staff/{member.pk}/", "/mail/"):
        assert other.get(path).status_code == 404
    assert other.post(f"/staff/{member.pk}/deactivate/").status_code == 404


def test_invite_accept_and_first_sign_in(admin_client, admin_user, make_tenant, django_capture_on_commit_callbacks):
    tenant = make_tenant("acme")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/staff/invite/", {
            "email": "New.Person@Console.test", "name": "New Person", "tenant": "acme",
            "role": "support",
        })
    assert response.status_code == 302
    member = User.objects.get(email="new.person@console.test")
    assert not member.has_usable_password()
    assert TenantAdmin.objects.get(user=member, tenant=tenant).role == "support"
    message = OutboxMessage.objects.get(kind="staff_invite")
    assert message.to == member.email and message.status == OutboxMessage.Status.SENT
    assert len(mail.outbox) == 1
    invitation = StaffInvitation.objects.get(user=member)
    link = _link(message)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert invitation.token_hash != token and token not in str(AuditEntry.objects.values_list(
        "additional_data", flat=True))
    assert {"staff.invite", "tenant_admin.assign"} <= set(
        AuditEntry.objects.filter(object_pk=str(member.pk)).values_list("event", flat=True))
    # The page shows the invitation; the member appears as "invited".
    assert b"Invited" in admin_client.get("/staff/").content

    visitor = Client()
    path = link.split("http://127.0.0.1:8000", 1)[1]
    page = visitor.get(path)
    assert page.status_code == 200 and b"new.person@console.test" in page.content
    bad = visitor.post(path, {"password": "short", "password_confirm": "short"})
    assert bad.status_code == 200 and b"too short" in bad.content
    ok = visitor.post(path, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert ok.status_code == 302 and ok["Location"].startswith("/login/?email=")
    # Single use.
    assert visitor.get(path).status_code == 404
    assert visitor.post(path, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}).status_code == 404
    member.refresh_from_db()
    assert member.check_password(NEW_PASSWORD)
    # First sign-in forces enrolment.
    assert sign_in_password(visitor, member.email, NEW_PASSWORD)["Location"] == "/login/enroll/"
    secret = re.search(r'data-totp-secret="([A-Z2-7]+)"', visitor.get("/login/enroll/").content.decode()).group(1)
    assert visitor.post("/login/enroll/", {"code": code_from_base32(secret)}).status_code == 200
    home = visitor.get("/")
    assert home.status_code == 200 and b'data-tenant="acme"' in home.content and b"support" in home.content


def test_expired_or_revoked_invitations_do_not_work(admin_client, admin_user):
    member = services.staff_invite(actor=admin_user, email="late@console.test")
    first = _link(OutboxMessage.objects.get())
    services.staff_invitation_resend(actor=admin_user, user=member)
    second = _link(OutboxMessage.objects.order_by("-created_at").first())
    visitor = Client()
    assert visitor.get(first.split("8000", 1)[1]).status_code == 404
    assert visitor.get(second.split("8000", 1)[1]).status_code == 200
    StaffInvitation.objects.filter(user=member, revoked_at=None).update(expires_at=timezone.now())
    assert visitor.get(second.split("8000", 1)[1]).status_code == 404
    assert visitor.get("/staff/accept/" + "x" * 500 + "/").status_code == 404


def test_invite_refuses_bad_input_and_duplicates(admin_client, admin_user):
    for data, message in [
        ({"email": "not-an-email", "role": "viewer"}, b"Enter a valid email address."),
        ({"email": "root@console.test", "role": "viewer"}, b"already exists"),
        ({"email": "a@console.test", "name": "<script>x</script>\u202e", "role": "viewer"},
         b"text-direction"),
        ({"email": "a@console.test", "name": "n" * 10_000, "role": "viewer"}, b"at most 150"),
        ({"email": "a@console.test", "role": "owner"}, b"Select a valid choice"),
    ]:
        response = admin_client.post("/staff/invite/", data)
        assert response.status_code == 400, data
        assert message in response.content, data
    assert User.objects.count() == 1
    assert not OutboxMessage.objects.exists()


def test_nobody_deactivates_or_demotes_themselves_and_the_last_admin_stays(admin_client, admin_user, staff_factory):
    response = admin_client.post(f"/staff/{admin_user.pk}/deactivate/", follow=True)
    assert b"You cannot deactivate yourself" in response.content
    response = admin_client.post(f"/staff/{admin_user.pk}/instance-admin/", {"value": "0"}, follow=True)
    assert b"cannot revoke instance admin from yourself" in response.content
    admin_user.refresh_from_db()
    assert admin_user.is_active and admin_user.is_superuser
    # The service refuses the last active instance admin whoever asks.
    other = staff_factory("other@console.test", superuser=True)
    services.staff_deactivate(actor=admin_user, user=other)
    with pytest.raises(Refused, match="last active instance admin") as refused:
        services.staff_set_instance_admin(actor=other, user=admin_user, value=False)
    assert refused.value.code == "last_admin"
    with pytest.raises(Refused, match="last active instance admin") as refused:
        services.staff_deactivate(actor=other, user=admin_user)
    assert refused.value.code == "last_admin"
    with pytest.raises(Refused) as refused:
        services.staff_deactivate(actor=staff_factory("plain@console.test"), user=other)
    assert refused.value.code == "forbidden"


def test_deactivate_ends_sessions_and_reactivate(admin_client, admin_user, staff_factory):
    member = staff_factory("member@console.test")
    member_client = Client()
    login_verified(member_client, member)
    assert member_client.get("/").status_code == 200
    response = admin_client.post(f"/staff/{member.pk}/deactivate/")
    assert response.status_code == 302
    member.refresh_from_db()
    assert not member.is_active
    assert member_client.get("/")["Location"] == "/login/"
    assert sign_in_password(Client(), member.email).status_code == 200  # refused, same page
    entry = AuditEntry.objects.get(event="staff.deactivate")
    assert entry.changes == {"is_active": [True, False]}
    assert entry.actor_id == admin_user.pk
    assert AuditEntry.objects.filter(object_pk=str(member.pk), event="accounts.user.update").count() == 0
    admin_client.post(f"/staff/{member.pk}/reactivate/")
    member.refresh_from_db()
    assert member.is_active


def test_destructive_staff_actions_need_a_recent_otp(client, admin_user, staff_factory):
    member = staff_factory("member@console.test")
    login_verified(client, admin_user, otp_age_seconds=3600)
    response = client.post(f"/staff/{member.pk}/deactivate/",
                           HTTP_REFERER=f"http://testserver/staff/{member.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/account/reverify/")
    member.refresh_from_db()
    assert member.is_active


def test_grant_and_revoke_instance_admin(admin_client, staff_factory):
    member = staff_factory("member@console.test")
    admin_client.post(f"/staff/{member.pk}/instance-admin/", {"value": "1"})
    member.refresh_from_db()
    assert member.is_superuser
    admin_client.post(f"/staff/{member.pk}/instance-admin/", {"value": "0"})
    member.refresh_from_db()
    assert not member.is_superuser
    events = list(AuditEntry.objects.filter(object_pk=str(member.pk)).values_list("event", "changes"))
    assert ("staff.grant_admin", {"is_superuser": [False, True]}) in events
    assert ("staff.revoke_admin", {"is_superuser": [True, False]}) in events


def test_reset_two_step_forces_a_new_enrolment_and_ends_the_session(admin_client, staff_factory):
    member = staff_factory("member@console.test")
    member_client = Client()
    login_verified(member_client, member)
    enrol(member)
    response = admin_client.post(f"/staff/{member.pk}/two-step/reset/")
    assert response.status_code == 302
    assert not member.totpdevice_set.exists() and not member.staticdevice_set.exists()
    assert member_client.get("/")["Location"] == "/login/"
    assert sign_in_password(member_client, member.email)["Location"] == "/login/enroll/"
    assert AuditEntry.objects.filter(event="staff.otp_reset", object_pk=str(member.pk)).exists()


def test_tenant_roles_from_the_staff_page(admin_client, staff_factory, make_tenant):
    tenant = make_tenant("acme")
    member = staff_factory("member@console.test")
    page = admin_client.get(f"/staff/{member.pk}/")
    assert page.status_code == 200 and b"acme" in page.content
    admin_client.post(f"/staff/{member.pk}/roles/", {"tenant": "acme", "role": "viewer"})
    assert TenantAdmin.objects.get(user=member, tenant=tenant).role == "viewer"
    admin_client.post(f"/staff/{member.pk}/roles/", {"tenant": "acme", "role": "admin"})
    assert TenantAdmin.objects.get(user=member, tenant=tenant).role == "admin"
    # The tenant's last admin cannot be removed.
    response = admin_client.post(f"/staff/{member.pk}/roles/acme/remove/", follow=True)
    assert b"last one" in response.content
    assert TenantAdmin.objects.filter(user=member, tenant=tenant).exists()
    admin_client.post(f"/staff/{member.pk}/roles/", {"tenant": "acme", "role": "nonsense"})
    assert TenantAdmin.objects.get(user=member, tenant=tenant).role == "admin"
    assert admin_client.post(f"/staff/{member.pk}/roles/nope/remove/").status_code == 404
    events = list(AuditEntry.objects.filter(tenant=tenant, event__startswith="tenant_admin.")
                  .values_list("event", flat=True))
    assert events.count("tenant_admin.assign") == 1 and events.count("tenant_admin.role_change") == 1


def test_unknown_member_answers_404(admin_client):
    assert admin_client.get("/staff/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_a_member_sees_only_their_tenants_on_home(client, staff_factory, make_tenant):
    acme, other = make_tenant("acme"), make_tenant("other")
    member = staff_factory("member@console.test", tenants={acme: "viewer"})
    login_verified(client, member)
    home = client.get("/")
    assert b'data-tenant="acme"' in home.content
    assert b'data-tenant="other"' not in home.content
    assert other  # assigned to nobody
