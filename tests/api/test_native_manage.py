"""Native API, the instance plane: tenant lifecycle, tenant staff, staff members, settings and
templates, CSV import, one's own tokens. Personal tokens only; audited like the console."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from tests.api.test_native import call

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def boss(staff_factory):
    return staff_factory("boss@console.test", superuser=True)


@pytest.fixture
def token(boss):
    from credentials.services import staff_token_create

    return staff_token_create(actor=boss, name="t")[1]


def test_tenant_lifecycle(client, token, db):
    from tenants import db as tenant_db
    from tenants.models import Tenant

    r = call(client, token, "POST", "/tenants", {"slug": "initech", "name": "Initech", "metadata": {"plan": "x"}})
    try:
        assert r.status_code == 201, r.content
        assert r["Location"] == "/api/v1/tenants/initech" and r.json()["data"]["status"] == "active"
        assert call(client, token, "POST", "/tenants", {"slug": "initech", "name": "Again"}).status_code == 409
        assert call(client, token, "PATCH", "/tenants/initech", {"name": "Initech Corp"}).json()["data"]["name"] \
            == "Initech Corp"
        assert call(client, token, "POST", "/tenants/initech/suspend").json()["data"]["status"] == "suspended"
        assert call(client, token, "POST", "/tenants/initech/resume").json()["data"]["status"] == "active"
        assert call(client, token, "POST", "/tenants/initech/migrate").json()["data"]["status"] == "migrated"
        assert call(client, token, "DELETE", "/tenants/initech").json()["data"]["status"] == "deleted"
        assert call(client, token, "POST", "/tenants/initech/restore").json()["data"]["status"] == "active"
        assert {"tenant.create", "tenant.suspend", "tenant.resume", "tenant.delete", "tenant.restore"} <= set(
            AuditEntry.objects.values_list("event", flat=True))
    finally:
        tenant = Tenant.objects.filter(slug="initech").first()
        if tenant is not None:
            tenant_db.drop_database(tenant)


def test_service_keys_never_reach_the_instance_plane(client, acme, api_key):
    key = api_key("admin")
    for method, path, body in [("POST", "/tenants", {"slug": "x1", "name": "X"}), ("GET", "/staff", None),
                               ("POST", "/tenants/acme/admins", {"email": "a@b.test", "role": "viewer"}),
                               ("PATCH", "/tenants/acme/settings", {"password_min_length": 12}),
                               ("GET", "/me/tokens", None)]:
        assert call(client, key, method, path, body).status_code == 401, path


def test_tenant_staff_assign_change_remove(client, acme, token, staff_factory):
    ann = staff_factory("ann@console.test")
    r = call(client, token, "POST", "/tenants/acme/admins", {"user_id": str(ann.pk), "role": "viewer"})
    assert r.status_code == 201 and r.json()["data"]["role"] == "viewer"
    assert call(client, token, "PATCH", f"/tenants/acme/admins/{ann.pk}", {"role": "support"}).json()["data"]["role"] \
        == "support"
    listed = call(client, token, "GET", "/tenants/acme/admins").json()["data"]
    assert [a["email"] for a in listed] == ["ann@console.test"]
    invited = call(client, token, "POST", "/tenants/acme/admins", {"email": "new@console.test", "role": "admin"})
    assert invited.status_code == 201 and invited.json()["data"]["invited"] is True
    assert call(client, token, "DELETE", f"/tenants/acme/admins/{ann.pk}").json()["data"]["removed"] is True
    assert call(client, token, "DELETE", f"/tenants/acme/admins/{ann.pk}").status_code == 404


def test_staff_invite_and_deactivate(client, token):
    r = call(client, token, "POST", "/staff", {"email": "sam@console.test", "name": "Sam"})
    assert r.status_code == 201, r.content
    sid = r.json()["data"]["id"]
    assert call(client, token, "GET", f"/staff/{sid}").json()["data"]["type"] == "dashboard"
    assert call(client, token, "POST", f"/staff/{sid}/deactivate").json()["data"]["is_active"] is False
    me = call(client, token, "GET", "/me").json()["data"]["user"]["id"]
    assert call(client, token, "POST", f"/staff/{me}/deactivate").status_code == 403  # never oneself


def test_settings_and_templates(client, acme, token):
    r = call(client, token, "PATCH", "/tenants/acme/settings", {"password_min_length": 14})
    assert r.status_code == 200 and r.json()["data"]["password_min_length"] == 14
    assert call(client, token, "GET", "/tenants/acme/settings").json()["data"]["password_min_length"] == 14
    bad = call(client, token, "PATCH", "/tenants/acme/settings", {"password_min_length": 2})
    assert bad.status_code == 422
    templates = call(client, token, "GET", "/tenants/acme/email-templates").json()["data"]
    assert set(templates) >= {"invite", "recovery", "magic_link"}
    new = {"subject": "Join us, {{ name }}", "body": templates["invite"]["body"]}
    put = call(client, token, "PUT", "/tenants/acme/email-templates/invite", new)
    assert put.status_code == 200, put.content
    assert call(client, token, "DELETE", "/tenants/acme/email-templates/invite").json()["data"] == templates["invite"]


def test_import_dry_run_then_for_real_then_again(client, acme, token):
    rows = {"rows": [{"email": "a@example.com"}, {"email": "bad"}, {"email": "a@example.com"}]}
    dry = call(client, token, "POST", "/tenants/acme/users/import?dry_run=true", rows).json()["data"]
    assert [bool(r["error"]) for r in dry] == [False, True, False] and dry[2]["skip"]
    done = call(client, token, "POST", "/tenants/acme/users/import", rows).json()["data"]
    assert done["processed"] == 1
    csv = client.post("/api/v1/tenants/acme/users/import", "email,name\na@example.com,A\nb@example.com,B\n",
                      content_type="text/csv", headers={"Authorization": f"Bearer {token}"}).json()["data"]
    assert csv["processed"] == 1 and csv["skipped"] == 1  # nobody invited twice


def test_my_tokens(client, token):
    mine = call(client, token, "GET", "/me/tokens").json()["data"]
    assert len(mine) == 1
    assert call(client, token, "DELETE", f"/me/tokens/{mine[0]['id']}").json()["data"]["revoked_at"]
    assert call(client, token, "GET", "/me").status_code == 401
