"""Form errors name the real limits (150 for a name, 500 for a reason, 254 for an address) and sit
on their field."""

from __future__ import annotations

import pytest

from tests.accounts.app_user_data import make_user, reload

pytestmark = pytest.mark.django_db


def test_invite_announces_the_name_limit_of_150_on_the_field(staff, acme):
    response = staff("admin").post("/t/acme/users/invite/", {"email": "ann@acme.test", "name": "x" * 151,
                                                             "role": "user"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "at most 150 characters" in body and "1000" not in body and "1,000" not in body
    assert 'maxlength="150"' in body and 'maxlength="254"' in body


def test_the_ban_reason_limit_is_the_one_the_input_allows(staff, acme):
    ann = make_user(acme, "ann@acme.test")
    client = staff("admin")
    page = client.get(f"/t/acme/users/{ann.pk}/").content.decode()
    assert 'id="ban-reason" name="reason" maxlength="500"' in page
    response = client.post(f"/t/acme/users/{ann.pk}/ban/", {"duration": "24h", "reason": "r" * 501}, follow=True)
    body = response.content.decode()
    assert "at most 500 characters" in body and "2000" not in body
    assert reload(acme, ann).banned_until is None


def test_ban_form_errors_sit_on_their_field_once_and_not_as_messages(staff, acme):
    import re

    ann = make_user(acme, "ann@acme.test")
    client = staff("admin")
    url = f"/t/acme/users/{ann.pk}/ban/"
    cases = [
        ({"duration": "until", "until": "not a date", "reason": "kept"}, "until", "Enter a valid date/time."),
        ({"duration": "until", "until": ""}, "until", "Choose the date and time the ban ends."),
        ({"duration": "until", "until": "2001-01-01T00:00"}, "until", "The end of a ban must be in the future."),
        ({"duration": "24h", "reason": "r" * 501}, "reason", "at most 500 characters"),
        ({"duration": "forever-and-a-day"}, "duration", "Select a valid choice."),
    ]
    for data, field, text in cases:
        response = client.post(url, data)
        body = response.content.decode()
        assert response.status_code == 400, data
        errors = re.findall(r'<p class="error" id="ban-([a-z]+)-error">([^<]*)</p>', body)
        assert len(errors) == 1 and errors[0][0] == field and text in errors[0][1], (data, errors)
        assert body.count(text) == 1, data  # once: not also a flash message
        assert f'id="ban-{field}"' in body and 'aria-invalid="true"' in body and "autofocus" in body
        assert not list(response.context["messages"]), data
        assert reload(acme, ann).banned_until is None
    # What was typed comes back in the form.
    body = client.post(url, {"duration": "until", "until": "not a date", "reason": "kept"}).content.decode()
    assert 'name="reason" maxlength="500" value="kept"' in body
    assert '<option value="until" selected>' in body
    # A valid ban still goes through the usual way.
    response = client.post(url, {"duration": "24h", "reason": "spam"})
    assert response.status_code == 302 and reload(acme, ann).banned_until is not None


def test_mail_placeholders_bring_no_stray_space_or_double_period(acme):
    from tenants.emails import fill, render_email

    acme.name = "Acme Inc."
    mail = render_email(acme, "invite", email="jane@acme.test", name="Jane Doe", link="https://x.test/l",
                        expires_minutes=60)
    assert mail.body.startswith("Hello Jane Doe,\n") and "Acme Inc.." not in mail.body
    assert "invited to Acme Inc. Choose" in mail.body
    anonymous = render_email(acme, "invite", email="j@acme.test", name="", link="l", expires_minutes=60)
    assert anonymous.body.startswith("Hello there,\n")
    assert fill("Hello{{ name }},", {"name": "Jane"}) == "Hello Jane,"  # an override written for the old default
    assert fill("{{ name }}.", {"name": "J."}) == "J."


def test_the_template_page_previews_as_you_type(staff, acme):
    body = staff("admin").get("/t/acme/settings/emails/invite/").content.decode()
    assert 'hx-trigger="input changed delay:400ms"' in body


def test_a_suspended_tenant_says_so_and_sends_no_invitation(staff, acme):
    from accounts.app_users.services import TENANT_SUSPENDED
    from accounts.models import AppUser
    from tenants import db as tenant_db
    from tenants.models import Tenant

    client = staff("admin")
    Tenant.objects.filter(pk=acme.pk).update(status=Tenant.Status.SUSPENDED)
    page = client.get("/t/acme/users/").content.decode()
    assert 'id="tenant-suspended"' in page and "is suspended" in page
    response = client.post("/t/acme/users/invite/", {"email": "new@acme.test", "role": "user"})
    assert response.status_code == 200 and TENANT_SUSPENDED.split(":")[0] in response.content.decode()
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(email="new@acme.test").exists()


def test_impersonation_of_a_banned_user_says_why_it_is_off(staff, acme):
    from datetime import timedelta

    from django.utils import timezone

    ann = make_user(acme, "ann@acme.test", banned_until=timezone.now() + timedelta(days=1))
    page = staff("admin").get(f"/t/acme/users/{ann.pk}/").content.decode()
    assert "Not possible while this user is banned: unban them first" in page
