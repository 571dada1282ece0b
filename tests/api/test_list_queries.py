"""The API's user lists read a page in a fixed number of queries, whatever its length."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import AppUser
from credentials.services import api_key_create
from tenants import db as tenant_db


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", ["/api/v1/tenants/acme/users?limit=50",
                                 "/t/acme/auth/v1/admin/users?page=1&per_page=50"])
def test_a_longer_page_costs_no_more_queries(make_tenant, url):
    tenant = make_tenant("acme")
    alias = tenant_db.using(tenant)
    _key, raw = api_key_create(actor=None, tenant=tenant, name="lists", role="viewer")
    client = Client(HTTP_APIKEY=raw, HTTP_AUTHORIZATION=f"Bearer {raw}")
    counts = []
    for size in (3, 40):
        AppUser.objects.using(alias).all().delete()
        AppUser.objects.using(alias).bulk_create(
            [AppUser(email=f"u{size}-{i}@example.test", name=f"User {i}") for i in range(size)])
        client.get(url)  # warm: the connection, the cache
        with CaptureQueriesContext(connections[alias]) as tenant_queries:
            response = client.get(url)
        assert response.status_code == 200
        body = response.json()
        rows = body["data"] if "data" in body else body["users"]
        assert len(rows) == size
        counts.append(len(tenant_queries))
    assert counts[0] == counts[1], counts
