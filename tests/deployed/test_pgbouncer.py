"""PgBouncer in transaction mode, the documented pooled deployment: a fresh instance built and
run (gunicorn, mail and job workers) with every connection to PostgreSQL going through Debian's
pgbouncer on a free port, then the journeys over HTTP, tenant creation from the template,
``migrate --all`` and a purge, all through the pooler. PostgreSQL pass only; in CI it must run."""

from __future__ import annotations

import pytest

from tests.deployed import conftest as deployed
from tests.deployed import pgbouncer
from tests.deployed import test_journeys as journeys

pytestmark = [pytest.mark.deployed, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    server = deployed._postgres_server()
    assert server is not None  # marked postgres: this pass has a server
    root = tmp_path_factory.mktemp("pooled")
    (root / "instance").mkdir()
    user = server["USER"] or "postgres"
    with pgbouncer.running(host=server["HOST"] or "127.0.0.1", port=int(server["PORT"] or 5432),
                           user=user) as (port, _):
        with deployed.running_instance(root / "instance", via=("127.0.0.1", port),
                                       extra_env={"DATABASE_POOLER": "transaction"}) as inst:
            yield inst, port, user


def test_journeys_through_pgbouncer_in_transaction_mode(pooled):
    instance, port, user = pooled
    assert f":{port}/" in instance.env["DATABASE_URL"]  # the instance knows only the pooler
    journeys.step_healthz(instance)
    journeys.step_portal_sign_in(instance)
    with instance.client() as console:
        journeys.step_console_sign_in(instance, console)
        journeys.step_users_and_invite(instance, console)
    journeys.step_accept_invitation(instance)
    journeys.step_recovery(instance)
    # Fleet operations through the pooler: a tenant from the template (CREATE DATABASE ...
    # TEMPLATE), migrate --all asking every database, a delete and a purge (DROP DATABASE).
    assert "is active" in instance.manage("tenants", "create", "globex", "--name", "Globex")
    out = instance.manage("tenants", "migrate", "--all", "--recheck")
    assert "acme: already current" in out and "globex: already current" in out
    instance.manage("tenants", "delete", "globex")
    assert "purged" in instance.manage("tenants", "purge", "globex", "--yes")
    assert "client connections" in instance.manage("tenants", "capacity")
    instance.assert_running()

    pools = pgbouncer.show(port, user, "POOLS")
    used = [p for p in pools if p["database"].startswith(("apt_deployed_", "apt_dep_"))]
    assert used and all(p["pool_mode"] == "transaction" for p in used)
    # What reached PostgreSQL: never more than the pool per database, whatever the clients held.
    assert all(p["sv_active"] + p["sv_idle"] + p["sv_used"] <= pgbouncer.POOL_SIZE for p in used)
    server_errors = [r for r in instance.responses if r[0] >= 500]
    tracebacks = {name: instance.log(name).count("Traceback") for name in instance.procs}
    assert not server_errors, server_errors
    assert not any(tracebacks.values()), {n: instance.log(n)[-4000:] for n, c in tracebacks.items() if c}
