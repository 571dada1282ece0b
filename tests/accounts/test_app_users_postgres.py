"""On PostgreSQL, with a realistic volume (40,000 users, analyzed), the queries the users list
actually runs (captured from the view, then EXPLAINed) read indexes: no sequential scan of
the users table for the list, its pages, sorts, selective filters and searches."""

from __future__ import annotations

import re

import pytest
from django.db import connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tenants import db as tenant_db
from tests.conftest import login_verified

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ROWS = 40_000


@pytest.fixture
def big(make_tenant):
    tenant = make_tenant("big")
    conn = connections[tenant_db.using(tenant)]
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO accounts_appuser (id, email, name, role, password, ban_reason, mfa_enabled,
                user_metadata, app_metadata, created_at, updated_at, email_confirmed_at,
                invited_at, banned_until, last_sign_in_at, deleted_at)
            SELECT gen_random_uuid(),
                   'user' || lpad(i::text, 6, '0') || '@' || (ARRAY['gmail.com','acme.io','example.org','corp.net'])[1 + i %% 4],
                   initcap(substr(md5(i::text), 1, 7)) || ' ' || initcap(substr(md5((i * 7)::text), 1, 9)),
                   CASE WHEN i %% 200 = 0 THEN 'admin' ELSE 'user' END,
                   CASE WHEN i %% 50 = 1 THEN '' ELSE 'argon2$x' END, '', i %% 20 = 0, '{}', '{}',
                   now() - make_interval(mins => i), now(),
                   CASE WHEN i %% 50 IN (1, 2) THEN NULL ELSE now() END,
                   CASE WHEN i %% 50 = 1 THEN now() END,
                   CASE WHEN i %% 333 = 0 THEN now() + interval '1 day' END,
                   CASE WHEN i %% 3 = 0 THEN NULL ELSE now() - make_interval(mins => (i * 37) %% 90000) END,
                   CASE WHEN i %% 997 = 0 THEN now() END
            FROM generate_series(1, %s) AS i
            """,
            [ROWS],
        )
    conn.close()
    with connections[tenant_db.using(tenant)].cursor() as cur:  # autocommit: VACUUM may run
        cur.execute("VACUUM ANALYZE accounts_appuser")
    return tenant


@pytest.fixture
def viewer(big, staff_factory):
    return login_verified(Client(), staff_factory("v@console.test", tenants={big: "viewer"}))


def _plans(client, tenant, url) -> list[tuple[str, str]]:
    """(sql, plan) of every users-table query the view ran for ``url``, EXPLAINed under the
    planner settings (``set_config(..., true)``) that were in force when the view ran it."""
    with CaptureQueriesContext(connections[tenant_db.using(tenant)]) as captured:
        response = client.get(url)
    assert response.status_code == 200
    statements, settings = [], []
    for q in captured.captured_queries:
        sql = q["sql"]
        if sql in ("BEGIN", "COMMIT", "ROLLBACK"):
            settings = []
        elif sql.startswith("SELECT set_config("):
            settings.append(sql)
        elif 'FROM "accounts_appuser"' in sql:
            statements.append((sql, list(settings)))
    assert statements, url
    plans = []
    conn = connections[tenant_db.using(tenant)]
    for sql, sets in statements:
        with transaction.atomic(using=tenant_db.using(tenant)), conn.cursor() as cur:
            for statement in sets:
                cur.execute(statement)
            cur.execute("EXPLAIN " + sql)
            plans.append((sql, "\n".join(row[0] for row in cur.fetchall())))
    return plans, response


QUERIES = [
    "",                                   # the default list: newest first
    "sort=created",
    "sort=email",
    "sort=-email",
    "sort=-last_sign_in",
    "sort=last_sign_in",
    "per_page=100",
    "q=user012345",                       # substring of an email
    "q=gmail",                            # a domain
    "q=3f2a",                             # substring of a name
    "q=Ab",                               # short: prefix
    "status=banned",
    "status=invited",
    "status=deleted",
    "role=admin",
    "mfa=yes&sort=email",
    "q=user01&status=banned",
]


def test_list_and_search_queries_use_indexes(big, viewer, capsys):
    for query in QUERIES:
        plans, response = _plans(viewer, big, "/t/big/users/?" + query)
        # The next page too (keyset cursor), when there is one.
        match = re.search(r'rel="next" href="([^"]+)"', response.content.decode())
        if match:
            more, _ = _plans(viewer, big, "/t/big/users/" + match.group(1).replace("&amp;", "&"))
            plans += more
        for sql, plan in plans:
            assert "Seq Scan on accounts_appuser" not in plan, f"{query}\n{sql}\n{plan}"
            assert "Index" in plan, f"{query}\n{sql}\n{plan}"
        with capsys.disabled():
            first = plans[0][1].splitlines()
            print(f"\n[explain] ?{query or '(default)'}: " + " | ".join(x.strip() for x in first[:4]))


def test_unfiltered_total_comes_from_the_planner_without_counting(big, viewer):
    with CaptureQueriesContext(connections[tenant_db.using(big)]) as captured:
        page = viewer.get("/t/big/users/").content.decode()
    assert "<strong>10,000+</strong> users" in page
    assert not any("COUNT(" in q["sql"].upper() for q in captured.captured_queries)


def test_search_pages_follow_the_measured_count_not_the_planner_guess(big, viewer):
    """The planner guesses the same selectivity for any '%term%'; the list counts first (bitmap
    scans) and reads the page accordingly: few matches → bitmap + sort, many → ordered index."""
    rare, _ = _plans(viewer, big, "/t/big/users/?q=user012345")
    count_plan, page_plan = rare[0][1], rare[1][1]
    assert "COUNT(" in rare[0][0].upper() and "Bitmap Index Scan on appuser_email_trgm" in count_plan
    assert "Bitmap Index Scan on appuser_email_trgm" in page_plan and "Sort" in page_plan
    common, _ = _plans(viewer, big, "/t/big/users/?q=gmail")
    assert "Bitmap Index Scan" in common[0][1]
    assert "Index Scan using appuser_created_keyset" in common[1][1]
    assert "Bitmap" not in common[1][1]
