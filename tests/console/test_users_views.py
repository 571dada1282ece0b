"""The users console over HTTP: list (search, filters, sort, keyset pages, htmx partial, query
count), detail, and every single-user action: happy path, wrong role, other tenant, audit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ActionToken, AppFactor, AppUser
from audit.models import AuditEntry
from core.emails import canonical_email
from outbox.models import OutboxMessage
from tenants import db as tenant_db
from tests.accounts.app_user_data import (
    live_sessions,
    make_factor,
    make_session,
    make_user,
    make_users,
    reload,
)
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db


def emails(response) -> list[str]:
    return re.findall(r'class="cell-primary" href="/t/[a-z-]+/users/[0-9a-f-]+/">([^<]+)</a>',
                      response.content.decode())


# --- List --------------------------------------------------------------------------------------


def test_every_role_reads_the_list(acme, staff):
    make_users(acme, 3)
    for role in ("viewer", "support", "admin"):
        response = staff(role).get("/t/acme/users/")
        assert response.status_code == 200
        assert emails(response) == ["user00002@example.test", "user00001@example.test", "user00000@example.test"]
    page = staff("viewer").get("/t/acme/users/").content.decode()
    assert "Invite user" not in page and 'name="ids"' not in page  # a viewer gets no action


def test_list_answers_404_to_staff_of_another_tenant_and_redirects_the_anonymous(acme, globex, staff_factory):
    outsider = staff_factory("out@console.test", tenants={globex: "admin"})
    assert login_verified(Client(), outsider).get("/t/acme/users/").status_code == 404
    assert login_verified(Client(), outsider).get("/t/nope/users/").status_code == 404
    response = Client().get("/t/acme/users/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_search_by_substring_of_email_or_name_and_by_exact_id(acme, staff):
    ann = make_user(acme, "ann.lee@example.test", name="Ann Lee")
    make_user(acme, "bob@elsewhere.test", name="Bob Leeds")
    make_user(acme, "carl@example.test", name="Carl")
    client = staff("viewer")
    assert sorted(emails(client.get("/t/acme/users/?q=lee"))) == ["ann.lee@example.test", "bob@elsewhere.test"]
    assert emails(client.get("/t/acme/users/?q=ELSEWHERE")) == ["bob@elsewhere.test"]
    assert emails(client.get(f"/t/acme/users/?q={ann.pk}")) == ["ann.lee@example.test"]
    assert emails(client.get("/t/acme/users/?q=ca")) == ["carl@example.test"]  # short: prefix
    response = client.get("/t/acme/users/?q=nobody-at-all")
    assert emails(response) == [] and "No user matches" in response.content.decode()


def test_filters_by_status_role_mfa_and_date_ranges(acme, staff):
    now = timezone.now()
    make_user(acme, "active@example.test", last_sign_in_at=now - timedelta(days=1))
    make_user(acme, "banned@example.test", banned_until=now + timedelta(days=1))
    make_user(acme, "expired-ban@example.test", banned_until=now - timedelta(days=1))
    make_user(acme, "invited@example.test", email_confirmed_at=None, invited_at=now)
    make_user(acme, "unconfirmed@example.test", email_confirmed_at=None, password="x")
    make_user(acme, "deleted@example.test", deleted_at=now)
    make_user(acme, "root@example.test", role="admin", mfa_enabled=True)
    make_user(acme, "old@example.test", created_at=now - timedelta(days=400),
              last_sign_in_at=now - timedelta(days=300))
    client = staff("viewer")

    def got(query):
        return sorted(emails(client.get("/t/acme/users/?" + query)))

    assert got("status=banned") == ["banned@example.test"]
    assert got("status=invited") == ["invited@example.test"]
    assert got("status=unconfirmed") == ["unconfirmed@example.test"]
    assert got("status=deleted") == ["Deleted user"]  # a soft-deleted row says so, not its placeholder address
    assert "expired-ban@example.test" in got("status=active")
    assert got("role=admin") == ["root@example.test"]
    assert got("mfa=yes") == ["root@example.test"]
    assert len(got("mfa=no")) == 7
    day = (now - timedelta(days=400)).date().isoformat()
    assert got(f"created_from={day}&created_to={day}") == ["old@example.test"]
    recent = (now - timedelta(days=2)).date().isoformat()
    assert got(f"signin_from={recent}") == ["active@example.test"]
    # Invalid values are ignored, never a server error.
    assert client.get("/t/acme/users/?status=nope&created_from=yesterday&per_page=7&sort=x&cursor=%%%").status_code == 200


def test_sort_by_email_and_last_sign_in_both_ways(acme, staff):
    now = timezone.now()
    make_user(acme, "b@example.test", last_sign_in_at=now - timedelta(hours=1))
    # Typed "C@example.test": stored, like every address, in its canonical (case-folded) form, so the
    # email sort (on the unique index of the stored address) is case-insensitive.
    make_user(acme, canonical_email("C@example.test"), last_sign_in_at=now - timedelta(hours=5))
    make_user(acme, "a@example.test")  # never signed in: last in both directions
    client = staff("viewer")
    assert emails(client.get("/t/acme/users/?sort=email")) == ["a@example.test", "b@example.test", "c@example.test"]
    assert emails(client.get("/t/acme/users/?sort=-email")) == ["c@example.test", "b@example.test", "a@example.test"]
    assert emails(client.get("/t/acme/users/?sort=-last_sign_in")) == ["b@example.test", "c@example.test", "a@example.test"]
    assert emails(client.get("/t/acme/users/?sort=last_sign_in")) == ["c@example.test", "b@example.test", "a@example.test"]


@pytest.mark.parametrize("sort", ["-created", "created", "email", "-email", "-last_sign_in", "last_sign_in"])
def test_keyset_pages_cover_every_user_once_forwards_and_backwards(acme, staff, sort):
    users = make_users(acme, 60)
    now = timezone.now()
    # Half signed in (with ties), half never: the nullable sort crosses from values to nulls.
    for i, user in enumerate(users[:30]):
        AppUser.objects.using(tenant_db.using(acme)).filter(pk=user.pk).update(
            last_sign_in_at=now - timedelta(minutes=i // 3))
    client = staff("viewer")
    url, pages, seen = f"/t/acme/users/?sort={sort}&per_page=25", [], []
    while url:
        response = client.get(url)
        pages.append((url, emails(response)))
        seen += pages[-1][1]
        match = re.search(r'rel="next" href="([^"]+)"', response.content.decode())
        url = "/t/acme/users/" + match.group(1).replace("&amp;", "&") if match else ""
    assert len(seen) == 60 and len(set(seen)) == 60
    assert [len(p[1]) for p in pages] == [25, 25, 10]
    # "Previous" from the last page gives back exactly the middle page.
    last = client.get(pages[-1][0]).content.decode()
    prev = re.search(r'rel="prev" href="([^"]+)"', last).group(1).replace("&amp;", "&")
    assert emails(client.get("/t/acme/users/" + prev)) == pages[1][1]


def test_total_is_exact_up_to_the_cap_then_says_cap_plus(acme, staff, settings):
    from core.policy import policy

    make_users(acme, 12)
    settings.SECURITY_POLICY = {"exact_count_cap": 10}
    policy.cache_clear()
    try:
        page = staff("viewer").get("/t/acme/users/").content.decode()
        assert "<strong>10+</strong> users" in page
        page = staff("viewer").get("/t/acme/users/?q=user0001").content.decode()
        assert "<strong>2</strong> users match" in page
    finally:
        policy.cache_clear()


def test_htmx_gets_only_the_table_fragment(acme, staff):
    make_users(acme, 3)
    response = staff("viewer").get("/t/acme/users/?q=user", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="users-table")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<div id="users-table"') and len(emails(response)) == 3


def _count_queries(client, url, tenant) -> int:
    with CaptureQueriesContext(connections["default"]) as control, \
            CaptureQueriesContext(connections[tenant_db.using(tenant)]) as data:
        assert client.get(url).status_code == 200
    return len(control) + len(data)


@pytest.mark.parametrize("query", ["", "q=user&sort=email", "sort=-last_sign_in&status=active"])
def test_list_query_count_does_not_grow_with_page_size(acme, staff, query):
    users = make_users(acme, 120)
    for user in users[:20]:
        make_session(acme, user)
        make_factor(acme, user)
    client = staff("admin")
    client.get("/t/acme/users/")  # warm caches (content types, session)
    small = _count_queries(client, f"/t/acme/users/?per_page=25&{query}", acme)
    large = _count_queries(client, f"/t/acme/users/?per_page=100&{query}", acme)
    assert small == large, (small, large)
    assert large <= 15


# --- Detail ------------------------------------------------------------------------------------


def test_detail_shows_profile_sessions_factors_links_and_history(acme, staff):
    ann = make_user(acme, "ann@example.test", name="<b>Ann</b>", user_metadata={"team": "blue"})
    make_session(acme, ann, user_agent="Mozilla/5.0 Firefox/140", ip_address="203.0.113.7")
    make_factor(acme, ann, friendly_name="Pixel phone")
    admin = staff("admin")
    admin.post(f"/t/acme/users/{ann.pk}/recovery/")
    token = ActionToken.objects.using(tenant_db.using(acme)).get(user=ann)
    page = admin.get(f"/t/acme/users/{ann.pk}/").content.decode()
    assert "&lt;b&gt;Ann&lt;/b&gt;" in page and "<b>Ann</b>" not in page
    assert "Firefox/140" in page and "203.0.113.7" in page and "Pixel phone" in page
    assert "Password recovery" in page and token.token_hash not in page
    assert "app_user.recovery_sent" in page and "&quot;team&quot;: &quot;blue&quot;" in page
    assert f'action="/t/acme/users/{ann.pk}/ban/"' in page


def test_detail_of_a_foreign_or_unknown_id_is_404(acme, globex, staff):
    other = make_user(globex, "gina@example.test")
    client = staff("admin")
    assert client.get(f"/t/acme/users/{other.pk}/").status_code == 404
    assert client.get("/t/acme/users/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/t/acme/users/not-a-uuid/").status_code == 404
    assert client.get(f"/t/globex/users/{other.pk}/").status_code == 404


def test_support_sees_only_their_buttons(acme, staff):
    ann = make_user(acme, "ann@example.test")
    page = staff("support").get(f"/t/acme/users/{ann.pk}/").content.decode()
    assert "Send password recovery" in page and "Send magic link" in page
    assert "/ban/" not in page and "/delete/" not in page and "Save metadata" not in page


# --- Actions: happy path, wrong role, other tenant ---------------------------------------------


def _banned(tenant, user):
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=user.pk).update(banned_until=timezone.now() + timedelta(days=1))


def _with_session(tenant, user):
    make_session(tenant, user)


def _with_factor(tenant, user):
    make_factor(tenant, user)


def _unconfirmed(tenant, user):
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=user.pk).update(email_confirmed_at=None)


def _invited(tenant, user):
    AppUser.objects.using(tenant_db.using(tenant)).filter(pk=user.pk).update(
        email_confirmed_at=None, invited_at=timezone.now(), password="")


# (url suffix, form data, least role allowed, role refused, prepare, changed?, audit event)
ACTIONS = [
    ("ban", {"duration": "24h", "reason": "spam"}, "admin", "support", None,
     lambda t, u: reload(t, u).banned_until is not None, "app_user.ban"),
    ("unban", {}, "admin", "support", _banned,
     lambda t, u: reload(t, u).banned_until is None, "app_user.unban"),
    ("recovery", {"sign_out": "1"}, "support", "viewer", _with_session,
     lambda t, u: OutboxMessage.objects.filter(kind="recovery", to=u.email).exists() and live_sessions(t, u) == 0,
     "app_user.recovery_sent"),
    ("magic-link", {}, "support", "viewer", None,
     lambda t, u: OutboxMessage.objects.filter(kind="magic_link", to=u.email).exists(), "app_user.magic_link_sent"),
    ("sign-out", {}, "support", "viewer", _with_session,
     lambda t, u: live_sessions(t, u) == 0, "app_user.sign_out"),
    ("factors/remove", {}, "admin", "support", _with_factor,
     lambda t, u: not AppFactor.objects.using(tenant_db.using(t)).filter(user_id=u.pk).exists(), "app_user.factor_remove"),
    ("confirm-email", {}, "admin", "support", _unconfirmed,
     lambda t, u: reload(t, u).email_confirmed_at is not None, "app_user.email_confirm"),
    ("resend-invitation", {}, "support", "viewer", _invited,
     lambda t, u: OutboxMessage.objects.filter(kind="invite", to=u.email).exists(), "app_user.invitation_resend"),
    ("delete", {"mode": "soft", "confirm": "1"}, "admin", "support", None,
     lambda t, u: reload(t, u).deleted_at is not None, "app_user.soft_delete"),
    ("edit", {"email": "renamed@example.test", "name": "Renamed", "role": "user"}, "admin", "support", None,
     lambda t, u: reload(t, u).name == "Renamed", "app_user.update"),
    ("metadata", {"user_metadata": '{"plan": "pro"}', "app_metadata": "{}"}, "admin", "support", None,
     lambda t, u: reload(t, u).user_metadata == {"plan": "pro"}, "app_user.update"),
]
IDS = [a[0] for a in ACTIONS]


def _target(tenant, prepare):
    user = make_user(tenant, f"target@{tenant.slug}.test")
    if prepare:
        prepare(tenant, user)
    return user


@pytest.mark.parametrize("suffix, data, allowed, refused, prepare, changed, event", ACTIONS, ids=IDS)
def test_action_happy_path_and_audit(acme, staff, suffix, data, allowed, refused, prepare, changed, event):
    user = _target(acme, prepare)
    response = staff(allowed).post(f"/t/acme/users/{user.pk}/{suffix}/", data)
    assert response.status_code == 302
    assert changed(acme, user)
    assert AuditEntry.objects.filter(tenant=acme, event=event, object_pk=str(user.pk)).exists()


@pytest.mark.parametrize("suffix, data, allowed, refused, prepare, changed, event", ACTIONS, ids=IDS)
def test_action_refused_to_a_lesser_role(acme, staff, suffix, data, allowed, refused, prepare, changed, event):
    user = _target(acme, prepare)
    response = staff(refused).post(f"/t/acme/users/{user.pk}/{suffix}/", data)
    assert response.status_code == 403
    assert not changed(acme, user)
    assert not AuditEntry.objects.filter(event=event).exists()


@pytest.mark.parametrize("suffix, data, allowed, refused, prepare, changed, event", ACTIONS, ids=IDS)
def test_action_on_another_tenant_is_404_and_changes_nothing(acme, globex, staff, suffix, data, allowed,
                                                            refused, prepare, changed, event):
    other = _target(globex, prepare)
    admin = staff("admin")
    assert admin.post(f"/t/acme/users/{other.pk}/{suffix}/", data).status_code == 404
    assert admin.post(f"/t/globex/users/{other.pk}/{suffix}/", data).status_code == 404
    assert not changed(globex, other)
    assert not AuditEntry.objects.filter(event=event).exists()


@pytest.mark.parametrize("suffix", IDS)
def test_actions_never_answer_get(acme, staff, suffix):
    user = make_user(acme, "ann@example.test")
    assert staff("admin").get(f"/t/acme/users/{user.pk}/{suffix}/").status_code == 405


def test_actions_need_the_csrf_token(acme, staff_factory):
    user = make_user(acme, "ann@example.test")
    boss = staff_factory("boss@console.test", tenants={acme: "admin"})
    client = login_verified(Client(enforce_csrf_checks=True), boss)
    assert client.post(f"/t/acme/users/{user.pk}/ban/", {"duration": "24h"}).status_code == 403
    assert reload(acme, user).banned_until is None


@pytest.mark.parametrize("suffix, data", [
    ("ban", {"duration": "forever"}),
    ("delete", {"mode": "hard", "confirm": "1"}),
    ("factors/remove", {}),
])
def test_destructive_actions_need_a_recent_otp(acme, staff, suffix, data):
    user = make_user(acme, "ann@example.test")
    make_factor(acme, user)
    response = staff("admin", otp_age_seconds=3600).post(
        f"/t/acme/users/{user.pk}/{suffix}/", data, HTTP_REFERER=f"http://testserver/t/acme/users/{user.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/account/reverify/")
    stored = reload(acme, user)
    assert stored is not None and stored.banned_until is None and stored.mfa_enabled


def test_bad_input_gets_a_message_and_changes_nothing(acme, staff):
    user = make_user(acme, "ann@example.test", name="Ann")
    admin = staff("admin")
    for data in ({"email": "ann@example.test", "name": "x" * 10_000, "role": "user"},
                 {"email": "ann@example.test", "name": "Ev\u202eil", "role": "user"},
                 {"email": "not an email", "name": "Ann", "role": "user"},
                 {"email": "ann@example.test", "name": "Ann", "role": "wizard"}):
        response = admin.post(f"/t/acme/users/{user.pk}/edit/", data, follow=True)
        assert response.status_code == 200 and 'class="flash flash-error"' in response.content.decode()
    response = admin.post(f"/t/acme/users/{user.pk}/metadata/", {"user_metadata": "[1]"}, follow=True)
    assert "must be a JSON object" in response.content.decode()
    response = admin.post(f"/t/acme/users/{user.pk}/ban/", {"duration": "until", "until": "2001-01-01T00:00"}, follow=True)
    assert "future" in response.content.decode()
    response = admin.post(f"/t/acme/users/{user.pk}/delete/", {"mode": "soft"}, follow=True)
    assert "cannot be undone" in response.content.decode()
    stored = reload(acme, user)
    assert (stored.name, stored.user_metadata, stored.banned_until, stored.deleted_at) == ("Ann", {}, None, None)


def test_hard_delete_goes_back_to_the_list(acme, staff):
    user = make_user(acme, "ann@example.test")
    response = staff("admin").post(f"/t/acme/users/{user.pk}/delete/", {"mode": "hard", "confirm": "1"})
    assert response["Location"] == "/t/acme/users/" and reload(acme, user) is None


# --- Create and invite pages ---------------------------------------------------------------------


def test_invite_page(acme, staff):
    support = staff("support")
    assert support.get("/t/acme/users/invite/").status_code == 200
    response = support.post("/t/acme/users/invite/", {"email": "New@Example.test", "name": "New", "role": "user"})
    user = AppUser.objects.using(tenant_db.using(acme)).get(email="new@example.test")
    assert response["Location"] == f"/t/acme/users/{user.pk}/"
    assert OutboxMessage.objects.filter(kind="invite", to="new@example.test").exists()
    response = support.post("/t/acme/users/invite/", {"email": "new@example.test", "role": "user"})
    assert response.status_code == 200 and "already invited" in response.content.decode()
    assert staff("viewer").get("/t/acme/users/invite/").status_code == 403


def test_create_page_with_password_or_invitation(acme, staff):
    admin = staff("admin")
    response = admin.post("/t/acme/users/new/", {
        "email": "pw@example.test", "role": "user", "mode": "password", "password": "long-enough-pass", "confirmed": "1"})
    assert response.status_code == 302
    user = AppUser.objects.using(tenant_db.using(acme)).get(email="pw@example.test")
    assert user.status == "active" and user.password.startswith(("md5$", "argon2"))
    response = admin.post("/t/acme/users/new/", {"email": "short@example.test", "role": "user", "mode": "password", "password": "short"})
    assert response.status_code == 200 and "at least 10" in response.content.decode()
    assert "short" not in re.findall(r'value="([^"]*)"', response.content.decode())  # never echoed
    assert staff("support").get("/t/acme/users/new/").status_code == 403


def test_service_errors_sit_on_the_field_they_are_about(acme, staff):
    """``console.errors.form_add``: an error naming a field marks that field; a refusal (no
    field) goes to the top of the form."""
    make_user(acme, "taken@example.test")
    support, admin = staff("support"), staff("admin")
    response = support.post("/t/acme/users/invite/", {"email": "Taken@example.test", "role": "user"})
    form = response.context["form"]
    assert form.errors["email"] == ["A user with this email address already exists."]
    assert not form.non_field_errors()
    response = admin.post("/t/acme/users/new/", {"email": "m@example.test", "role": "user", "mode": "invite",
                                                 "app_metadata": "[1]"})
    form = response.context["form"]
    assert list(form.errors) == ["app_metadata"] and "JSON object" in form.errors["app_metadata"][0]
    assert "JSON object" in response.content.decode()
    response = support.post("/t/acme/users/invite/", {"email": "boss@example.test", "role": "admin"})
    form = response.context["form"]
    assert form.non_field_errors() == ["Users with the protected role 'admin' can only be changed by a tenant admin."]
    assert not AppUser.objects.using(tenant_db.using(acme)).filter(email__in=["m@example.test", "boss@example.test"])


def test_detail_offers_impersonation_to_admins_only(acme, staff):
    ann = make_user(acme, "ann@example.test")
    start = f'action="/t/acme/impersonations/start/{ann.pk}/"'
    assert start in staff("admin").get(f"/t/acme/users/{ann.pk}/").content.decode()
    assert start not in staff("support").get(f"/t/acme/users/{ann.pk}/").content.decode()


def test_an_admin_started_recovery_asks_whether_to_end_the_sessions(acme, staff):
    """Issue 11, finding 8: ending every session is an explicit choice, ticked by default."""
    support = staff("support")
    ann = make_user(acme, "ann@example.test")
    page = support.get(f"/t/acme/users/{ann.pk}/").content.decode()
    box = re.search(r'<input type="checkbox" name="sign_out"[^>]*>', page)
    assert box is not None and "checked" in box.group(0)
    make_session(acme, ann)
    kept = support.post(f"/t/acme/users/{ann.pk}/recovery/", {})  # the box unticked
    assert kept.status_code == 302 and live_sessions(acme, ann) == 1
    entry = AuditEntry.objects.filter(event="app_user.recovery_sent", object_pk=str(ann.pk)).latest("id")
    assert entry.additional_data["signed_out"] is False and entry.additional_data["sessions_ended"] == 0
    ended = support.post(f"/t/acme/users/{ann.pk}/recovery/", {"sign_out": "1"})
    assert ended.status_code == 302 and live_sessions(acme, ann) == 0
    entry = AuditEntry.objects.filter(event="app_user.recovery_sent", object_pk=str(ann.pk)).latest("id")
    assert entry.additional_data["signed_out"] is True and entry.additional_data["sessions_ended"] == 1
