"""Rate limits per credential (RateLimit headers, 429 + Retry-After), failed authentications
per address, Idempotency-Key (replay, reuse, in flight, 5xx not stored), the body bound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import IdempotencyRecord
from core.policy import policy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def limits(settings):
    def set_(**numbers):
        settings.SECURITY_POLICY = numbers
        policy.cache_clear()

    yield set_
    settings.SECURITY_POLICY = {}
    policy.cache_clear()


def test_rate_limit_headers_and_429(acme, gotrue, limits):
    limits(api_rate_per_minute=3, api_rate_per_hour=100)
    g = gotrue("viewer")
    first = g("GET", "/admin/users")
    assert first["RateLimit-Policy"] == '"min";q=3;w=60, "hour";q=100;w=3600'
    assert first["RateLimit"].startswith('"min";r=2;t=')
    g("GET", "/admin/users")
    g("GET", "/admin/users")
    over = g("GET", "/admin/users")
    assert over.status_code == 429 and over.json()["code"] == "over_request_rate_limit"
    assert 1 <= int(over["Retry-After"]) <= 60
    # another key has its own quota
    assert gotrue("viewer")("GET", "/admin/users").status_code == 200


def test_failed_authentications_are_limited_per_address(acme, gotrue, api_key, limits):
    limits(api_auth_failures_per_minute=2)
    bad = gotrue(key="acsk_wrong")
    assert bad("GET", "/admin/users").status_code == 401
    assert bad("GET", "/admin/users").status_code == 401
    assert bad("GET", "/admin/users").status_code == 429
    assert gotrue(key=api_key("viewer"))("GET", "/admin/users").status_code == 429  # the address, not the key


def test_idempotent_replay_reuse_and_in_flight(acme, gotrue):
    g = gotrue("admin")
    first = g("POST", "/admin/users", {"email": "ada@example.com"}, **{"Idempotency-Key": "k1"})
    again = g("POST", "/admin/users", {"email": "ada@example.com"}, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = g("POST", "/admin/users", {"email": "bob@example.com"}, **{"Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.json()["code"] == "validation_failed"
    IdempotencyRecord.objects.create(scope="x", key="k2", fingerprint="f", locked_until=timezone.now())
    record = IdempotencyRecord.objects.get(key="k1")
    IdempotencyRecord.objects.filter(pk=record.pk).update(completed_at=None,
                                                          locked_until=timezone.now() + timedelta(seconds=30))
    busy = g("POST", "/admin/users", {"email": "ada@example.com"}, **{"Idempotency-Key": "k1"})
    assert busy.status_code == 409 and busy.json()["code"] == "conflict"
    assert g("POST", "/admin/users", {}, **{"Idempotency-Key": "é" * 3}).status_code == 400


def test_server_errors_are_not_stored(acme, gotrue, monkeypatch):
    from api import gotrue as surface

    g = gotrue("admin")

    def boom(*args, **kwargs):
        raise RuntimeError("down")

    monkeypatch.setattr(surface, "full_user", boom)
    failed = g("POST", "/admin/users", {"email": "ada@example.com"}, **{"Idempotency-Key": "k"})
    assert failed.status_code == 500 and failed.json()["code"] == "unexpected_failure"
    assert not IdempotencyRecord.objects.exists()


def test_body_is_bounded(acme, gotrue, limits):
    limits(api_body_max_bytes=1000)
    r = gotrue("admin")("POST", "/admin/users", {"email": "a@example.com", "user_metadata": {"x": "y" * 2000}})
    assert r.status_code == 413 and r.json()["code"] == "request_entity_too_large"
