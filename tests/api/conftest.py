from __future__ import annotations

import pytest


@pytest.fixture
def api_key(acme):
    """``api_key("admin")`` → the raw secret of a new service key of acme (or ``tenant=``)."""
    from credentials.services import api_key_create

    def make(role: str = "admin", tenant=None) -> str:
        _key, raw = api_key_create(actor=None, tenant=tenant or acme, name=f"{role} key", role=role)
        return raw

    return make


@pytest.fixture(autouse=True)
def _fresh_cache(request):
    """Rate-limit counters start at zero in every test (the cache is the database's without Redis)."""
    if request.node.get_closest_marker("django_db") is None:
        yield  # a test without the database has no counters either
        return
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


class Gotrue:
    """A GoTrue caller on the Django test client, headers as supabase-js sends them."""

    def __init__(self, client, key: str, slug: str = "acme", version: bool = True):
        self.client, self.key, self.slug, self.version = client, key, slug, version

    def headers(self, **extra):
        h = {"apikey": self.key, "Authorization": f"Bearer {self.key}"}
        if self.version:
            h["X-Supabase-Api-Version"] = "2024-01-01"
        h.update(extra)
        return h

    def __call__(self, method: str, path: str, body=None, **headers):
        import json

        url = f"/t/{self.slug}/auth/v1{path}"
        data = json.dumps(body) if body is not None else ""
        return self.client.generic(method, url, data, content_type="application/json;charset=UTF-8",
                                   headers=self.headers(**headers))


@pytest.fixture
def gotrue(client, api_key):
    def make(role: str = "admin", **kwargs) -> Gotrue:
        return Gotrue(client, kwargs.pop("key", None) or api_key(role, kwargs.pop("tenant", None)), **kwargs)

    return make
