"""Debian's PgBouncer for the deployed tier: started on a free port in transaction mode, in
front of the suite's PostgreSQL server (README "Connection planning and PgBouncer")."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BINARY = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
POOL_SIZE = 5  # server connections per database and user: what PostgreSQL sees at most

CONFIG = """\
[databases]
; The maintenance database in session mode: tenants.db holds a session advisory lock there
; while it builds a tenant template. Every other database in transaction mode.
postgres = host={host} port={port} pool_mode=session
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {root}/users.txt
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,options
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
admin_users = {user}
"""


def require() -> str:
    """The binary, or the test skips (fails in CI: .ci/run installs Debian's pgbouncer)."""
    if BINARY is None:
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed (apt-get install -y pgbouncer); CI must run this tier.")
        pytest.skip("pgbouncer is not installed (apt-get install -y pgbouncer)")
    return BINARY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(*, host: str, port: int, user: str) -> Iterator[tuple[int, Path]]:
    """PgBouncer in front of ``host:port``; yields the port it listens on and its directory."""
    binary = require()
    # Run as root, PgBouncer drops to nobody, who must reach its files: a directory of its own
    # in the temporary directory (pytest's are private to their owner).
    root = Path(tempfile.mkdtemp(prefix="apt-pgbouncer-"))
    root.chmod(0o777)
    listen = _free_port()
    (root / "users.txt").write_text(f'"{user}" ""\n')
    (root / "pgbouncer.ini").write_text(CONFIG.format(host=host, port=port, listen=listen, root=root,
                                                      pool=POOL_SIZE, user=user))
    for name in ("users.txt", "pgbouncer.ini"):
        (root / name).chmod(0o644)
    argv = [binary, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:
        argv[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", listen), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (root / "pgbouncer.log").read_text() if (root / "pgbouncer.log").exists() else ""
                    raise AssertionError(f"pgbouncer did not start:\n{log[-2000:]}") from None
                time.sleep(0.05)
        yield listen, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def show(listen: int, user: str, what: str) -> list[dict]:
    """``SHOW <what>`` on PgBouncer's admin console."""
    import psycopg

    # The admin console speaks the simple query protocol only: a client-side cursor uses it.
    with psycopg.connect(host="127.0.0.1", port=listen, dbname="pgbouncer", user=user, autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        cursor = conn.execute(f"SHOW {what}")
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
