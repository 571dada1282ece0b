"""The deployed tier: a fresh instance built and run by the real commands, in its production shape.

One session fixture, ``instance``: a temporary data directory (and, in the PostgreSQL pass, a
control database and tenant prefix of its own, dropped at the end: the pytest-django test database
is never touched), the settings module ``config.settings`` with ``ADMINPANEL_ENV=production``,
``manage.py migrate``, ``createcachetable``, ``tenants create acme``, ``collectstatic``, ``setup``
(the instance admin) and a TOTP device row, then gunicorn with two workers and every worker process
of ``SERVICES`` beside it. The journeys talk to it over real HTTP.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.deployed.helpers import new_client, wait_for_link

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# The processes that run beside gunicorn, as in the Procfile (tests/deployed/test_journeys.py
# checks that both name the same ones). A new worker is one more line here.
SERVICES: dict[str, list[str]] = {
    "mail": [PY, "manage.py", "deliver_mail", "--loop", "--interval", "0.5"],
    "jobs": [PY, "manage.py", "jobs_worker", "--interval", "0.5"],
}

# Only these variables of the test run reach the instance: the rest (DATABASE_URL of the suite,
# DJANGO_SETTINGS_MODULE=tests.settings, ADMINPANEL_*) would mix the two.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")

ADMIN_EMAIL = "ops@deployed.test"
ADMIN_PASSWORD = "deployed-Admin-passphrase-42"
APP_USER_EMAIL = "ann@deployed.test"
APP_USER_PASSWORD = "ann-first-passphrase-77"
TENANT = "acme"
ACCESS_RE = re.compile(r'^access <(\d+)> (\d{3}) (\S+) "([^"]*)" (\S+)$', re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_server() -> dict | None:
    """The PostgreSQL server of this pass (the suite's DATABASE_URL), or None for SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return None
    import dj_database_url

    return dj_database_url.parse(url)


def _pg_connect(server: dict):
    import psycopg

    return psycopg.connect(
        dbname="postgres", user=server["USER"] or None, password=server["PASSWORD"] or None,
        host=server["HOST"] or None, port=server["PORT"] or None, autocommit=True, connect_timeout=5,
    )


def _pg_url(server: dict, name: str) -> str:
    auth = server["USER"] or ""
    if server["PASSWORD"]:
        auth += f":{server['PASSWORD']}"
    host = f"{server['HOST'] or '127.0.0.1'}:{server['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{name}" if auth else f"postgres://{host}/{name}"


@dataclass
class Instance:
    root: Path
    port: int
    env: dict[str, str]
    database: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Every answer the clients got: (status, method, path, X-Request-ID or "-").
    responses: list[tuple[int, str, str, str]] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)
    # (index of the first response after a restart, the new workers): each must be a fresh one's.
    restarts: list[tuple[int, set[int]]] = field(default_factory=list)
    seen_links: set[str] = field(default_factory=set)  # links already followed

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    # --- commands ----------------------------------------------------------------------------

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        """Run ``manage.py`` like an operator does; its output, or the test fails with it."""
        started = time.monotonic()
        result = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env={**self.env, **(extra_env or {})},
            capture_output=True, text=True, timeout=180,
        )
        self.timings.append((f"manage.py {args[0]}", time.monotonic() - started))
        output = result.stdout + result.stderr
        with (self.log_dir / "commands.log").open("a") as log:
            log.write(f"$ manage.py {' '.join(args)}\n{output}\n")
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{output}"
        return output

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self.procs[name]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def access_log(self) -> list[tuple[int, int, str, str, str]]:
        """gunicorn's access log: (worker pid, status, method, path, X-Request-ID or "-")."""
        return [
            (int(pid), int(status), method, path, rid)
            for pid, status, method, path, rid in ACCESS_RE.findall(self.log("web"))
        ]

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def assert_running(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited ({proc.returncode}):\n{self.log(name)[-3000:]}"

    # --- gunicorn ----------------------------------------------------------------------------

    def web_workers(self) -> set[int]:
        """The live gunicorn workers: the master's children that are not zombies."""
        master = self.procs["web"].pid
        workers = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == master and state != "Z":
                workers.add(int(entry.name))
        return workers

    def wait_for_workers(self, *, not_in: set[int] = frozenset(), count: int = 2, timeout: float = 30) -> set[int]:
        deadline = time.monotonic() + timeout
        while True:
            self.assert_running()
            workers = self.web_workers()
            if len(workers) == count and not (workers & not_in):
                return workers
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn workers {workers}, old {not_in}:\n{self.log('web')[-3000:]}")
            time.sleep(0.05)

    def restart_web(self) -> None:
        """SIGHUP: gunicorn starts new workers and retires the old ones gracefully. Returns once
        only new workers are left, so the next request is the first a fresh worker serves."""
        started = time.monotonic()
        old = self.web_workers()
        self.procs["web"].send_signal(signal.SIGHUP)
        self.restarts.append((len(self.responses), self.wait_for_workers(not_in=old)))
        self.timings.append(("gunicorn SIGHUP", time.monotonic() - started))

    def wait_for_link(self, *, to: str, containing: str) -> str:
        """The link in the next mail to ``to`` that the mail worker delivered (from its file)."""
        return wait_for_link(self.mail_dir, to=to, containing=containing, seen=self.seen_links,
                             still_running=self.assert_running)

    # --- HTTP --------------------------------------------------------------------------------

    def _record(self, response: httpx.Response) -> None:
        self.responses.append((response.status_code, response.request.method, response.request.url.path,
                               response.headers.get("X-Request-ID", "-")))

    def client(self) -> httpx.Client:
        """A browser of its own (cookies kept; every answer, redirects included, is recorded)."""
        return new_client(self.base_url, self._record)


def _build(instance: Instance) -> None:
    instance.manage("migrate", "--noinput")
    instance.manage("createcachetable")
    instance.manage("collectstatic", "--noinput")  # production serves the manifest's fingerprinted names
    instance.manage("tenants", "create", TENANT, "--name", "Acme")
    instance.manage("setup", "--email", ADMIN_EMAIL, "--name", "Ops", "--noinput",
                    extra_env={"ADMINPANEL_SETUP_PASSWORD": ADMIN_PASSWORD})
    # The authenticator of the instance admin (the test computes its codes) and an app user with
    # a password, created by the services an operator's shell would use.
    instance.manage("shell", "-c", f"""
from django_otp.plugins.otp_totp.models import TOTPDevice
from accounts.models import User
from accounts.app_users.services import app_user_create
from accounts.otp import TOTP_DEVICE_NAME
from tenants.models import Tenant
admin = User.objects.get(email={ADMIN_EMAIL!r})
TOTPDevice.objects.create(user=admin, name=TOTP_DEVICE_NAME, key={instance.env['DEPLOYED_TOTP_KEY']!r}, confirmed=True)
app_user_create(actor=admin, tenant=Tenant.objects.get(slug={TENANT!r}), email={APP_USER_EMAIL!r},
                name="Ann", password={APP_USER_PASSWORD!r}, confirmed=True)
""")


@contextmanager
def running_instance(root: Path, *, via: tuple[str, int] | None = None,
                     extra_env: dict[str, str] | None = None) -> Iterator[Instance]:
    """Build and run an instance in ``root``. ``via``: in the PostgreSQL pass, the (host, port)
    the instance reaches PostgreSQL through (a pooler); its databases are made and dropped on
    the server itself."""
    (root / "logs").mkdir()
    (root / "mail").mkdir()
    tag = secrets.token_hex(4)
    port = free_port()
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
        "ADMINPANEL_ENV": "production",
        "ADMINPANEL_DATA_DIR": str(root / "data"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SECURE_SSL_REDIRECT": "0",  # no TLS here; in production it ends at a proxy in front
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(root / "mail"),
        "OUTBOX_DELIVERY": "worker",
        "DEPLOYED_TOTP_KEY": secrets.token_hex(20),
        # The webhook receiver of tests/deployed/test_webhooks.py listens on 127.0.0.1, which
        # production refuses by default; an operator sets this for such a setup too.
        "WEBHOOKS_ALLOW_PRIVATE": "1",
        **(extra_env or {}),
    })
    server = _postgres_server()
    database = "sqlite"
    if server is not None:
        from psycopg import sql

        database = f"apt_deployed_{tag}"
        reach = {**server, "HOST": via[0], "PORT": via[1]} if via else server
        env["DATABASE_URL"] = _pg_url(reach, database)
        env["TENANT_DB_PREFIX"] = f"apt_dep_{tag}_"
        with _pg_connect(server) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
        env["CACHE_KEY_PREFIX"] = f"apt-deployed-{tag}"

    inst = Instance(root=root, port=port, env=env, database=database)
    try:
        _build(inst)
        started = time.monotonic()
        inst.start("web", [
            PY, "-m", "gunicorn", "config.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}",
            "--logger-class", "config.gunicorn_logger.TokenMaskingLogger",  # as the Procfile
            "--access-logfile", "-", "--access-logformat", 'access %(p)s %(s)s %(m)s "%(U)s" %({x-request-id}o)s',
            "--graceful-timeout", "10", "--no-control-socket",  # not the one in ~/.gunicorn/ shared by all
        ])
        for name, argv in SERVICES.items():
            inst.start(name, argv)
        inst.wait_for_workers()
        inst.timings.append(("gunicorn start", time.monotonic() - started))
        yield inst
    finally:
        inst.stop()
        if server is not None:
            _drop_postgres(server, database, env["TENANT_DB_PREFIX"])
        if "CACHE_KEY_PREFIX" in env:
            _drop_redis_keys(env["REDIS_URL"], env["CACHE_KEY_PREFIX"])


@pytest.fixture(scope="session")
def instance(tmp_path_factory) -> Iterator[Instance]:
    with running_instance(tmp_path_factory.mktemp("deployed")) as inst:
        yield inst


def _drop_postgres(server: dict, database: str, prefix: str) -> None:
    from psycopg import sql

    pattern = prefix.replace("_", r"\_") + "%"
    with _pg_connect(server) as conn:
        rows = conn.execute(
            "SELECT datname, datistemplate FROM pg_database WHERE datname LIKE %s", [pattern]
        ).fetchall()
        for name, is_template in rows:
            if is_template:  # the tenant template: PostgreSQL refuses to drop it while marked
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
        for name in [*(r[0] for r in rows), database]:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if SUMMARY:
        terminalreporter.section("deployed tier")
        for line in SUMMARY:
            terminalreporter.write_line(line)
