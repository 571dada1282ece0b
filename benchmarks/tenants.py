"""``make bench-tenants``: the instance at many tenants, measured side by side at 10 and N.

    python -m benchmarks.tenants --tenants 1000 [--database postgres|sqlite] [--keep]

Creates the tenants (through the service, timed), then measures, each the median of --repeat:

- the console home and ``/tenants/`` at 10 tenants and at N (they read the stored figures: flat);
- the users page of one tenant after the worker visited 10 tenants, and after it visited N;
- tenant creation in the service (``tenant_create``: record, database from the template, active);
- ``tenants migrate --all`` with nothing to do, and after a change of the schema (every tenant
  rolled back by its newest migration, which ``migrate --all`` then applies again);
- PostgreSQL connections at peak under round-robin load over the tenants (gunicorn, 2 workers x
  2 threads), against the planned cap (``tenants capacity``), and the errors.

Purges what it created at the end (``--keep`` keeps it; each run uses slugs of its own). Prints every figure and writes
var/bench/tenants.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

from benchmarks.run import BENCH_DIR, configure, free_port, median_ms, staff_session

# Each run's tenant databases, and the control database (another instance's bench can run beside).
PREFIX = os.environ.get("BENCH_TENANT_DB_PREFIX", "bench_ft_")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--load-seconds", type=float, default=8.0)
    parser.add_argument("--keep", action="store_true", help="keep the tenants (not purged)")
    parser.add_argument("--only", choices=["fleet", "pages"],
                        help="fleet: creation and migrate --all alone; pages: home, /tenants/ and the users page")
    args = parser.parse_args(argv)
    small = min(10, args.tenants)

    configure(args.database)
    os.environ["TENANT_DB_PREFIX"] = PREFIX
    if args.database == "postgres":
        os.environ["DATABASE_URL"] = os.environ.get(
            "BENCH_TENANTS_DATABASE_URL", os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/adminpanel_bench_tenants")
        from benchmarks.run import _ensure_pg_database

        _ensure_pg_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)

    from django.db import connections
    from django.test import Client

    from accounts.app_users import figures
    from accounts.models import AppUser
    from tenants import db as tenant_db
    from tenants import services
    from tenants.models import Tenant

    user, session_key = staff_session()
    results: dict[str, float | int | str] = {"database": args.database, "tenants": args.tenants}

    def show(name: str, value: float, unit: str = "ms", note: str = "") -> None:
        results[name] = round(value, 2)
        print(f"{name:<52} {value:>10.2f} {unit}{'  ' + note if note else ''}", flush=True)

    import secrets

    tag = secrets.token_hex(2)  # slugs of this run (purged tenants keep theirs for good)
    tenants: list[Tenant] = []
    create_ms: list[float] = []

    def grow(to: int) -> None:
        for i in range(len(tenants), to):
            slug = f"b{tag}-{i:05d}"
            started = time.perf_counter()
            tenants.append(services.tenant_create(actor=None, slug=slug, name=f"Bench {i}"))
            create_ms.append(_ms(started))
            tenant_db.close_connection(tenants[-1])
        figures.figures_sweep_run(limit=to)
        if args.database == "postgres":
            # What autovacuum does after a bulk insert (it is off on the test server): without
            # statistics the planner sorts the whole table for a page of tenants. Then the
            # gigabytes the new databases wrote are flushed (8 MB each): measured during that
            # writeback, every page took twice its time.
            with connections["default"].cursor() as cursor:
                cursor.execute("ANALYZE tenants_tenant, tenants_tenantfigures")
                cursor.execute("CHECKPOINT")

    client = Client()
    client.cookies["adminpanel_session"] = session_key

    def get(path: str) -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")

    def visit(some: list[Tenant]) -> None:
        for t in some:
            get(f"/t/{t.slug}/users/")

    print(f"database: {args.database}; tenants: {args.tenants:,}; repeat: {args.repeat}", flush=True)
    if args.only == "fleet":  # no pages, no load: creation and migrate --all alone
        grow(args.tenants)
    else:
        grow(small)
        alias = tenant_db.using(tenants[0])
        if not AppUser.objects.using(alias).exists():
            AppUser.objects.using(alias).bulk_create([AppUser(email=f"u{i}@bench.test", name=f"User {i}")
                                                      for i in range(200)])
        home_small = median_ms(lambda: get("/"), args.repeat)
        list_small = median_ms(lambda: get("/tenants/"), args.repeat)
        visit(tenants[:small])
        users_small = median_ms(lambda: get(f"/t/{tenants[0].slug}/users/"), args.repeat)

        # One full page of each list (24 tiles on home, 50 rows on /tenants/): from here on the
        # pages render the same number of rows whatever the number of tenants.
        full = min(50, args.tenants)
        grow(full)
        home_full = median_ms(lambda: get("/"), args.repeat)
        list_full = median_ms(lambda: get("/tenants/"), args.repeat)
        started = time.perf_counter()
        grow(args.tenants)
        print(f"created {len(create_ms)} tenants in {_ms(started) / 1000:.1f} s", flush=True)
        home_big = median_ms(lambda: get("/"), args.repeat)
        list_big = median_ms(lambda: get("/tenants/"), args.repeat)
        visit(tenants)
        users_big = median_ms(lambda: get(f"/t/{tenants[0].slug}/users/"), args.repeat)

        show(f"home at {small} tenants", home_small)
        show(f"home at {full} tenants (a full page)", home_full)
        show(f"home at {args.tenants} tenants", home_big,
             note=f"{home_big / home_small:.2f}x of {small}, {home_big / home_full:.2f}x of {full}"
                  " (<= 1.2x, <= 200 ms)")
        show(f"/tenants/ at {small} tenants", list_small)
        show(f"/tenants/ at {full} tenants (a full page)", list_full)
        show(f"/tenants/ at {args.tenants} tenants", list_big,
             note=f"{list_big / list_small:.2f}x of {small}, {list_big / list_full:.2f}x of {full}"
                  " (<= 1.2x, <= 200 ms)")
        show(f"users page after visiting {small} tenants", users_small)
        show(f"users page after visiting {args.tenants} tenants", users_big,
             note=f"{users_big / users_small:.2f}x (target <= 1.2x)")
    if create_ms:
        show("tenant creation in the service (median)", statistics.median(create_ms),
             note=f"p90 {sorted(create_ms)[int(len(create_ms) * 0.9)]:.0f} ms over {len(create_ms)} (target <= 200 ms)")

    if args.only == "pages":
        return _finish(args, results, tenants)

    for t in tenants:
        t.refresh_from_db()
    started = time.perf_counter()
    outcomes = services.tenant_migrate_all(actor=None)
    noop_s = _ms(started) / 1000
    show(f"migrate --all, nothing to do ({len(outcomes)} tenants)", noop_s, "s", "target <= 10 s at 1,000")
    started = time.perf_counter()
    services.tenant_migrate_all(actor=None, recheck=True)
    show("migrate --all --recheck (asks every database)", _ms(started) / 1000, "s")

    # A change of the schema: every tenant one migration behind, then migrate --all.
    graph = tenant_db._migration_loader().graph
    leaf = graph.leaf_nodes("accounts")[0]
    parents = sorted(p for p in graph.node_map[leaf].parents if p[0] == "accounts")
    if parents:
        for t in tenants:
            tenant_db.migrate_database(t, target=[parents[0]])
            t.schema_version = tenant_db.applied_schema_version(t)
            t.save(update_fields=["schema_version"])
        started = time.perf_counter()
        outcomes = services.tenant_migrate_all(actor=None)
        failed = sum(1 for o in outcomes if not o.ok)
        show(f"migrate --all after a change ({leaf[1]})", _ms(started) / 1000, "s",
             f"{failed} failed; target <= 60 s at 1,000")

    if args.database == "postgres" and args.only != "fleet":
        _connections_under_load(args, tenants, session_key, show)
    return _finish(args, results, tenants)


def _finish(args, results, tenants) -> int:
    """Write the figures, purge the tenants (unless --keep)."""
    from django.db import connections

    from tenants import services

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    results["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (BENCH_DIR / "tenants.json").write_text(json.dumps(results, indent=2))
    print(f"written: {BENCH_DIR / 'tenants.json'}")
    if not args.keep:
        connections.close_all()
        for t in tenants:
            deleted = services.tenant_delete(actor=None, tenant=t)
            services.tenant_purge(actor=None, tenant=deleted, confirm_slug=t.slug)
        print(f"purged the {len(tenants)} benchmark tenants (--keep keeps them)")
    return 0


def _connections_under_load(args, tenants, session_key: str, show) -> None:
    """gunicorn (2 workers x 2 threads) under round-robin load over every tenant's users page;
    PostgreSQL's connections of this instance sampled every 20 ms."""
    import http.client
    import subprocess

    import psycopg

    from tenants import capacity

    workers, threads, clients = 2, 2, 4
    os.environ.update({"APP_SERVERS": "1", "WEB_WORKERS": str(workers), "WEB_THREADS": str(threads),
                       "JOB_WORKERS": "0", "MAIL_WORKERS": "0"})
    from django.conf import settings

    for name, value in (("APP_SERVERS", 1), ("WEB_WORKERS", workers), ("WEB_THREADS", threads),
                        ("JOB_WORKERS", 0), ("MAIL_WORKERS", 0)):
        setattr(settings, name, value)
    cap = capacity.planned_connections("default")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(workers), "--threads", str(threads),
         "--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=dict(os.environ),
    )
    from benchmarks.run import ROOT  # noqa: F401 - the same tree

    db = settings.DATABASES["default"]
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"] or None,
                             dbname="postgres", autocommit=True) as conn:
            while not done.is_set():
                n = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s OR datname LIKE %s",
                    [db["NAME"], PREFIX.replace("_", "\\_") + "%"]).fetchone()[0]
                peak[0] = max(peak[0], n)
                time.sleep(0.02)

    ok = [0] * clients
    errors = [0] * clients

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        k = i
        stop_at = time.time() + args.load_seconds
        while time.time() < stop_at:
            slug = tenants[k % len(tenants)].slug
            k += clients
            try:
                conn.request("GET", f"/t/{slug}/users/", headers={"Cookie": f"adminpanel_session={session_key}",
                                                                    "Host": "127.0.0.1"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    ok[i] += 1
                else:
                    errors[i] += 1
            except OSError:
                errors[i] += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()

    try:
        deadline = time.time() + 30
        import socket

        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        pool = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        done.set()
        sampler.join(timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    show("round-robin load: requests/s", sum(ok) / args.load_seconds, "rps",
         f"{clients} clients over {len(tenants)} tenants, gunicorn {workers}x{threads}")
    show("round-robin load: errors", sum(errors), "")
    show("PostgreSQL connections at peak (this instance)", peak[0], "",
         f"planned cap {cap} (tenants capacity)")


if __name__ == "__main__":
    sys.exit(main())
