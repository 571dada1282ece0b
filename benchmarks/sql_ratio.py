"""Each users page's time over its own SQL time (issue 16: the target is at most 2x).

The page is requested through the whole Django stack (session, staff user, OTP device, tenant
gate, template) and every statement it sent, to the control database and to the tenant's, is
recorded; then those statements alone are replayed on the same connections (the tenant's inside
one transaction, as the page runs them, so its ``set_config(..., true)`` planner choices hold).
Both are medians of --repeat. What is left between the two is the request itself.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from benchmarks import data
from benchmarks.run import median_ms
from tenants import db as tenant_db

SKIP = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def _replay(alias: str, statements: list[str]) -> None:
    with connections[alias].cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            if cursor.description is not None:
                cursor.fetchall()


def page_over_sql(client, url: str, tenant, repeat: int) -> tuple[float, float]:
    alias = tenant_db.using(tenant)
    client.get(url)  # the steady state: the staff snapshot cached (its first read writes the cache)
    with CaptureQueriesContext(connections["default"]) as control, \
            CaptureQueriesContext(connections[alias]) as tenant_side:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    statements = {
        "default": [q["sql"] for q in control.captured_queries if not q["sql"].startswith(SKIP)],
        alias: [q["sql"] for q in tenant_side.captured_queries if not q["sql"].startswith(SKIP)],
    }

    def sql_only() -> None:
        _replay("default", statements["default"])
        with transaction.atomic(using=alias):
            _replay(alias, statements[alias])

    page = median_ms(lambda: client.get(url), repeat)
    sql = median_ms(sql_only, repeat)
    return page, sql


def sql_ratio_figures(bench, tenant, client, repeat: int, cases: list[tuple[str, dict]]) -> None:
    base = f"/t/{tenant.slug}/users/"
    for name, params in cases:
        url = base + ("?" + urlencode(params) if params else "")
        page, sql = page_over_sql(client, url, tenant, repeat)
        ratio = page / sql if sql else float("inf")
        bench.figures.append({"name": f"{name}: page over its SQL", "ours": round(page, 2),
                              "baseline": round(sql, 2), "ratio": round(ratio, 2), "unit": "x",
                              "note": "target <= 2x"})
        print(f"{name + ': page/SQL':<34} {page:>10.2f} {sql:>12.2f} {ratio:>8.2f}x  page ms / its SQL ms "
              f"(target <= 2x)", flush=True)


def default_cases(tenant, deep_cursor: dict, email: str) -> list[tuple[str, dict]]:
    return [
        ("list unfiltered", {}),
        ("search common term", {"q": "john"}),
        ("search rare term", {"q": data.RARE_TERM}),
        ("search email", {"q": email}),
        ("deep page (middle)", deep_cursor),
    ]



