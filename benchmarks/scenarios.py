"""The measured scenarios. Every figure runs ours and the baseline in the same process run."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from urllib.parse import urlencode

from django.db import connections, transaction
from django.test import Client
from django.utils import timezone

from accounts.models import AppUser
from benchmarks import data
from benchmarks.run import free_port, load, median_ms, start_gunicorn
from tenants import db as tenant_db

ADMIN_PATH = "/bench-admin/accounts/appuser/"


def _client(session_key: str, tenant) -> Client:
    client = Client()
    client.cookies["adminpanel_session"] = session_key
    client.cookies["bench_tenant"] = tenant.slug
    return client


def _get(client: Client, path: str) -> None:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}")
    # Consume the body as a browser would (streaming responses included).
    b"".join(response) if response.streaming else response.content


def _sample_email(tenant) -> str:
    return AppUser.objects.using(tenant_db.using(tenant)).order_by("created_at").values_list(
        "email", flat=True
    )[AppUser.objects.using(tenant_db.using(tenant)).count() // 3]


def _deep_cursor(tenant, offset: int) -> dict:
    """Our cursor for the row at ``offset`` of the default order (computed outside the timing)."""
    from accounts.app_users.selectors import Cursor, encode_cursor

    row = (
        AppUser.objects.using(tenant_db.using(tenant))
        .order_by("-created_at", "-id")
        .values("created_at", "id")[offset - 1]
    )
    cursor = Cursor(sort="-created", segment=0, value=row["created_at"], pk=str(row["id"]), direction="n")
    return {"cursor": encode_cursor(cursor)}


def list_figures(bench, tenant, session_key: str, repeat: int, *, suffix: str, record: bool = True) -> dict:
    client = _client(session_key, tenant)
    ours_base = f"/t/{tenant.slug}/users/"
    n = AppUser.objects.using(tenant_db.using(tenant)).count()
    deep_offset = (n // 2) // 50 * 50
    email = _sample_email(tenant)
    cases = [
        ("list unfiltered", {}, {}),
        ("search common term", {"q": "john"}, {"q": "john"}),
        ("search rare term", {"q": data.RARE_TERM}, {"q": data.RARE_TERM}),
        ("search email", {"q": email}, {"q": email}),
        ("search prefix (2 chars)", {"q": "ma"}, {"q": "ma"}),
        ("filter status=banned", {"status": "banned"}, {"status": "banned"}),
        ("deep page (middle)", _deep_cursor(tenant, deep_offset), {"p": str(deep_offset // 50 + 1)}),
    ]
    if record:  # each page's time over its own SQL's (benchmarks/sql_ratio.py)
        from benchmarks.sql_ratio import default_cases, sql_ratio_figures

        sql_ratio_figures(bench, tenant, client, repeat,
                          default_cases(tenant, _deep_cursor(tenant, deep_offset), email))
    results = {}
    for name, ours_params, admin_params in cases:
        ours_url = ours_base + ("?" + urlencode(ours_params) if ours_params else "")
        admin_url = ADMIN_PATH + ("?" + urlencode(admin_params) if admin_params else "")
        ours = median_ms(lambda u=ours_url: _get(client, u), repeat)
        baseline = median_ms(lambda u=admin_url: _get(client, u), max(3, repeat // 2))
        results[name] = ours
        if record:
            bench.add(f"{name}{suffix}", ours, baseline)
    return results


def query_figures(bench, tenant, repeat: int) -> None:
    """The database side alone (no HTTP, no template): our selector against the queries the
    admin changelist runs (COUNT of the filtered rows, COUNT of the table, OFFSET page)."""
    from accounts.app_users.selectors import UserFilters, app_user_list, search_q

    alias = tenant_db.using(tenant)
    n = AppUser.objects.using(alias).count()
    offset = (n // 2) // 50 * 50
    cursor = _deep_cursor(tenant, offset)["cursor"]
    ordered = AppUser.objects.using(alias).order_by("-created_at", "-id")

    def admin(qs, at):
        qs.count()
        ordered.count()
        list(qs[at:at + 50])

    cases = [
        ("deep page (queries only)",
         lambda: app_user_list(tenant=tenant, filters=UserFilters(), cursor=cursor),
         lambda: admin(ordered, offset)),
        ("search common (queries only)",
         lambda: app_user_list(tenant=tenant, filters=UserFilters(q="john")),
         lambda: admin(ordered.filter(search_q("john")), 0)),
    ]
    for name, ours_fn, base_fn in cases:
        bench.add(name, median_ms(ours_fn, repeat), median_ms(base_fn, max(3, repeat // 2)))


def batch_figures(bench, tenant, actor, size: int) -> None:
    """Ban ``size`` users with audit: our batch service against a save() loop doing auditlog's
    per-row work (read the old row, save, write one LogEntry with the diff). auditlog itself
    refuses tenant models (see audit.checks), so the loop calls its LogEntry manager directly."""
    from accounts.app_users import batches
    from audit.models import AuditEntry
    from audit.services import diff, snapshot

    alias = tenant_db.using(tenant)
    ids = list(
        AppUser.objects.using(alias).filter(deleted_at__isnull=True, banned_until__isnull=True, role="user")
        .order_by("created_at").values_list("id", flat=True)[: size * 2]
    )
    ours_ids, base_ids = ids[:size], ids[size : size * 2]

    run_started = timezone.now()

    def reset(which):
        AppUser.objects.using(alias).filter(id__in=which).update(banned_until=None, ban_reason="")

    started = time.perf_counter()
    result = batches.app_users_batch(
        actor=actor, tenant=tenant, action="ban",
        selection=batches.Selection(ids=tuple(str(i) for i in ours_ids)),
        until=timezone.now() + timedelta(hours=24), reason="benchmark",
    )
    ours_ms = (time.perf_counter() - started) * 1000
    assert result.processed == len(ours_ids), result

    until = timezone.now() + timedelta(hours=24)
    started = time.perf_counter()
    for pk in base_ids:
        with transaction.atomic(using=alias), transaction.atomic(using="default"):
            user = AppUser.objects.using(alias).get(pk=pk)
            old = AppUser.objects.using(alias).get(pk=pk)
            user.banned_until = until
            user.ban_reason = "benchmark"
            user.save()
            AuditEntry.objects.log_create(
                user, action=AuditEntry.Action.UPDATE, changes=diff(snapshot(old), snapshot(user)),
                event="app_user.ban", tenant=tenant, actor=actor,
            )
    base_ms = (time.perf_counter() - started) * 1000
    reset(ours_ids)
    reset(base_ids)
    # The benchmark's own audit entries (ours and the loop's) would pile up run after run.
    AuditEntry.objects.filter(tenant=tenant, timestamp__gte=run_started).delete()
    bench.add(f"batch ban {size:,} with audit", ours_ms, base_ms,
              note=f"ours {size / (ours_ms / 1000):,.0f} users/s")


def rps_figures(bench, tenant, session_key: str, seconds: float, database: str) -> None:
    port = free_port()
    proc = start_gunicorn(port)
    cookie = f"adminpanel_session={session_key}; bench_tenant={tenant.slug}"
    try:
        load(port, f"/t/{tenant.slug}/users/", cookie, 1.0)  # warm both workers
        load(port, ADMIN_PATH, cookie, 1.0)
        ours = statistics.median([load(port, f"/t/{tenant.slug}/users/", cookie, seconds / 2)
                                  for _ in range(2)])
        base = statistics.median([load(port, ADMIN_PATH, cookie, seconds / 2) for _ in range(2)])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for alias in list(connections):
        connections[alias].close()
    bench.add("requests/s users page (gunicorn -w2)", ours, base, unit="rps")


def api_figures(bench, tenant, session_key: str, repeat: int) -> None:
    """The admin API's user lists (GoTrue's numbered page with its exact total, the native keyset
    page) against the Django admin changelist, on the same tenant, credentials in headers."""
    from credentials.services import api_key_create

    _key, raw = api_key_create(actor=None, tenant=tenant, name="bench", role="viewer")
    api = Client(HTTP_APIKEY=raw, HTTP_AUTHORIZATION=f"Bearer {raw}")
    admin = _client(session_key, tenant)
    baseline = median_ms(lambda: _get(admin, ADMIN_PATH), max(3, repeat // 2))
    for name, url in (
        ("api gotrue list users (page 1)", f"/t/{tenant.slug}/auth/v1/admin/users?page=1&per_page=50"),
        ("api native list users", f"/api/v1/tenants/{tenant.slug}/users?limit=50"),
    ):
        bench.add(name, median_ms(lambda u=url: _get(api, u), repeat), baseline)
