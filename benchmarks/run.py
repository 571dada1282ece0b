"""Side-by-side benchmarks: our users console against the Django admin changelist (and a save()
loop with auditlog for batches), on the same table with the same indexes, in one process run.

    python -m benchmarks.run --users 1000000 --database postgres
    python -m benchmarks.run --users 100000 --database sqlite

Prints ``name  ours_ms  baseline_ms  ratio`` per figure and writes var/bench/latest.json.
Each figure is the median of --repeat runs after warm-up. Data sets are kept between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
PG_CONTROL_URL = "postgres://postgres@127.0.0.1:5432/adminpanel_bench"


def configure(database: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["TENANTS_CREATE_DEFAULT_ON_MIGRATE"] = "0"
    data_dir = BENCH_DIR / database
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ADMINPANEL_DATA_DIR"] = str(data_dir)
    os.environ.pop("REDIS_URL", None)
    if database == "postgres":
        url = os.environ.get("BENCH_DATABASE_URL", PG_CONTROL_URL)
        os.environ["DATABASE_URL"] = url
        _ensure_pg_database(url)
        os.environ["TENANT_DB_PREFIX"] = os.environ.get("BENCH_TENANT_DB_PREFIX", "bench_t_")
    else:
        os.environ.pop("DATABASE_URL", None)
        os.environ["TENANT_DB_PREFIX"] = os.environ.get("BENCH_TENANT_DB_PREFIX", "bench_t_")


def _ensure_pg_database(url: str) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    with psycopg.connect(
        dbname="postgres", user=cfg["USER"] or None, host=cfg["HOST"] or None,
        port=cfg["PORT"] or None, password=cfg["PASSWORD"] or None, autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))


def median_ms(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


class Bench:
    def __init__(self, args):
        self.args = args
        self.figures: list[dict] = []

    def add(self, name: str, ours: float, baseline: float, unit: str = "ms", note: str = "") -> None:
        ratio = baseline / ours if ours else float("inf")
        if unit == "rps":
            ratio = ours / baseline if baseline else float("inf")
        row = {"name": name, "ours": round(ours, 2), "baseline": round(baseline, 2),
               "ratio": round(ratio, 1), "unit": unit, "note": note}
        self.figures.append(row)
        print(f"{name:<34} {ours:>10.2f} {baseline:>12.2f} {ratio:>8.1f}x  {unit}{'  ' + note if note else ''}",
              flush=True)

    def figure(self, name: str, value: float, unit: str, note: str = "") -> None:
        """A figure without a baseline (memory, a duration)."""
        self.figures.append({"name": name, "ours": round(value, 2), "baseline": None, "ratio": None,
                             "unit": unit, "note": note})
        print(f"{name:<34} {value:>10.2f} {'':>12} {'':>8}  {unit}{'  ' + note if note else ''}", flush=True)


def staff_session():
    """A superuser with a confirmed TOTP device and a verified session; returns the cookie."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from console.staff_session import OTP_VERIFIED_AT

    User = get_user_model()
    user = User.objects.filter(email="bench@console.test").first() or User.objects.create_superuser(
        "bench@console.test", "bench-password-not-used-1", name="Bench"
    )
    device = TOTPDevice.objects.filter(user=user).first() or TOTPDevice.objects.create(
        user=user, name="bench", confirmed=True
    )
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "accounts.backends.StaffBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store[DEVICE_ID_SESSION_KEY] = device.persistent_id
    store[OTP_VERIFIED_AT] = int(time.time()) + 10 * 365 * 86400  # never "stale" during the run
    store["adminpanel_login_at"] = int(time.time())
    store.create()
    return user, store.session_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000, help="size for the growth factor")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rps-seconds", type=float, default=8.0)
    parser.add_argument("--job-workers", type=int, default=2, help="jobs_worker processes for the ban job")
    parser.add_argument("--job-sample", type=int, default=2_000, help="users of the save() loop it is compared to")
    parser.add_argument("--skip", default="", help="comma list: list,api,batch,growth,rps,webhooks,jobs")
    parser.add_argument("--only", default="", help="comma list of the same names: run these alone "
                        "(--only batch: the batch ban figure; --only jobs: the ban job)")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if args.only:
        skip |= {"list", "api", "batch", "growth", "rps", "webhooks", "jobs"} - set(args.only.split(","))

    configure(args.database)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)

    from benchmarks import data, scenarios

    bench = Bench(args)
    user, session_key = staff_session()
    print(f"database: {args.database}; users: {args.users:,}; repeat: {args.repeat}", flush=True)
    big = data.ensure_dataset(args.users)
    print(f"{'figure':<34} {'ours_ms':>10} {'baseline_ms':>12} {'ratio':>8}", flush=True)
    if "list" not in skip:
        big_figures = scenarios.list_figures(bench, big, session_key, args.repeat, suffix="")
        scenarios.query_figures(bench, big, args.repeat)
    if "growth" not in skip and "list" not in skip:
        small = data.ensure_dataset(args.small)
        small_figures = scenarios.list_figures(
            bench, small, session_key, args.repeat, suffix=f"@{args.small // 1000}k", record=False
        )
        for name, ours_big in big_figures.items():
            ours_small = small_figures[name]
            growth = ours_big / ours_small if ours_small else float("inf")
            bench.figures.append({"name": f"growth {name}", "ours": round(growth, 2), "baseline": None,
                                  "ratio": None, "unit": "x", "note": f"{args.small:,} -> {args.users:,}"})
            print(f"{'growth ' + name:<34} {growth:>10.2f} {'':>12} {'':>8}  x ({args.small:,} -> {args.users:,})",
                  flush=True)
    if "api" not in skip:
        scenarios.api_figures(bench, big, session_key, args.repeat)
    if "batch" not in skip:
        scenarios.batch_figures(bench, big, user, min(args.batch, args.users // 2))
    if "rps" not in skip:
        scenarios.rps_figures(bench, big, session_key, args.rps_seconds, args.database)
    if "webhooks" not in skip:
        from benchmarks.webhooks import webhook_figures

        webhook_figures(bench, big, user, min(args.batch, args.users // 2), args.repeat)
    if "jobs" not in skip:
        from benchmarks import job_bench

        job_bench.job_figures(bench, big, user, workers=args.job_workers, sample=args.job_sample,
                              log_dir=BENCH_DIR / "workers")

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    out = {"database": args.database, "users": args.users, "repeat": args.repeat,
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "figures": bench.figures}
    (BENCH_DIR / "latest.json").write_text(json.dumps(out, indent=2))
    print(f"written: {BENCH_DIR / 'latest.json'}")
    return 0


# --- gunicorn helpers (used by scenarios.rps_figures) -----------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int) -> subprocess.Popen:
    env = dict(os.environ)
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "2", "--threads", "1",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def load(port: int, path: str, cookie: str, seconds: float, clients: int = 4) -> float:
    """Requests per second over ``seconds`` with ``clients`` keep-alive connections (bounded)."""
    import http.client

    done = [0] * clients
    errors = [0] * clients
    stop_at = time.time() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.time() < stop_at:
            conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                done[i] += 1
            else:
                errors[i] += 1
                if errors[i] > 20:
                    raise RuntimeError(f"{path} answered {resp.status}")
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - started)


if __name__ == "__main__":
    sys.exit(main())
