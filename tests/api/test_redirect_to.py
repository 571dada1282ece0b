"""``redirect_to`` (GoTrue's redirect URL allow-list): a link made by the API carries an allowed
URL, the portal sends the user there once the link is used, and never to a URL the tenant's
``redirect_urls`` do not hold (the API drops it, the portal checks the link's query again)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from accounts.app_users.tenant_settings import tenant_settings_update
from core.errors import Invalid
from outbox.models import OutboxMessage
from tenants.config import TenantSettings, tenant_settings

pytestmark = pytest.mark.django_db(transaction=True)

WELCOME = "https://app.example.com/welcome?from=mail"
PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def boss(staff_factory):
    return staff_factory("boss@console.test", superuser=True)


@pytest.fixture
def allow(acme, boss):
    tenant_settings_update(actor=boss, tenant=acme, values={
        "redirect_urls": [WELCOME, "https://app.example.com/after/*"]})
    acme.refresh_from_db()
    return acme


def _path(link: str) -> str:
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _mailed(email: str) -> str:
    body = OutboxMessage.objects.filter(to=email).latest("created_at").body
    return re.search(r"https?://\S+/p/acme/accept/\S+", body).group(0)


def test_the_allow_list_rule():
    s = TenantSettings(redirect_urls=("https://a.example/x", "https://a.example/app/*"))
    assert s.redirect_allowed("https://a.example/x") == "https://a.example/x"
    assert s.redirect_allowed("https://a.example/app/deep?q=1") == "https://a.example/app/deep?q=1"
    for foreign in ("https://a.example/x/more", "https://a.example/ap", "https://evil.example/app/",
                    "https://a.example.evil/app/", "javascript:alert(1)", "//evil.example/app/",
                    "https://a.example/app/\\@evil", "https://user@a.example/app/", "", None):
        assert s.redirect_allowed(foreign) == "", foreign
    assert TenantSettings().redirect_allowed("https://a.example/x") == ""  # empty list: nothing


def test_the_setting_is_validated(acme, boss):
    for bad in ("https://app.example.com*", "app.example.com/x", "ftp://app.example.com/", "https://*.example.com/",
                "javascript:alert(1)", "https://u@app.example.com/"):
        with pytest.raises(Invalid) as exc:
            tenant_settings_update(actor=boss, tenant=acme, values={"redirect_urls": [bad]})
        assert "redirect_urls" in exc.value.fields, bad
    acme.refresh_from_db()
    assert tenant_settings(acme).redirect_urls == ()


def test_invite_redirect_honoured_after_the_invitation_is_accepted(client, allow, gotrue):
    g = gotrue("admin")
    assert g("POST", f"/invite?redirect_to={WELCOME.replace('?', '%3F').replace('=', '%3D')}",
             {"email": "ada@example.com"}).status_code == 200
    link = _mailed("ada@example.com")
    assert "redirect_to=https%3A%2F%2Fapp.example.com%2Fwelcome%3Ffrom%3Dmail" in link
    page = client.get(_path(link))
    assert page.status_code == 200
    done = client.post(_path(link), {"password1": PASSWORD, "password2": PASSWORD})
    assert done.status_code == 302 and done["Location"] == WELCOME
    assert done.cookies["portal_session"].value  # signed in, then sent on


def test_a_foreign_redirect_is_never_followed(client, allow, gotrue):
    g = gotrue("admin")
    assert g("POST", "/invite?redirect_to=https://evil.example/", {"email": "bob@example.com"}).status_code == 200
    link = _mailed("bob@example.com")
    assert "redirect_to" not in link  # dropped: GoTrue falls back to the site URL
    # Somebody edits the mailed link: the portal checks it again and goes to its own page.
    forged = _path(link) + "?redirect_to=https%3A%2F%2Fevil.example%2F"
    done = client.post(forged, {"password1": PASSWORD, "password2": PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/p/acme/account/"


def test_generate_link_recovery_and_magic(client, allow, gotrue, acme):
    g = gotrue("admin")
    signup = g("POST", "/admin/generate_link", {"type": "signup", "email": "cy@example.com", "password": PASSWORD})
    assert signup.status_code == 200
    # Query first (both clients), then the body's.
    rec = g("POST", "/admin/generate_link?redirect_to=https://app.example.com/after/reset",
            {"type": "recovery", "email": "cy@example.com", "redirect_to": "https://app.example.com/after/other"})
    assert rec.status_code == 200, rec.content
    body = rec.json()
    assert body["redirect_to"] == "https://app.example.com/after/reset"
    assert body["action_link"].endswith("?redirect_to=https%3A%2F%2Fapp.example.com%2Fafter%2Freset")
    new = "another-horse-battery-7"
    done = client.post(_path(body["action_link"]), {"password1": new, "password2": new})
    assert done.status_code == 302 and done["Location"] == "https://app.example.com/after/reset"
    # auth-js spreads camelCase options into the body; a foreign URL falls back to the portal.
    magic = g("POST", "/admin/generate_link", {"type": "magiclink", "email": "cy@example.com",
                                               "redirectTo": "https://evil.example/after/"}).json()
    assert magic["redirect_to"].endswith("/p/acme/") and "redirect_to" not in magic["action_link"]
    used = client.post(_path(magic["action_link"]))
    assert used.status_code == 302 and used["Location"] == "/p/acme/account/"
    magic = g("POST", "/admin/generate_link", {"type": "magiclink", "email": "cy@example.com",
                                               "redirectTo": "https://app.example.com/after/in"}).json()
    used = client.post(_path(magic["action_link"]))
    assert used.status_code == 302 and used["Location"] == "https://app.example.com/after/in"


def test_the_redirect_survives_the_second_factor(client, allow, gotrue, acme):
    from binascii import unhexlify

    from django.utils import timezone
    from django_otp.oath import TOTP
    from django_otp.util import random_hex

    from accounts.models import AppFactor, AppUser
    from tenants import db as tenant_db

    alias = tenant_db.using(acme)
    g = gotrue("admin")
    assert g("POST", "/admin/generate_link", {"type": "signup", "email": "mfa@example.com",
                                              "password": PASSWORD}).status_code == 200
    user = AppUser.objects.using(alias).get(email="mfa@example.com")
    factor = AppFactor.objects.using(alias).create(user_id=user.pk, key=random_hex(20), confirmed_at=timezone.now())
    AppUser.objects.using(alias).filter(pk=user.pk).update(mfa_enabled=True, email_confirmed_at=timezone.now())
    link = g("POST", "/admin/generate_link?redirect_to=https://app.example.com/after/mfa",
             {"type": "magiclink", "email": "mfa@example.com"}).json()["action_link"]
    step = client.post(_path(link))
    assert step.status_code == 302
    assert step["Location"] == "/p/acme/login/verify/?redirect_to=https%3A%2F%2Fapp.example.com%2Fafter%2Fmfa"
    form = client.get(step["Location"]).content.decode()
    assert 'action="/p/acme/login/verify/?redirect_to=https%3A%2F%2Fapp.example.com%2Fafter%2Fmfa"' in form
    code = f"{TOTP(unhexlify(factor.key), factor.step, 0, factor.digits, 0).token():06d}"
    done = client.post(step["Location"], {"code": code})
    assert done.status_code == 302 and done["Location"] == "https://app.example.com/after/mfa"
