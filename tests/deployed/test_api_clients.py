"""The real GoTrue admin clients against the deployed instance (gunicorn, two workers, real HTTP):
``@supabase/supabase-js`` and ``@supabase/auth-js`` (pinned in tests/clients/package.json,
installed by ``npm ci`` in scripts/test.sh) and Python ``supabase-auth`` (pinned in the dev
extras), unmodified. Every admin method, both error formats, paging, a viewer key, a wrong key,
the rate limit, an idempotent replay. On PostgreSQL, the production database (the API is the same
code on SQLite, where tests/api runs every operation in-process and Schemathesis walks them)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.deployed import conftest as deployed

pytestmark = [pytest.mark.deployed, pytest.mark.postgres]

CLIENTS = Path(__file__).resolve().parents[1] / "clients"


def new_key(instance, role: str) -> str:
    out = instance.manage("api_keys", "create", deployed.TENANT, "--role", role, "--name", f"{role} {uuid.uuid4().hex[:6]}")
    return out.strip().splitlines()[-1]


def fixtures(instance) -> dict[str, str]:
    """A portal session to sign out and a user with a TOTP factor, made by the services; the
    tenant's redirect allow-list holds ``https://app.example.com/after/*``."""
    out = instance.manage("shell", "-c", f"""
import json
from accounts.app_users.services import app_user_create
from accounts.models import AppFactor, User
from portal.services.sessions import session_create
from tenants import db
from tenants.models import Tenant
t = Tenant.objects.get(slug={deployed.TENANT!r})
admin = User.objects.get(email={deployed.ADMIN_EMAIL!r})
import uuid
u = app_user_create(actor=admin, tenant=t, email=f"factor-{{uuid.uuid4().hex[:8]}}@example.com", confirmed=True)
f = AppFactor.objects.using(db.using(t)).create(user_id=u.pk, key="ab" * 20, friendly_name="Phone",
                                                confirmed_at=u.created_at)
other = app_user_create(actor=admin, tenant=t, email=f"session-{{uuid.uuid4().hex[:8]}}@example.com", confirmed=True)
s, raw = session_create(tenant=t, user=other)
from accounts.app_users.tenant_settings import tenant_settings_update
tenant_settings_update(actor=admin, tenant=t, values={{"redirect_urls": ["https://app.example.com/after/*"]}})
print(json.dumps({{"FACTOR_USER": str(u.pk), "FACTOR_ID": str(f.pk), "SESSION_TOKEN": raw}}))
""")
    return json.loads(out.strip().splitlines()[-1])


def test_supabase_js_and_auth_js(instance):
    node = shutil.which("node")
    assert node, "Node.js is needed for the real supabase-js client"
    assert (CLIENTS / "node_modules" / "@supabase" / "supabase-js").is_dir(), \
        "tests/clients/node_modules is missing: run `npm ci` in tests/clients (scripts/test.sh does)"
    env = {
        "PATH": instance.env["PATH"], "BASE": f"{instance.base_url}/t/{deployed.TENANT}",
        "ADMIN_KEY": new_key(instance, "admin"), "VIEWER_KEY": new_key(instance, "viewer"),
        "RATE_KEY": new_key(instance, "viewer"), **fixtures(instance),
    }
    result = subprocess.run([node, "gotrue_admin.mjs"], cwd=CLIENTS, env=env, capture_output=True, text=True,
                            timeout=240)
    checks = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failed = [c for c in checks if not c["ok"]]
    assert len(checks) >= 33 and not failed, (failed, result.stderr[-2000:])


def test_python_sync_client(instance):
    from supabase_auth import SyncGoTrueAdminAPI
    from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

    key = new_key(instance, "admin")
    url = f"{instance.base_url}/t/{deployed.TENANT}/auth/v1"
    admin = SyncGoTrueAdminAPI(url=url, headers={"apikey": key, "Authorization": f"Bearer {key}"})
    email = f"py-{uuid.uuid4().hex[:8]}@example.com"
    user = admin.create_user({"email": email, "password": "correct-horse-battery", "email_confirm": True,
                              "user_metadata": {"keep": 1, "drop": 2}}).user
    assert user.email == email and user.email_confirmed_at is not None
    assert admin.get_user_by_id(user.id).user.id == user.id
    updated = admin.update_user_by_id(user.id, {"user_metadata": {"drop": None}, "ban_duration": "1h"}).user
    assert updated.user_metadata == {"keep": 1} and updated.banned_until is not None
    assert admin.update_user_by_id(user.id, {"ban_duration": "none"}).user.banned_until is None
    listed = admin.list_users(page=1, per_page=2)
    assert len(listed) == 2
    with pytest.raises(AuthApiError) as exc:
        admin.create_user({"email": email})
    assert exc.value.code == "email_exists" and exc.value.status == 422
    with pytest.raises(AuthWeakPasswordError) as weak:
        admin.create_user({"email": f"w{email}", "password": "short"})
    assert "length" in weak.value.reasons
    invited = admin.invite_user_by_email(f"inv-{email}", {"data": {"team": "b"}}).user
    assert invited.invited_at is not None
    link = admin.generate_link({"type": "recovery", "email": email})
    assert "/recover/" in link.properties.action_link and link.user.id == user.id
    extra = fixtures(instance)  # also puts https://app.example.com/after/* on the allow-list
    goto = admin.generate_link({"type": "recovery", "email": email,
                                "options": {"redirect_to": "https://app.example.com/after/py"}})
    assert goto.properties.redirect_to == "https://app.example.com/after/py"
    assert goto.properties.action_link.endswith("?redirect_to=https%3A%2F%2Fapp.example.com%2Fafter%2Fpy")
    with pytest.raises(AuthApiError) as taken:  # one transaction: the taken address undoes the metadata
        admin.update_user_by_id(user.id, {"user_metadata": {"keep": 2}, "email": invited.email})
    assert taken.value.code == "email_exists" and admin.get_user_by_id(user.id).user.user_metadata == {"keep": 1}
    factors = admin.mfa.list_factors({"user_id": extra["FACTOR_USER"]})
    assert [f.id for f in factors] == [extra["FACTOR_ID"]]
    assert admin.mfa.delete_factor({"user_id": extra["FACTOR_USER"], "id": extra["FACTOR_ID"]}).id == extra["FACTOR_ID"]
    admin.sign_out(extra["SESSION_TOKEN"])
    admin.delete_user(user.id, should_soft_delete=True)
    assert admin.get_user_by_id(user.id).user.deleted_at is not None
    admin.delete_user(user.id)
    with pytest.raises(AuthApiError) as gone:
        admin.get_user_by_id(user.id)
    assert gone.value.status == 404 and gone.value.code == "user_not_found"
    viewer = new_key(instance, "viewer")
    with pytest.raises(AuthApiError) as refused:
        SyncGoTrueAdminAPI(url=url, headers={"apikey": viewer}).create_user({"email": f"v{email}"})
    assert refused.value.status == 403 and refused.value.code == "not_admin"
    with pytest.raises(AuthApiError) as wrong:
        SyncGoTrueAdminAPI(url=url, headers={"apikey": "acsk_wrong"}).list_users()
    assert wrong.value.status == 401 and wrong.value.code == "bad_jwt"


def test_python_async_client(instance):
    from supabase_auth import AsyncGoTrueAdminAPI

    key = new_key(instance, "support")
    url = f"{instance.base_url}/t/{deployed.TENANT}/auth/v1"

    async def journey():
        admin = AsyncGoTrueAdminAPI(url=url, headers={"apikey": key})
        invited = await admin.invite_user_by_email(f"async-{uuid.uuid4().hex[:8]}@example.com")
        users = await admin.list_users(page=1, per_page=1000)
        return invited.user, users

    invited, users = asyncio.run(journey())
    assert invited.id in {u.id for u in users}


def test_legacy_error_format_and_json_everywhere(instance):
    key = new_key(instance, "viewer")
    base = f"{instance.base_url}/t/{deployed.TENANT}/auth/v1"
    with httpx.Client(follow_redirects=False) as http:
        legacy = http.post(f"{base}/admin/users", headers={"apikey": key}, json={"email": "x@example.com"})
        assert legacy.status_code == 403 and "x-supabase-api-version" not in legacy.headers
        assert legacy.json()["code"] == 403 and legacy.json()["error_code"] == "not_admin"
        new = http.post(f"{base}/admin/users", json={}, headers={"apikey": key, "X-Supabase-Api-Version": "2024-01-01"})
        assert new.headers["x-supabase-api-version"] == "2024-01-01" and new.json()["code"] == "not_admin"
        for path in ("/nowhere", "/admin/users/", "/signup", "/admin/users/not-a-uuid"):
            r = http.get(base + path, headers={"apikey": key})
            assert r.headers["content-type"].startswith("application/json"), path
            assert r.status_code in (200, 404), (path, r.status_code)
        # A worker builds the document on its first request (about 1.5 s of schema generation
        # alone, several seconds on a loaded machine: httpx's 5 s default timed out there).
        document = http.get(f"{instance.base_url}/api/v1/openapi.json", timeout=60)
        assert document.json()["openapi"].startswith("3.1")
