"""The GoTrue-compatible surface on the Django test client: shapes, errors in both formats,
the permission matrix, tenant isolation, the audit trail naming the key."""

from __future__ import annotations

import uuid

import pytest
from supabase_auth.types import Factor, User

from accounts.app_users import services
from accounts.models import AppUser
from audit.models import AuditEntry
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db(transaction=True)


def _boss():
    from accounts.models import User as Staff

    return Staff.objects.filter(email="boss@console.test").first() or Staff.objects.create_superuser(
        "boss@console.test", "correct-horse-battery-9")


def _user(acme, email="ada@example.com", **kwargs):
    return services.app_user_create(actor=_boss(), tenant=acme, email=email, **kwargs)


def test_create_get_and_shape_validates_as_supabase_user(acme, gotrue):
    g = gotrue("admin")
    r = g("POST", "/admin/users", {"email": "Ada@Example.com", "password": "correct-horse-battery",
                                    "email_confirm": True, "user_metadata": {"full_name": "Ada"},
                                    "app_metadata": {"plan": "pro"}, "phone_confirm": None})
    assert r.status_code == 200, r.content
    body = r.json()
    user = User.model_validate(body)
    assert user.email == "ada@example.com" and user.email_confirmed_at is not None
    assert body["app_metadata"] == {"provider": "email", "providers": ["email"], "plan": "pro"}
    assert body["identities"][0]["provider"] == "email" and body["phone"] == ""
    got = g("GET", f"/admin/users/{body['id']}")
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    entry = AuditEntry.objects.filter(event="app_user.create").get()
    assert entry.actor_email.startswith("api-key:acsk_")
    assert entry.additional_data["via"] == "api" and entry.additional_data["credential_prefix"].startswith("acsk_")


def test_error_formats_follow_the_version_header(acme, gotrue, api_key):
    _user(acme)
    new = gotrue("admin")("POST", "/admin/users", {"email": "ada@example.com"})
    assert new.status_code == 422 and new["X-Supabase-Api-Version"] == "2024-01-01"
    assert new.json()["code"] == "email_exists" and new["x-sb-error-code"] == "email_exists"
    old = gotrue("admin", version=False)("POST", "/admin/users", {"email": "ada@example.com"})
    assert old.status_code == 422 and "X-Supabase-Api-Version" not in old
    assert old.json() == {"code": 422, "error_code": "email_exists", "msg": old.json()["msg"]}


def test_weak_password_carries_reasons(acme, gotrue):
    r = gotrue("admin")("POST", "/admin/users", {"email": "x@example.com", "password": "short"})
    assert r.status_code == 422
    assert r.json()["code"] == "weak_password" and r.json()["weak_password"] == {"reasons": ["length"]}
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()


def test_list_pages_with_total_and_link(acme, gotrue):
    for i in range(5):
        _user(acme, email=f"u{i}@example.com")
    g = gotrue("viewer")
    r = g("GET", "/admin/users?page=&per_page=")
    assert r.status_code == 200 and r["X-Total-Count"] == "5"
    assert r["Link"] == '</t/acme/auth/v1/admin/users?page=0&per_page=50>; rel="last"'.replace("page=0", "page=1")
    r = g("GET", "/admin/users?page=2&per_page=2")
    assert [u["email"] for u in r.json()["users"]] == ["u2@example.com", "u1@example.com"]
    assert r["Link"] == ('</t/acme/auth/v1/admin/users?page=3&per_page=2>; rel="next", '
                         '</t/acme/auth/v1/admin/users?page=3&per_page=2>; rel="last"')
    assert g("GET", "/admin/users?page=x").json()["code"] == "validation_failed"
    assert g("GET", "/admin/users?filter=u4").json()["users"][0]["email"] == "u4@example.com"


def test_update_merges_metadata_bans_and_unbans(acme, gotrue):
    user = _user(acme, user_metadata={"keep": 1, "drop": 2})
    g = gotrue("admin")
    r = g("PUT", f"/admin/users/{user.pk}", {"user_metadata": {"drop": None, "new": 3}, "ban_duration": "24h"})
    assert r.status_code == 200, r.content
    assert r.json()["user_metadata"] == {"keep": 1, "new": 3} and r.json()["banned_until"]
    r = g("PUT", f"/admin/users/{user.pk}", {"ban_duration": "none"})
    assert "banned_until" not in r.json()
    assert g("PUT", f"/admin/users/{user.pk}", {"ban_duration": "none"}).status_code == 200  # idempotent
    bad = g("PUT", f"/admin/users/{user.pk}", {"ban_duration": "7d"})
    assert bad.status_code == 400 and 'unknown unit "d"' in bad.json()["message"]
    assert g("PUT", f"/admin/users/{user.pk}", {"password": "x" * 20}).status_code == 400


def test_delete_soft_twice_and_hard_answer_empty_object(acme, gotrue):
    user = _user(acme)
    g = gotrue("admin")
    assert g("DELETE", f"/admin/users/{user.pk}", {"should_soft_delete": True}).json() == {}
    assert g("DELETE", f"/admin/users/{user.pk}", {"should_soft_delete": True}).json() == {}
    assert g("GET", f"/admin/users/{user.pk}").json()["deleted_at"]
    r = g("DELETE", f"/admin/users/{user.pk}")
    assert r.status_code == 200 and r.json() == {}, r.content
    assert g("GET", f"/admin/users/{user.pk}").json()["code"] == "user_not_found"


def test_viewer_key_cannot_change_anything(acme, gotrue):
    user = _user(acme)
    g = gotrue("viewer")
    for method, path, body in [("POST", "/admin/users", {"email": "n@example.com"}),
                               ("PUT", f"/admin/users/{user.pk}", {"ban_duration": "1h"}),
                               ("DELETE", f"/admin/users/{user.pk}", {}),
                               ("POST", "/invite", {"email": "n@example.com"}),
                               ("POST", "/admin/generate_link", {"type": "recovery", "email": user.email})]:
        r = g(method, path, body)
        assert r.status_code == 403 and r.json()["code"] == "not_admin", (method, path)
    assert AppUser.objects.using(tenant_db.using(acme)).get().banned_until is None


def test_wrong_and_foreign_keys_answer_401_and_foreign_ids_404(acme, globex, gotrue, api_key):
    r = gotrue(key="acsk_not-a-real-key")("GET", "/admin/users")
    assert r.status_code == 401 and r.json()["code"] == "bad_jwt"
    assert gotrue(key=api_key("admin"), slug="globex")("GET", "/admin/users").status_code == 401
    assert gotrue(key=api_key("admin"), slug="nosuch")("GET", "/admin/users").status_code == 401
    other = _user(globex)
    r = gotrue("admin")("GET", f"/admin/users/{other.pk}")
    assert r.status_code == 404 and r.json()["code"] == "user_not_found"
    assert gotrue("admin")("GET", "/admin/users/not-a-uuid").json()["code"] == "validation_failed"
    none = gotrue(key="")("GET", "/admin/users", apikey="", Authorization="")
    assert none.status_code == 401 and none.json()["code"] == "no_authorization"


def test_every_answer_is_json_without_redirect_or_csrf(acme, gotrue, client):
    g = gotrue("admin")
    for method, path in [("GET", "/nowhere"), ("GET", "/admin/users/"), ("PATCH", "/admin/users"),
                         ("GET", "/signup"), ("GET", "/admin/oauth/clients"), ("POST", "/token")]:
        r = g(method, path)
        assert r["Content-Type"].startswith("application/json"), (method, path, r.status_code)
        assert r.status_code in (200, 404, 405), (method, path, r.status_code)
    assert g("GET", "/admin/users/").status_code == 200  # the trailing slash is forgiven, not redirected
    assert g("GET", "/signup").json()["code"] == "feature_disabled"
    assert g("PATCH", "/admin/users").status_code == 405
    csrf_client = type(client)(enforce_csrf_checks=True)
    r = csrf_client.post("/t/acme/auth/v1/admin/users", "{}", content_type="application/json",
                         headers=g.headers())
    assert r.status_code == 400 and r.json()["code"] == "validation_failed"  # not a CSRF page
    assert g("POST", "/admin/users", ["not", "an", "object"]).json()["code"] == "bad_json"
    assert g("POST", "/admin/users", {"email": 5}).json()["code"] == "bad_json"


def test_factors_list_and_delete(acme, gotrue):
    from accounts.models import AppFactor

    user = _user(acme)
    alias = tenant_db.using(acme)
    factor = AppFactor.objects.using(alias).create(user_id=user.pk, key="ab" * 20, friendly_name="Phone")
    g = gotrue("admin")
    listed = g("GET", f"/admin/users/{user.pk}/factors").json()
    assert [Factor.model_validate(f).id for f in listed] == [str(factor.pk)]
    assert g("DELETE", f"/admin/users/{user.pk}/factors/{uuid.uuid4()}").json()["code"] == "mfa_factor_not_found"
    r = g("DELETE", f"/admin/users/{user.pk}/factors/{factor.pk}")
    assert r.status_code == 200 and r.json()["id"] == str(factor.pk)
    assert g("GET", f"/admin/users/{user.pk}/factors").json() == []


def test_invite_and_generate_link(acme, gotrue):
    from outbox.models import OutboxMessage

    g = gotrue("admin")
    r = g("POST", "/invite", {"email": "new@example.com", "data": {"team": "a"}})
    assert r.status_code == 200 and r.json()["invited_at"] and r.json()["user_metadata"] == {"team": "a"}
    assert OutboxMessage.objects.count() == 1
    assert g("POST", "/invite", {"email": "new@example.com"}).status_code == 200  # resent
    link = g("POST", "/admin/generate_link", {"type": "magiclink", "email": "fresh@example.com",
                                              "password": None, "new_email": None, "data": None})
    assert link.status_code == 200, link.content
    body = link.json()
    assert body["verification_type"] == "signup" and "/p/acme/" in body["action_link"]
    assert len(body["hashed_token"]) == 64 and body["email_otp"] == ""
    User.model_validate(body)
    assert OutboxMessage.objects.count() == 2  # generate_link mails nothing
    rec = g("POST", "/admin/generate_link", {"type": "recovery", "email": "nobody@example.com"})
    assert rec.status_code == 404
    assert g("POST", "/admin/generate_link", {"type": "bogus", "email": "a@example.com"}).status_code == 400


def test_logout_with_the_portal_session(acme, gotrue):
    from portal.services.sessions import session_create

    user = _user(acme, confirmed=True)
    _session, raw = session_create(tenant=acme, user=user)
    g = gotrue("admin")
    r = g("POST", "/logout?scope=global", Authorization=f"Bearer {raw}")
    assert r.status_code == 204
    again = g("POST", "/logout", Authorization=f"Bearer {raw}")
    assert again.status_code == 403 and again.json()["code"] == "session_not_found"


def test_health_needs_no_key(client):
    r = client.get("/t/whatever/auth/v1/health")
    assert r.status_code == 200 and r.json()["name"] == "GoTrue"


def test_email_change_goes_through_the_pending_change(acme, gotrue):
    from accounts.models import ActionToken

    user = _user(acme, confirmed=True)
    r = gotrue("admin")("PUT", f"/admin/users/{user.pk}", {"email": "new@example.com"})
    assert r.status_code == 200 and r.json()["email"] == "ada@example.com"  # not changed until confirmed
    token = ActionToken.objects.using(tenant_db.using(acme)).get(purpose=ActionToken.Purpose.EMAIL_CHANGE)
    assert token.new_email == "new@example.com"


def test_invite_reinvites_an_unconfirmed_user_and_refuses_a_confirmed_one(acme, gotrue):
    from outbox.models import OutboxMessage

    plain = _user(acme, email="plain@example.com")  # created without confirmation, never invited
    _user(acme, email="done@example.com", confirmed=True)
    g = gotrue("support")
    r = g("POST", "/invite", {"email": "plain@example.com"})
    assert r.status_code == 200 and r.json()["id"] == str(plain.pk) and r.json()["invited_at"]
    assert OutboxMessage.objects.filter(to="plain@example.com").count() == 1
    refused = g("POST", "/invite", {"email": "done@example.com"})
    assert refused.status_code == 422 and refused.json()["code"] == "email_exists"


def test_an_update_is_all_or_nothing(acme, gotrue):
    """GoTrue applies an update in one transaction: the email change request comes after the
    metadata, the confirmation and the ban, and a taken address rolls all of them back (their
    audit entries, the ended sessions and any mail too)."""
    from accounts.models import AppSession
    from outbox.models import OutboxMessage
    from portal.services.sessions import session_create

    alias = tenant_db.using(acme)
    ada = _user(acme, name="Ada", user_metadata={"plan": "free"}, password="correct-horse-battery-9")
    _user(acme, email="bob@example.com")
    session_create(tenant=acme, user=ada)
    g = gotrue("admin")
    mails, entries = OutboxMessage.objects.count(), AuditEntry.objects.count()
    change = {"user_metadata": {"plan": "pro"}, "app_metadata": {"tier": 2}, "name": "Ada L.",
              "email_confirm": True, "ban_duration": "24h"}
    r = g("PUT", f"/admin/users/{ada.pk}", {**change, "email": "bob@example.com"})
    assert r.status_code == 422 and r.json()["code"] == "email_exists", r.content
    r = g("PUT", f"/admin/users/{ada.pk}", {**change, "password": "another-horse-battery"})
    assert r.status_code == 400  # an administrator never sets a password: refused before anything
    after = AppUser.objects.using(alias).get(pk=ada.pk)
    assert (after.user_metadata, after.app_metadata, after.name) == ({"plan": "free"}, {}, "Ada")
    assert after.email_confirmed_at is None and after.banned_until is None
    assert AppSession.objects.using(alias).get(user_id=ada.pk).revoked_at is None
    assert (OutboxMessage.objects.count(), AuditEntry.objects.count()) == (mails, entries), \
        list(AuditEntry.objects.order_by("id").values_list("event", "object_pk", "additional_data")[entries:])
    # The same parts with a free address: every one applied, each audited with its own event.
    last = AuditEntry.objects.order_by("id").last().id
    ok = g("PUT", f"/admin/users/{ada.pk}", {**change, "email": "ada.l@example.com"})
    assert ok.status_code == 200, ok.content
    body = ok.json()
    assert body["user_metadata"] == {"plan": "pro"} and body["app_metadata"]["tier"] == 2
    assert body["name"] == "Ada L." and body["email_confirmed_at"] and body["banned_until"]
    events = list(AuditEntry.objects.filter(id__gt=last).order_by("id").values_list("event", flat=True))
    assert events == ["app_user.update", "app_user.email_confirm", "app_user.ban",
                      "app_user.email_change_requested"], events
    assert OutboxMessage.objects.filter(to="ada.l@example.com").count() == 1  # the change asks the new address
