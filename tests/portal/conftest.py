from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.utils import timezone

from accounts.models import AppUser
from tenants import db as tenant_db

APP_PASSWORD = "plum-kettle-harbour-42"


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Lockout and rate-limit counters live in the cache: start every test from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme", name="Acme Inc")


@pytest.fixture
def app_user_factory():
    """``app_user_factory(tenant, "ann@acme.test", confirmed=True, password=APP_PASSWORD, **fields)``."""

    def make(tenant, email="ann@acme.test", *, confirmed=True, password=APP_PASSWORD, **fields):
        now = timezone.now()
        return AppUser.objects.using(tenant_db.using(tenant)).create(
            email=email,
            name=fields.pop("name", email.split("@")[0].title()),
            password=make_password(password) if password else "",
            email_confirmed_at=now if confirmed else None,
            **fields,
        )

    return make


@pytest.fixture
def app_user(tenant, app_user_factory):
    return app_user_factory(tenant)


def portal_sign_in(client, tenant, email="ann@acme.test", password=APP_PASSWORD):
    """Sign in through the portal's form; returns the response (302 to the account page)."""
    return client.post(f"/p/{tenant.slug}/login/", {"email": email, "password": password})


class Clock:
    """Moves the clock of the portal's counters (a local-memory cache driven by ``time.time``)."""

    def __init__(self, monkeypatch):
        import time

        from django.core.cache.backends.locmem import LocMemCache

        self.offset = 0.0
        self._real = time.time
        self.cache = LocMemCache("portal-test-clock", {})
        monkeypatch.setattr("portal.services.limits.cache", self.cache)
        monkeypatch.setattr("django.core.cache.backends.locmem.time.time", self.time, raising=False)

    def time(self) -> float:
        return self._real() + self.offset

    def advance(self, *, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        self.offset += hours * 3600 + minutes * 60 + seconds


@pytest.fixture
def clock(monkeypatch):
    """Counters in a cache whose clock the test moves: ``clock.advance(minutes=15)``."""
    return Clock(monkeypatch)
