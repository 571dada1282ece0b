"""The native API /api/v1/: envelope, cursor pages, every user operation through the services,
the role matrix per endpoint, other tenants 404, the audit trail naming the credential."""

from __future__ import annotations

import json
import uuid

import pytest

from accounts.app_users import services
from accounts.models import AppUser
from audit.models import AuditEntry
from core.access import role_can
from credentials.services import staff_token_create
from tenants import db as tenant_db

pytestmark = pytest.mark.django_db(transaction=True)


def call(client, key, method, path, body=None, **headers):
    data = json.dumps(body) if body is not None else ""
    return client.generic(method, f"/api/v1{path}", data, content_type="application/json",
                          headers={"Authorization": f"Bearer {key}", **headers})


@pytest.fixture
def boss(staff_factory):
    return staff_factory("boss@console.test", superuser=True)


@pytest.fixture
def pat(boss):
    def make(user=None, **kwargs):
        return staff_token_create(actor=user or boss, name="t", **kwargs)[1]

    return make


def _user(acme, boss, email="ada@example.com", **kwargs):
    return services.app_user_create(actor=boss, tenant=acme, email=email, **kwargs)


def test_me_for_a_key_and_a_token(client, acme, api_key, pat, boss):
    r = call(client, api_key("support"), "GET", "/me")
    assert r.status_code == 200 and r.json()["success"] is True
    assert r.json()["data"]["kind"] == "service_key" and r.json()["data"]["key"]["role"] == "support"
    assert r.json()["meta"]["request_id"]
    me = call(client, pat(), "GET", "/me").json()["data"]
    assert me["kind"] == "staff" and me["user"]["email"] == boss.email and me["user"]["is_instance_admin"]
    bad = call(client, "acpat_nope", "GET", "/me")
    assert bad.status_code == 401 and bad.json() == {
        "success": False, "error": {"code": "UNAUTHORIZED", "reason": "bad_jwt", "message": "Invalid API key",
                                    "details": None}, "meta": bad.json()["meta"]}


def test_user_lifecycle(client, acme, api_key):
    key = api_key("admin")
    created = call(client, key, "POST", "/tenants/acme/users", {"email": "ada@example.com", "name": "Ada",
                                                                "user_metadata": {"a": 1}})
    assert created.status_code == 201, created.content
    uid = created.json()["data"]["id"]
    assert created["Location"] == f"/api/v1/tenants/acme/users/{uid}"
    assert call(client, key, "POST", "/tenants/acme/users", {"email": "x@example.com", "bogus": 1}).status_code == 422
    dup = call(client, key, "POST", "/tenants/acme/users", {"email": "ada@example.com"})
    assert dup.status_code == 409 and dup.json()["error"]["reason"] == "email_exists"
    got = call(client, key, "GET", f"/tenants/acme/users/{uid}?expand=sessions,factors,links").json()["data"]
    assert got["user_metadata"] == {"a": 1} and got["sessions"] == [] and got["factors"] == []
    patched = call(client, key, "PATCH", f"/tenants/acme/users/{uid}", {"name": "Ada L."}).json()["data"]
    assert patched["name"] == "Ada L."
    banned = call(client, key, "POST", f"/tenants/acme/users/{uid}/ban", {"duration": "1h", "reason": "spam"})
    assert banned.status_code == 200 and banned.json()["data"]["status"] == "banned"
    assert call(client, key, "POST", f"/tenants/acme/users/{uid}/unban").json()["data"]["status"] != "banned"
    again = call(client, key, "POST", f"/tenants/acme/users/{uid}/unban")
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
    assert call(client, key, "POST", f"/tenants/acme/users/{uid}/recovery").json()["data"]["expires_at"]
    assert call(client, key, "POST", f"/tenants/acme/users/{uid}/sign-out").json()["data"] == {"sessions_ended": 0}
    history = call(client, key, "GET", f"/tenants/acme/users/{uid}/history").json()["data"]
    assert {"app_user.create", "app_user.ban", "app_user.unban"} <= {e["event"] for e in history}
    assert all(e["data"].get("credential_prefix", "").startswith("acsk_") for e in history), [e["data"] for e in history]
    deleted = call(client, key, "DELETE", f"/tenants/acme/users/{uid}?hard=true")
    assert deleted.json()["data"] == {"id": uid, "deleted": "hard"}
    assert call(client, key, "GET", f"/tenants/acme/users/{uid}").status_code == 404


def test_list_pages_by_cursor(client, acme, api_key, boss):
    for i in range(30):
        _user(acme, boss, email=f"u{i:02}@example.com")
    key = api_key("viewer")
    first = call(client, key, "GET", "/tenants/acme/users?limit=25").json()
    assert len(first["data"]) == 25 and first["meta"]["total"] == 30 and first["meta"]["next_cursor"]
    second = call(client, key, "GET", f"/tenants/acme/users?limit=25&cursor={first['meta']['next_cursor']}").json()
    assert len(second["data"]) == 5
    assert not {u["id"] for u in first["data"]} & {u["id"] for u in second["data"]}
    assert call(client, key, "GET", "/tenants/acme/users?limit=7").status_code == 400
    assert call(client, key, "GET", "/tenants/acme/users?status=bogus").status_code == 400
    found = call(client, key, "GET", "/tenants/acme/users?q=u07").json()["data"]
    assert [u["email"] for u in found] == ["u07@example.com"]


def test_batch_reports_each_user(client, acme, api_key, boss):
    a, b = _user(acme, boss, email="a@example.com"), _user(acme, boss, email="b@example.com")
    services.app_user_delete(actor=boss, tenant=acme, user_id=b.pk)
    r = call(client, api_key("admin"), "POST", "/tenants/acme/users/batch",
             {"action": "ban", "user_ids": [str(a.pk), str(b.pk)], "duration": "24h"})
    data = r.json()["data"]
    assert r.status_code == 200 and data["processed"] == 1 and data["skipped"] == 1 and data["total"] == 2
    stale = call(client, api_key("admin"), "POST", "/tenants/acme/users/batch",
                 {"action": "unban", "filter": {"q": "example"}, "expected_count": 5})
    assert stale.status_code == 409 and stale.json()["error"]["reason"] == "selection_changed"
    viewer = call(client, api_key("viewer"), "POST", "/tenants/acme/users/batch",
                  {"action": "ban", "user_ids": [str(a.pk)], "duration": "1h"})
    assert viewer.status_code == 403


# (method, path, body, permission): every tenant-scoped user endpoint of the native API.
def _endpoints(uid: str) -> list[tuple[str, str, dict | None, str]]:
    u = f"/tenants/acme/users/{uid}"
    return [
        ("GET", "/tenants/acme/users", None, "view_users"),
        ("GET", u, None, "view_users"),
        ("GET", f"{u}/sessions", None, "view_users"),
        ("GET", f"{u}/factors", None, "view_users"),
        ("GET", f"{u}/links", None, "view_users"),
        ("GET", f"{u}/history", None, "view_users"),
        ("GET", "/tenants/acme/invitations", None, "view_invitations"),
        ("GET", "/tenants/acme/users/export.csv", None, "export_users"),
        ("GET", "/tenants/acme/audit", None, "view_audit"),
        ("POST", "/tenants/acme/users/invite", {"email": "new@example.com"}, "invite_user"),
        ("POST", f"{u}/magic-link", None, "send_magic_link"),
        ("POST", f"{u}/recovery", None, "send_recovery"),
        ("POST", f"{u}/reset-password", None, "send_recovery"),
        ("POST", f"{u}/sign-out", None, "sign_out_user"),
        ("PATCH", u, {"name": "New"}, "edit_user"),
        ("PATCH", f"{u}/role", {"role": "user"}, "change_role"),
        ("POST", f"{u}/confirm-email", None, "confirm_email"),
        ("POST", f"{u}/ban", {"duration": "1h"}, "ban_user"),
        ("POST", f"{u}/unban", None, "unban_user"),
        ("DELETE", f"{u}/factors", None, "remove_factor"),
        ("POST", "/tenants/acme/users", {"email": "made@example.com"}, "create_user"),
        ("POST", f"{u}/resend-invitation", None, "resend_invitation"),
        ("POST", f"{u}/revoke-invitation", None, "revoke_invitation"),
        ("DELETE", u, None, "delete_user"),
    ]


@pytest.mark.parametrize("role", ["viewer", "support", "admin"])
def test_role_matrix_per_endpoint(client, acme, api_key, boss, role):
    user = _user(acme, boss, send_invitation=True)
    key = api_key(role)
    for method, path, body, permission in _endpoints(str(user.pk)):
        before = AuditEntry.objects.count()
        r = call(client, key, method, path, body)
        if role_can(role, permission):
            assert r.status_code != 403, (role, method, path, r.content)
            assert r.status_code < 500, (role, method, path, r.content)
        else:
            assert r.status_code == 403, (role, method, path, r.status_code)
            assert r.json()["error"]["code"] == "FORBIDDEN"
            assert AuditEntry.objects.count() == before or method == "GET"  # nothing changed


def test_other_tenants_are_404(client, acme, globex, api_key, boss, staff_factory, pat):
    other = _user(globex, boss)
    key = api_key("admin")
    r = call(client, key, "GET", f"/tenants/acme/users/{other.pk}")
    assert r.status_code == 404 and r.json()["error"]["reason"] == "user_not_found"
    assert call(client, key, "GET", "/tenants/globex/users").status_code == 404
    assert call(client, key, "POST", f"/tenants/globex/users/{other.pk}/ban", {"duration": "1h"}).status_code == 404
    assert AppUser.objects.using(tenant_db.using(globex)).get().banned_until is None
    ann = staff_factory(tenants={acme: "viewer"})
    token = pat(ann)
    assert call(client, token, "GET", "/tenants/globex/users").status_code == 404
    assert call(client, token, "GET", "/tenants/acme/users").status_code == 200
    assert call(client, token, "GET", f"/tenants/acme/users/{uuid.uuid4()}").status_code == 404


def test_keys_and_staff_need_a_personal_token(client, acme, api_key, pat, boss):
    key = api_key("admin")
    assert call(client, key, "GET", "/tenants/acme/api-keys").status_code == 401
    assert call(client, key, "GET", "/staff").status_code == 401
    token = pat()
    keys = call(client, token, "GET", "/tenants/acme/api-keys").json()["data"]
    assert len(keys) == 1 and "secret_hash" not in keys[0]
    revoked = call(client, token, "DELETE", f"/tenants/acme/api-keys/{keys[0]['id']}")
    assert revoked.json()["data"]["revoked_at"]
    assert call(client, key, "GET", "/me").status_code == 401  # revoked: stops at once
    staff = call(client, token, "GET", "/staff").json()["data"]
    assert staff[0]["type"] == "dashboard"
    assert call(client, token, "GET", "/tenants/mine").json()["data"][0]["my_role"] == "admin"
    read_only = pat(read_only=True)
    assert call(client, read_only, "GET", "/tenants").status_code == 200
    assert call(client, read_only, "POST", "/tenants/acme/users", {"email": "r@example.com"}).status_code == 403


def test_audit_list_and_export(client, acme, pat, boss):
    _user(acme, boss)
    token = pat()
    page = call(client, token, "GET", "/tenants/acme/audit?event=app_user.create").json()
    assert page["data"][0]["event"] == "app_user.create" and page["data"][0]["target"]["repr"] == "ada@example.com"
    assert call(client, token, "GET", "/audit?date_from=nope").status_code == 400
    export = call(client, token, "GET", "/audit/export.csv")
    assert export.status_code == 200 and b"app_user.create" in b"".join(export.streaming_content)


def test_setup_status_and_once(client, db):
    assert client.get("/api/v1/setup").json()["data"] == {"needs_setup": True}
    body = {"email": "first@example.com", "name": "First", "password": "a-long-passphrase-for-setup-1"}
    form = client.post("/api/v1/setup", body)  # a form, and no credential on this route: still 415
    assert form.status_code == 415 and form.json()["error"]["reason"] == "unsupported_media_type"
    assert client.get("/api/v1/setup").json()["data"] == {"needs_setup": True}
    r = client.post("/api/v1/setup", body, content_type="application/json")
    assert r.status_code == 201, r.content
    again = client.post("/api/v1/setup", body, content_type="application/json")
    assert again.status_code == 409
    assert client.get("/api/v1/setup").json()["data"] == {"needs_setup": False}


def test_reference_page_in_the_console(client, as_staff, staff_factory):
    assert client.get("/api-reference/").status_code == 302  # the console's staff gate
    page = as_staff(staff_factory()).get("/api-reference/")
    html = page.content.decode()
    assert page.status_code == 200 and "/t/{slug}/auth/v1/admin/users" in html and "/api/v1/me" in html
    assert "cdn" not in html.lower() and "<script src=\"http" not in html
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1") and len(document["paths"]) >= 40


def test_the_openapi_document_is_built_once_per_process(client, monkeypatch):
    """Building it is ~1.5 s of pydantic schema generation: the page and the JSON reuse one build."""
    from ninja import main as ninja_main

    from api.urls import api

    builds = []
    real = ninja_main.get_schema
    monkeypatch.setattr(ninja_main, "get_schema", lambda **kw: builds.append(kw) or real(**kw))
    api.__dict__.pop("_documents", None)
    first = client.get("/api/v1/openapi.json").json()
    assert client.get("/api/v1/openapi.json").json() == first
    assert api.get_openapi_schema() is api.get_openapi_schema()
    assert len(builds) == 1


def test_lookup_by_email(client, acme, api_key, boss):
    user = _user(acme, boss, email="Ada@Example.com")
    key = api_key("viewer")
    found = call(client, key, "GET", "/tenants/acme/users/by-email?email=ADA@example.com")
    assert found.status_code == 200 and found.json()["data"]["id"] == str(user.pk)
    assert call(client, key, "GET", "/tenants/acme/users/by-email?email=nobody@example.com").status_code == 404


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/csv"])
def test_a_body_that_is_not_json_is_415(client, acme, api_key, content_type):
    """Native POST/PATCH with another Content-Type: 415 in the native error format, nothing made
    (text/csv is the import's only)."""
    key = api_key("admin")
    body = json.dumps({"email": "ada@example.com"})
    for method, path in (("POST", "/tenants/acme/users"), ("PATCH", "/tenants/acme/settings")):
        r = client.generic(method, f"/api/v1{path}", body, content_type=content_type,
                           headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 415, (method, path, r.content)
        assert r.json() == {"success": False, "error": {
            "code": "UNSUPPORTED_MEDIA_TYPE", "reason": "unsupported_media_type",
            "message": f"Send the body as application/json (got {content_type.split(';')[0]}).",
            "details": None}, "meta": r.json()["meta"]}
    assert not AppUser.objects.using(tenant_db.using(acme)).exists()
    ok = client.generic("POST", "/api/v1/tenants/acme/users", body, content_type="application/json; charset=utf-8",
                        headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 201
    csv = client.generic("POST", "/api/v1/tenants/acme/users/import?dry_run=true", "email\nbob@example.com\n",
                         content_type="text/csv", headers={"Authorization": f"Bearer {key}"})
    assert csv.status_code == 200, csv.content
