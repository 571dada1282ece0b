"""Wire rules on their own: Go durations (Go's own table), Link headers for 0/1/many pages, the
serializers against supabase-auth's pydantic models, and the security battery on API paths
(a staff session is no credential, no CSRF page, no redirect)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.duration import parse_go_duration


@pytest.mark.parametrize("text, expected", [
    ("0", timedelta(0)), ("5s", timedelta(seconds=5)), ("1.5h", timedelta(minutes=90)),
    ("-1m", -timedelta(minutes=1)), ("1h30m", timedelta(minutes=90)), ("300ms", timedelta(milliseconds=300)),
    ("2µs", timedelta(microseconds=2)), ("2us", timedelta(microseconds=2)), ("+24h", timedelta(hours=24)),
    ("876000h", timedelta(hours=876000)), (".5s", timedelta(milliseconds=500)), ("1.s", timedelta(seconds=1)),
])
def test_go_durations(text, expected):
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize("text, message", [
    ("7d", 'unknown unit "d"'), ("1", "missing unit"), (".s", "invalid duration"), ("", "invalid duration"),
    ("-", "invalid duration"), ("9999999999999h", "invalid duration"), ("1h-5m", 'unknown unit "h-"'),
])
def test_go_duration_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)


@pytest.mark.django_db(transaction=True)
def test_link_for_empty_one_and_many_pages(acme, gotrue):
    from accounts.app_users.services import app_user_create
    from accounts.models import User as Staff

    g = gotrue("viewer")
    empty = g("GET", "/admin/users")
    assert empty["X-Total-Count"] == "0" and empty["Link"] == '</t/acme/auth/v1/admin/users?page=0&per_page=50>; rel="last"'
    boss = Staff.objects.create_superuser("boss@console.test", "correct-horse-battery-9")
    for i in range(3):
        app_user_create(actor=boss, tenant=acme, email=f"u{i}@example.com")
    one = g("GET", "/admin/users?per_page=10")
    assert one["Link"] == '</t/acme/auth/v1/admin/users?page=1&per_page=10>; rel="last"'
    many = g("GET", "/admin/users?page=1&per_page=1&filter=example")
    assert many["Link"] == ('</t/acme/auth/v1/admin/users?page=2&per_page=1&filter=example>; rel="next", '
                            '</t/acme/auth/v1/admin/users?page=3&per_page=1&filter=example>; rel="last"')
    assert g("GET", "/admin/users?sort=name").json()["code"] == "validation_failed"
    huge = g("GET", "/admin/users?per_page=5000")
    assert huge.status_code == 200  # clamped to 1000, not refused


@pytest.mark.django_db(transaction=True)
def test_serializers_validate_as_the_python_client_models(acme):
    from supabase_auth.types import Factor, User

    from accounts.app_users.services import app_user_create, app_user_delete
    from accounts.models import AppFactor
    from accounts.models import User as Staff
    from api.serializers import factor_json, user_json
    from tenants import db as tenant_db

    boss = Staff.objects.create_superuser("boss@console.test", "correct-horse-battery-9")
    user = app_user_create(actor=boss, tenant=acme, email="ada@example.com", user_metadata={"a": {"b": [1]}})
    factor = AppFactor.objects.using(tenant_db.using(acme)).create(user_id=user.pk, key="ab" * 20)
    assert User.model_validate(user_json(user, factors=[factor])).factors[0].id == str(factor.pk)
    assert Factor.model_validate(factor_json(factor)).status == "unverified"
    app_user_delete(actor=boss, tenant=acme, user_id=user.pk)
    user.refresh_from_db(using=tenant_db.using(acme))
    deleted = user_json(user)
    assert User.model_validate(deleted).deleted_at is not None and deleted["identities"] == []


@pytest.mark.django_db(transaction=True)
def test_a_staff_session_is_no_credential_on_api_paths(acme, staff_factory, client, settings):
    """Every operation of the document, with a verified staff session cookie (and the CSRF
    cookie) but no key: 401 JSON (or its public answer), never a page, never a redirect."""
    from api.urls import api
    from core.policy import policy
    from tests.conftest import login_verified

    settings.SECURITY_POLICY = {"api_auth_failures_per_minute": 10_000}  # ~90 refusals from one address
    policy.cache_clear()

    boss = staff_factory("boss@console.test", superuser=True, tenants={acme: "admin"})
    login_verified(client, boss)
    public = {("/t/{slug}/auth/v1/health", "get"), ("/api/v1/setup", "get"), ("/api/v1/setup", "post"),
              ("/t/{slug}/auth/v1/admin/users/{user_id}/factors/{factor_id}", "put"),
              ("/t/{slug}/auth/v1/logout", "post")}
    checked = 0
    for path, item in api.get_openapi_schema()["paths"].items():
        url = (path.replace("{slug}", "acme").replace("{user_id}", "3f0c9a52-6a1e-4f3e-9b59-2a1d3c4e5f60")
               .replace("{factor_id}", "3f0c9a52-6a1e-4f3e-9b59-2a1d3c4e5f61").replace("{key_id}", "x")
               .replace("{token_id}", "x").replace("{impersonation_id}", "x").replace("{kind}", "invite"))
        url = url.replace("{", "").replace("}", "")
        for method in item:
            if (path, method) in public:
                continue
            r = client.generic(method.upper(), url, "{}", content_type="application/json")
            assert r.status_code == 401, (method, url, r.status_code)
            assert r["Content-Type"].startswith("application/json") and "Location" not in r, (method, url)
            checked += 1
    assert checked > 60
    settings.SECURITY_POLICY = {}
    policy.cache_clear()
