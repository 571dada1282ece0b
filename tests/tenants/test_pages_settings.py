"""``/t/<slug>/settings/``: the tenant's rules and mail templates, and what they change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.app_users import tenant_settings as services
from accounts.models import ActionToken, AppUser
from accounts.tokens import token_issue
from audit.models import AuditEntry
from core.errors import Invalid, Refused
from tenants import db as tenant_db
from tenants import emails
from tenants.config import tenant_settings
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

VALID = {
    "roles": "user, editor, admin",
    "protected_roles": "admin",
    "default_role": "user",
    "password_min_length": "12",
    "invitation_hours": "48",
    "recovery_minutes": "30",
    "magic_link_minutes": "5",
    "allowed_email_domains": "acme.test\nexample.org",
    "sender_name": "Acme Support",
}


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme", "Acme")


@pytest.fixture
def tenant_admin(acme, staff_factory, as_staff):
    user = staff_factory("ada@console.test", tenants={acme: "admin"})
    as_staff(user)
    return user


def test_settings_page_shows_the_current_values(client, acme, tenant_admin):
    response = client.get("/t/acme/settings/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="roles"' in html and 'value="user, admin"' in html
    assert 'name="magic_link_minutes"' in html and 'value="10"' in html
    assert "Invitation" in html and "Magic link" in html  # the templates table


def test_saving_settings_stores_them_and_audits_the_diff(client, acme, tenant_admin):
    response = client.post("/t/acme/settings/", {**VALID, "require_mfa": "on"})
    assert response.status_code == 302
    acme.refresh_from_db()
    s = tenant_settings(acme)
    assert s.roles == ("user", "editor", "admin")
    assert s.require_mfa is True
    assert s.magic_link_minutes == 5 and s.recovery_minutes == 30 and s.invitation_hours == 48
    assert s.allowed_email_domains == ("acme.test", "example.org")
    assert s.sender_name == "Acme Support"
    entry = AuditEntry.objects.get(tenant=acme, event="tenant.settings_update")
    assert entry.actor == tenant_admin
    assert entry.changes["magic_link_minutes"] == [10, 5]
    assert entry.changes["require_mfa"] == [False, True]


def test_redirect_urls_are_saved_one_a_line_and_shown(client, acme, tenant_admin):
    urls = "https://app.example.com/welcome?a=1,b=2\n\nhttps://app.example.com/after/*"
    response = client.post("/t/acme/settings/", {**VALID, "redirect_urls": urls})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert tenant_settings(acme).redirect_urls == ("https://app.example.com/welcome?a=1,b=2",
                                                   "https://app.example.com/after/*")
    page = client.get("/t/acme/settings/").content.decode()
    assert 'name="redirect_urls"' in page and "https://app.example.com/after/*</textarea>" in page


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"magic_link_minutes": "60"}, "magic_link_minutes", "between 1 and 10"),
        ({"invitation_hours": "1000"}, "invitation_hours", "between 1 and 72"),
        ({"recovery_minutes": "soon"}, "recovery_minutes", "whole number"),
        ({"password_min_length": "4"}, "password_min_length", "between 8 and 128"),
        ({"protected_roles": "owner"}, "protected_roles", "must be among the roles"),
        ({"default_role": "ghost"}, "default_role", "one of the roles"),
        ({"roles": "User Admin!"}, "roles", "Not a valid role name"),
        ({"roles": "user, user"}, "roles", "appears once"),
        ({"allowed_email_domains": "not a domain"}, "allowed_email_domains", "Not a domain name"),
        ({"allowed_email_domains": "acme..test"}, "allowed_email_domains", "Not a domain name"),
        ({"sender_name": "Evil\nBcc: x@y"}, "sender_name", "control"),
        ({"sender_name": "a" * 150}, "sender_name", "at most"),
        ({"redirect_urls": "https://app.example.com*"}, "redirect_urls", "a prefix ends after the host"),
        ({"redirect_urls": "https://ok.example/\njavascript:alert(1)"}, "redirect_urls", "not an absolute http(s) URL"),
        ({"redirect_urls": "https://*.example.com/"}, "redirect_urls", "a * may only end the URL"),
    ],
)
def test_invalid_settings_are_refused_and_nothing_changes(client, acme, tenant_admin, change, field, message):
    before = dict(acme.settings)
    response = client.post("/t/acme/settings/", {**VALID, **change})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert f'id="id_{field}_error"' in html
    assert "Nothing was saved" in html
    acme.refresh_from_db()
    assert acme.settings == before
    assert not AuditEntry.objects.filter(tenant=acme, event="tenant.settings_update").exists()


def test_a_role_still_held_by_users_cannot_be_removed(client, acme, tenant_admin):
    AppUser.objects.using(tenant_db.using(acme)).create(email="boss@acme.test", role="admin")
    response = client.post("/t/acme/settings/", {**VALID, "roles": "user", "protected_roles": ""})
    assert response.status_code == 400
    assert "still have the role(s) &#x27;admin&#x27;" in response.content.decode()


def test_shorter_link_lifetime_changes_the_tokens_issued(acme, tenant_admin):
    user = AppUser.objects.using(tenant_db.using(acme)).create(email="ann@acme.test")
    token, _ = token_issue(tenant=acme, user=user, purpose=ActionToken.Purpose.MAGIC_LINK)
    assert token.expires_at - token.created_at == timedelta(minutes=10)

    services.tenant_settings_update(actor=tenant_admin, tenant=acme, values={"magic_link_minutes": 3,
                                                                             "recovery_minutes": 15})
    acme = Tenant.objects.get(pk=acme.pk)
    token, _ = token_issue(tenant=acme, user=user, purpose=ActionToken.Purpose.MAGIC_LINK)
    assert token.expires_at - token.created_at == timedelta(minutes=3)
    token, _ = token_issue(tenant=acme, user=user, purpose=ActionToken.Purpose.RECOVERY)
    assert token.expires_at - token.created_at == timedelta(minutes=15)


def test_disallowed_email_domain_is_refused_by_the_invite_service(acme, tenant_admin):
    app_users = pytest.importorskip("accounts.app_users.services")
    services.tenant_settings_update(actor=tenant_admin, tenant=acme,
                                    values={"allowed_email_domains": ["acme.test"]})
    acme = Tenant.objects.get(pk=acme.pk)
    assert tenant_settings(acme).email_domain_allowed("ann@acme.test")
    assert not tenant_settings(acme).email_domain_allowed("eve@evil.test")
    with pytest.raises(Invalid, match="not allowed") as refused:
        app_users.app_user_invite(actor=tenant_admin, tenant=acme, email="eve@evil.test")
    assert refused.value.code == "domain_not_allowed"
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(email="eve@evil.test").exists()
    invited = app_users.app_user_invite(actor=tenant_admin, tenant=acme, email="ann@acme.test")
    assert invited.role == "user"


def test_the_service_checks_the_role_itself(acme, staff_factory):
    support = staff_factory(tenants={acme: "support"})
    with pytest.raises(Refused) as refused:
        services.tenant_settings_update(actor=support, tenant=acme, values={"magic_link_minutes": 1})
    assert refused.value.code == "forbidden"
    with pytest.raises(Refused):
        services.email_template_reset(actor=support, tenant=acme, kind="invite")


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_other_roles_are_refused(client, acme, staff_factory, as_staff, role):
    as_staff(staff_factory(tenants={acme: role}))
    assert client.get("/t/acme/settings/").status_code == 403
    assert client.post("/t/acme/settings/", VALID).status_code == 403
    assert client.get("/t/acme/settings/emails/invite/").status_code == 403
    assert client.post("/t/acme/settings/emails/invite/reset/").status_code == 403
    acme.refresh_from_db()
    assert acme.settings == {}


def test_other_tenant_is_404(client, acme, make_tenant, staff_factory, as_staff):
    make_tenant("globex")
    as_staff(staff_factory(tenants={acme: "admin"}))
    assert client.get("/t/globex/settings/").status_code == 404
    assert client.post("/t/globex/settings/", VALID).status_code == 404
    assert client.get("/t/globex/settings/emails/invite/").status_code == 404
    assert client.get("/t/nope/settings/").status_code == 404


# --- Mail templates -------------------------------------------------------------------------


def test_template_page_shows_the_default_and_its_preview(client, acme, tenant_admin):
    response = client.get("/t/acme/settings/emails/invite/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "You are invited to {{ tenant_name }}" in html  # the editable text
    assert "You are invited to Acme" in html  # the preview
    assert "/p/acme/accept/SAMPLE-LINK-TOKEN/" in html
    assert "expires in 3 days" in html  # the tenant's invitation lifetime, 72 hours
    assert client.get("/t/acme/settings/emails/nope/").status_code == 404


def test_editing_a_template_changes_the_mail_then_reset_restores_it(client, acme, tenant_admin):
    body = "Hi{{ name }}, join {{ tenant_name }}: {{ link }} ({{ expires_in }})"
    response = client.post("/t/acme/settings/emails/invite/", {"subject": "Welcome to {{ tenant_name }}!", "body": body})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert emails.template_for(acme, "invite") == {"subject": "Welcome to {{ tenant_name }}!", "body": body}
    rendered = emails.render_email(acme, "invite", email="a@acme.test", name="Ann", link="L", expires_minutes=60)
    assert rendered.subject == "Welcome to Acme!" and rendered.body == "Hi Ann, join Acme: L (1 hour)"
    entry = AuditEntry.objects.get(tenant=acme, event="tenant.email_template_update")
    assert entry.changes["invite.subject"] == ["You are invited to {{ tenant_name }}", "Welcome to {{ tenant_name }}!"]
    assert "Customised" in client.get("/t/acme/settings/").content.decode()

    response = client.post("/t/acme/settings/emails/invite/reset/")
    assert response.status_code == 302
    acme.refresh_from_db()
    assert emails.template_for(acme, "invite") == emails.DEFAULTS["invite"]
    assert AuditEntry.objects.filter(tenant=acme, event="tenant.email_template_reset").count() == 1


def test_preview_renders_the_draft_without_saving(client, acme, tenant_admin):
    data = {"subject": "Draft for {{ tenant_name }}", "body": "Click {{ link }} now, {{ email }}"}
    fragment = client.post("/t/acme/settings/emails/magic_link/preview/", data, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert 'id="email-preview"' in html and "<html" not in html
    assert "Draft for Acme" in html and "jane.doe@example.com" in html and "/p/acme/magic/SAMPLE-LINK-TOKEN/" in html
    plain = client.post("/t/acme/settings/emails/magic_link/preview/", data)
    assert plain.status_code == 200 and "Draft for Acme" in plain.content.decode()
    acme.refresh_from_db()
    assert acme.email_templates == {}


def test_preview_escapes_markup(client, acme, tenant_admin):
    data = {"subject": "<script>alert(1)</script>", "body": "<img src=x onerror=alert(1)> {{ link }}"}
    html = client.post("/t/acme/settings/emails/invite/preview/", data, HTTP_HX_REQUEST="true").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"subject": "Hi", "body": "No link here"}, "must contain"),
        ({"subject": "Hi", "body": "{{ link }} {{ password }}"}, "Unknown placeholder"),
        ({"subject": "Two\nlines", "body": "{{ link }}"}, "one line"),
        ({"subject": "", "body": "{{ link }}"}, "required"),
        ({"subject": "Hi", "body": "{{ link }}\x00"}, "Null characters are not allowed"),
        ({"subject": "x" * 300, "body": "{{ link }}"}, "At most 200"),
    ],
)
def test_bad_templates_are_refused(client, acme, tenant_admin, data, message):
    response = client.post("/t/acme/settings/emails/recovery/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    acme.refresh_from_db()
    assert acme.email_templates == {}
