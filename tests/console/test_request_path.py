"""The request path of the users page (issue 16): session, staff user, OTP device, tenant and
role looked up with the fewest queries, one tenant database per request, and the same queries
however many tenants the worker visited before."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from tenants import db as tenant_db

pytestmark = pytest.mark.django_db


def _tables(queries) -> list[str]:
    """The table each query reads first (``SELECT "table"."column" ...``)."""
    return [q["sql"].split('"', 2)[1] if q["sql"].startswith('SELECT "') else q["sql"][:30] for q in queries]


def _users_page(client, slug="acme"):
    with CaptureQueriesContext(connections["default"]) as control:
        response = client.get(f"/t/{slug}/users/")
    assert response.status_code == 200
    return control


def test_the_users_page_reads_the_staff_member_from_the_cache_and_the_tenant_with_role_in_one_query(
        make_tenant, staff_factory, as_staff, client, settings):
    acme = make_tenant("acme")
    as_staff(staff_factory(tenants={acme: "support"}))
    _users_page(client)  # warm: the first request of a worker sets things up
    alias = tenant_db.using(acme)
    with CaptureQueriesContext(connections[alias]) as tenant:
        control = _users_page(client)
    tables = _tables(control.captured_queries)
    # The user and the session's device come from one cache read (accounts.identity); the
    # tenant and the member's role in one query (a subquery), not two.
    assert not {"accounts_user", "otp_totp_totpdevice", "otp_static_staticdevice", "tenants_tenantadmin"} & set(tables)
    if settings.REDIS_URL:  # the session and the snapshot from Redis: no query for either
        assert tables[:1] == ["tenants_tenant"] and len(tables) <= 2, tables  # + the jobs indicator
    else:  # the session table, then the cache table (one read for the user and the device)
        assert tables[:3] == ["django_session", "cache_key", "tenants_tenant"] and len(tables) <= 4, tables
    assert len(tenant.captured_queries) <= 3  # the rows, the capped count (PostgreSQL: + the estimate)


def test_a_request_touches_one_tenant_database_and_stays_flat_after_many_tenants(
        make_tenant, staff_factory, as_staff, client, settings):
    settings.TENANT_ALIASES_MAX = 8
    settings.TENANT_CONNECTIONS_PER_THREAD = 2
    tenants = [make_tenant(f"v{i}") for i in range(5)]
    as_staff(staff_factory(superuser=True))
    _users_page(client, "v0")  # warm
    before = len(_users_page(client, "v0").captured_queries)
    seen: list[str] = []

    def on_connect(sender, connection, **kwargs):
        if tenant_db.is_tenant_alias(connection.alias):
            seen.append(connection.alias)

    connection_created.connect(on_connect, weak=False)
    try:
        for t in tenants[1:] * 3:  # more aliases than the registry keeps
            seen.clear()
            _users_page(client, t.slug)
            assert set(seen) <= {f"tenant:{t.slug}"}  # never another tenant's database
    finally:
        connection_created.disconnect(on_connect)
    assert tenant_db.registered_aliases() <= 8
    after = _users_page(client, "v0").captured_queries
    assert len(after) == before, _tables(after)


@pytest.mark.postgres
def test_a_common_term_counts_after_the_rows(make_tenant, staff_factory, as_staff, client):
    from accounts.models import AppUser

    acme = make_tenant("acme")
    alias = tenant_db.using(acme)
    AppUser.objects.using(alias).bulk_create(
        [AppUser(email=f"john{i}@acme.test", name=f"John {i}") for i in range(2_100)]
        + [AppUser(email=f"ann{i}@acme.test", name=f"Ann {i}") for i in range(30)])
    with connections[alias].cursor() as cursor:
        cursor.execute("ANALYZE accounts_appuser")
    as_staff(staff_factory(tenants={acme: "viewer"}))
    client.get("/t/acme/users/?q=john")
    with CaptureQueriesContext(connections[alias]) as tenant:
        page = client.get("/t/acme/users/?q=john").content.decode()
    counts = [q["sql"] for q in tenant.captured_queries if "COUNT(*)" in q["sql"]]
    assert len(counts) == 1 and "LIMIT 2001" in counts[0]  # as far as the plan needs, not 10,001
    assert page.count('data-user-id=') == 50 or page.count("<tr") >= 50  # the rows are there
    assert '<span id="users-total" hx-get="?q=john&amp;count=1" hx-trigger="load"' in page
    assert "<strong>2,000+</strong> users match" in page
    total = client.get("/t/acme/users/?q=john&count=1", HTTP_HX_REQUEST="true").content.decode()
    assert total.startswith('<span id="users-total">') and "<strong>2,100</strong> users match" in total
    few = client.get("/t/acme/users/?q=ann").content.decode()  # few matches: exact at once
    assert "<strong>30</strong> users match" in few and "count=1" not in few
