"""The instance pages at many tenants (issue 16): the console home and ``/tenants/`` run the same
queries for a page of 10 tenants as for a full page (24 tiles, 50 rows), render every row in
Python with what the templates showed (escaped), read their page from an index on PostgreSQL;
a worker's users page does the same work after visiting many tenants as after visiting one."""

from __future__ import annotations

import re
import uuid

import pytest
from django.core.signals import request_finished
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AppUser
from console.views.home import HOME_PAGE_SIZE
from console.views.tenants import TENANTS_PAGE_SIZE
from tenants import db as tenant_db
from tenants import selectors
from tenants.models import Tenant, TenantFigures

pytestmark = pytest.mark.django_db


def _records(n: int, *, start: int = 0, **fields) -> list[Tenant]:
    """Tenant records with counted figures and no database: the instance pages open none."""
    tenants = Tenant.objects.bulk_create([
        Tenant(slug=f"rec-{i:04d}", name=f"Record {i:04d}", db_name=f"rec_{i:04d}_{uuid.uuid4().hex[:6]}",
               status=Tenant.Status.ACTIVE, schema_version=tenant_db.latest_schema_version(), **fields)
        for i in range(start, start + n)
    ])
    TenantFigures.objects.bulk_create([
        TenantFigures(tenant=t, users=10, active_7=1, active_30=2, banned=0, invited=3, mfa=5,
                      refreshed_at=timezone.now()) for t in tenants
    ])
    return tenants


@pytest.fixture
def page(client, tenant_connects):
    def get(path: str) -> tuple[str, int]:
        """The page and how many control-database queries it ran (no tenant database opened).
        The first request of a session also writes it: asked once before."""
        client.get(path)
        with CaptureQueriesContext(connections["default"]) as queries:
            response = client.get(path)
        assert response.status_code == 200 and tenant_connects == []
        assert len(queries.captured_queries) > 0
        return response.content.decode(), len(queries.captured_queries)

    return get


def test_a_full_page_runs_the_queries_of_a_page_of_ten(page, staff_factory, as_staff):
    as_staff(staff_factory(superuser=True))
    _records(10)
    home_10, home_q10 = page("/")
    list_10, list_q10 = page("/tenants/")
    assert home_10.count("data-tenant=") == 10 and home_10.count('<tr data-slug="') == 10
    assert list_10.count('<tr data-slug="') == 10

    _records(90, start=10)
    home_full, home_q = page("/")
    list_full, list_q = page("/tenants/")
    assert home_full.count("data-tenant=") == HOME_PAGE_SIZE == 24
    assert home_full.count('<tr data-slug="') == HOME_PAGE_SIZE
    assert list_full.count('<tr data-slug="') == TENANTS_PAGE_SIZE == 50
    assert "100 tenants" in home_full and 'id="tenants-total">100 tenants<' in list_full
    assert (home_q, list_q) == (home_q10, list_q10)


def test_a_members_full_page_runs_the_queries_of_a_page_of_ten(page, staff_factory, as_staff):
    tenants = _records(40)
    member = staff_factory(tenants={t: "support" for t in tenants[:10]})
    as_staff(member)
    few, queries_few = page("/")
    assert few.count("data-tenant=") == 10
    for t in tenants[10:]:
        member.tenant_roles.create(tenant=t, role="viewer")
    full, queries_full = page("/")
    assert full.count("data-tenant=") == HOME_PAGE_SIZE and "40 tenants" in full
    assert queries_full == queries_few
    assert '<span class="badge badge-info">support</span>' in full  # the member's role in each
    assert '<span class="badge badge-plain">viewer</span>' in full


def _row(html: str, slug: str, tag: str = "tr") -> str:
    return re.search(rf'<{tag}[^>]*data-(?:slug|tenant)="{slug}"[^>]*>(.*?)</{tag}>', html, re.S).group(1)


def test_rows_show_status_figures_and_schema_escaped(client, staff_factory, as_staff):
    as_staff(staff_factory(superuser=True))
    odd, default, behind, gone, fresh = _records(5)
    Tenant.objects.filter(pk=odd.pk).update(name='<b>"Odd" & Co\'s</b>', status=Tenant.Status.SUSPENDED)
    Tenant.objects.filter(pk=default.pk).update(is_default=True)
    Tenant.objects.filter(pk=behind.pk).update(schema_version={"accounts": "0001_initial"})
    Tenant.objects.filter(pk=gone.pk).update(status=Tenant.Status.DELETED)
    TenantFigures.objects.filter(tenant=fresh).update(refreshed_at=None)
    TenantFigures.objects.filter(tenant=odd).update(users=2_500_000, mfa=500_000,
                                                    kinds={"users": "approximate", "mfa": "approximate"})
    TenantFigures.objects.filter(tenant=default).update(banned=10_000, kinds={"banned": "capped"})

    home = client.get("/").content.decode()
    tile = _row(home, odd.slug, "a")
    assert "&lt;b&gt;&quot;Odd&quot; &amp; Co&#x27;s&lt;/b&gt;" in tile and "<b>" not in tile
    assert 'badge-warning">suspended</span>' in tile and 'badge badge-primary">admin<' in tile
    assert f'href="/t/{odd.slug}/users/"' in home
    assert "· default" in _row(home, default.slug, "a")
    overview = home.split('id="tenant-overview"', 1)[1]
    odd_line = _row(overview, odd.slug)
    assert f'href="{reverse("console:tenant-dashboard", args=[odd.slug])}"' in odd_line
    assert '<td class="num">≈ 2.5M</td>' in odd_line and "20.0%" in odd_line
    assert '<td class="num">10,000+</td>' in _row(overview, default.slug)
    assert "not counted yet" in _row(overview, fresh.slug)

    listing = client.get("/tenants/").content.decode()
    row = _row(listing, odd.slug)
    assert "&lt;b&gt;" in row and '<span class="badge badge-warning">Suspended</span>' in row
    assert '≈ 2.5M</td><td class="num">1</td><td class="num">2</td>' in row and "20.0%" in row
    assert 'title="counted ' in row and odd.db_name in row and "server <code>default</code>" in row
    assert 'badge-success badge-plain">Current<' in row and '<time datetime="' in row
    assert "Behind" in _row(listing, behind.slug) and "Migrate all (1 behind)" in listing
    assert 'badge badge-danger">Deleted<' in _row(listing, gone.slug)
    assert '<span class="muted">—</span>' in _row(listing, gone.slug)  # no figures for a deleted one
    assert "not counted yet" in _row(listing, fresh.slug)
    assert _row(listing, default.slug).count("· default") == 1
    assert listing.index(f'data-slug="{default.slug}"') < listing.index(f'data-slug="{odd.slug}"')


def test_the_list_counts_are_one_query(django_assert_num_queries):
    a, b, c = _records(3)
    Tenant.objects.filter(pk=a.pk).update(schema_version={})
    Tenant.objects.filter(pk=c.pk).update(status=Tenant.Status.PURGED, schema_version={})
    latest = tenant_db.latest_schema_version()
    with django_assert_num_queries(1):
        assert selectors.tenant_list_counts(latest=latest) == (2, 1)  # purged: not listed, not behind
    assert selectors.tenant_list_counts(latest=latest, include_purged=True) == (3, 1)
    assert selectors.tenant_list_counts(latest=latest, query="0001") == (1, 1)


@pytest.mark.postgres
def test_the_pages_read_their_page_from_an_index(client, staff_factory, as_staff):
    as_staff(staff_factory(superuser=True))
    _records(600)
    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE tenants_tenant")
        cursor.execute("ANALYZE tenants_tenantfigures")
    for path, index in (("/", "tenant_home_order"), ("/tenants/", "tenant_list_order")):
        with CaptureQueriesContext(connections["default"]) as queries:
            assert client.get(path).status_code == 200
        page_sql = next(q["sql"] for q in queries.captured_queries
                        if q["sql"].startswith('SELECT "tenants_tenant"."id"') and "LIMIT" in q["sql"])
        with connections["default"].cursor() as cursor:
            cursor.execute("EXPLAIN " + page_sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert index in plan and "Sort" not in plan, plan


@pytest.fixture
def one_kept(settings):
    settings.TENANT_CONNECTIONS_PER_THREAD = 1
    settings.TENANT_ALIASES_MAX = 2  # aliases_max(): at least 2 x the connections kept
    yield settings


def test_the_users_page_does_the_same_work_after_visiting_many_tenants(client, make_tenant, staff_factory,
                                                                      as_staff, one_kept):
    tenants = [make_tenant(f"visit{i}") for i in range(5)]
    AppUser.objects.using(tenant_db.using(tenants[0])).create(email="ann@visit.test")
    as_staff(staff_factory(superuser=True))
    walked: list[list[str]] = []

    def on_finished(**kwargs):
        walked.append(list(connections))  # what Django's request handlers iterate

    def users_page() -> tuple[int, int, list[str]]:
        alias = tenant_db.using(tenants[0])
        with CaptureQueriesContext(connections["default"]) as control, \
                CaptureQueriesContext(connections[alias]) as tenant:
            assert client.get(f"/t/{tenants[0].slug}/users/").status_code == 200
        assert not [q for q in tenant.captured_queries if "pg_type" in q["sql"]]
        return len(control.captured_queries), len(tenant.captured_queries), walked[-1]

    request_finished.connect(on_finished, weak=False)
    try:
        client.get(f"/t/{tenants[0].slug}/users/")
        after_one = users_page()
        for t in tenants[1:]:
            assert client.get(f"/t/{t.slug}/users/").status_code == 200
        client.get(f"/t/{tenants[0].slug}/users/")  # its connection was closed meanwhile: reopened
        after_five = users_page()
    finally:
        request_finished.disconnect(on_finished)
    assert after_five == after_one
    assert len([a for a in after_five[2] if tenant_db.is_tenant_alias(a)]) <= 1
    assert tenant_db.registered_aliases() <= 2
