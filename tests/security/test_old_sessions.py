"""Issue 11's figure kept as a test: no request is served on an old portal session after a ban,
a delete, a password reset, a factor removal or a sign-out, whoever made it (the console's
actions over HTTP, or the user in the portal)."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client

from accounts.models import AppUser
from portal.services.sessions import COOKIE_NAME, session_create
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_factor, make_user
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "cobalt-lantern-orchard-5"

CONSOLE_ACTIONS = {
    "ban": ("ban", {"duration": "24h", "reason": "spam"}),
    "soft delete": ("delete", {"mode": "soft", "confirm": "1"}),
    "hard delete": ("delete", {"mode": "hard", "confirm": "1"}),
    "admin reset": ("recovery", {"sign_out": "1"}),
    "factor removal": ("factors/remove", {}),
    "sign-out": ("sign-out", {}),
}


def _portal(tenant, user) -> Client:
    _, raw = session_create(tenant=tenant, user=user)
    client = Client()
    client.cookies[COOKIE_NAME] = raw
    assert client.get(f"/p/{tenant.slug}/account/").status_code == 200
    return client


@pytest.mark.parametrize("what", list(CONSOLE_ACTIONS))
def test_a_console_action_ends_the_users_old_sessions(acme, staff_factory, what):
    ann = make_user(acme, "ann@acme.test")
    if what == "factor removal":
        make_factor(acme, ann)
    sessions = [_portal(acme, ann) for _ in range(2)]
    boss = login_verified(Client(), staff_factory("boss@console.test", tenants={acme: "admin"}))
    suffix, data = CONSOLE_ACTIONS[what]
    assert boss.post(f"/t/acme/users/{ann.pk}/{suffix}/", data).status_code == 302
    for old in sessions:
        response = old.get("/p/acme/account/")
        assert response.status_code == 302 and "/p/acme/login/" in response["Location"], what
        assert old.post("/p/acme/account/profile/", {"name": "Still here"}).status_code == 302
    if what != "hard delete":
        assert AppUser.objects.using(tenant_db.using(acme)).get(pk=ann.pk).name != "Still here"


@pytest.mark.parametrize("what", ["own sign-out everywhere", "password change", "recovery link"])
def test_the_users_own_actions_end_the_other_sessions(acme, what):
    from accounts.models import ActionToken
    from accounts.tokens import token_issue, token_link

    ann = make_user(acme, "ann@acme.test", password=make_password("plum-kettle-harbour-42"))
    current, other = _portal(acme, ann), _portal(acme, ann)
    if what == "own sign-out everywhere":
        assert current.post("/p/acme/account/sessions/global/end/").status_code == 302
        olds = [current, other]
    elif what == "password change":
        response = current.post("/p/acme/account/password/", {
            "current": "plum-kettle-harbour-42", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert response.status_code == 302
        olds = [other]
        assert current.get("/p/acme/account/").status_code == 200  # the one that changed it stays
    else:
        _, raw = token_issue(tenant=acme, user=ann, purpose=ActionToken.Purpose.RECOVERY)
        path = "/" + token_link(acme, ActionToken.Purpose.RECOVERY, raw).split("/", 3)[3]
        assert Client().post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code == 302
        olds = [current, other]
    for old in olds:
        response = old.get("/p/acme/account/")
        assert response.status_code == 302 and "/p/acme/login/" in response["Location"], what
