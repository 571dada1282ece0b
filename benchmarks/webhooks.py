"""Webhook figures (issue 14): what an event costs a single-user change and a 10,000-user batch
(events on, with one endpoint subscribed, against events off), and deliveries per second to a
local receiver (a separate process on 127.0.0.1) against bare HTTP posts of the same bodies.

    python -m benchmarks.run --skip list,growth,batch,rps      # these figures alone
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import time
from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.test.utils import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.app_users import batches
from accounts.app_users import services as users
from accounts.models import AppUser
from audit.models import AuditEntry
from events.models import Event
from tenants import db as tenant_db
from webhooks import delivery
from webhooks import services as hooks
from webhooks.models import Delivery, Endpoint

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _receiver() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def webhook_figures(bench, tenant, actor, size: int, repeat: int) -> None:
    alias = tenant_db.using(tenant)
    run_started = timezone.now()
    Endpoint.objects.filter(tenant=tenant).delete()  # left by an interrupted run: they would fan out too
    proc, port = _receiver()
    try:
        with override_settings(WEBHOOKS_ALLOW_PRIVATE=True):
            endpoint, _ = hooks.endpoint_create(actor=None, tenant=tenant, url=f"http://127.0.0.1:{port}/hook")
            _single(bench, tenant, actor, alias, repeat)
            _batch(bench, tenant, actor, alias, size)
            _deliveries(bench, endpoint, port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        Endpoint.objects.filter(tenant=tenant).delete()
        DBTaskResult.objects.filter(task_path__startswith="webhooks.", enqueued_at__gte=run_started).delete()
        Event.objects.filter(tenant=tenant, created_at__gte=run_started).delete()
        AuditEntry.objects.filter(tenant=tenant, timestamp__gte=run_started).delete()
        for name in list(connections):
            connections[name].close()


def _single(bench, tenant, actor, alias: str, repeat: int) -> None:
    pk = AppUser.objects.using(alias).filter(deleted_at__isnull=True, banned_until__isnull=True,
                                             role="user").values_list("pk", flat=True).first()
    until = timezone.now() + timedelta(hours=1)

    def change() -> None:
        users.app_user_ban(actor=actor, tenant=tenant, user_id=pk, until=until, reason="bench")
        users.app_user_unban(actor=actor, tenant=tenant, user_id=pk)

    # Interleaved, so that the load of a shared machine falls on both sides alike.
    change()
    samples: dict[bool, list[float]] = {True: [], False: []}
    for i in range(repeat * 6):
        on = i % 2 == 0
        with override_settings(EVENTS_ENABLED=on):
            started = time.perf_counter()
            change()
            samples[on].append((time.perf_counter() - started) * 1000)
    on_ms, off = statistics.median(samples[True]), statistics.median(samples[False])
    bench.add("single change + events (ban+unban)", on_ms, off, note=f"events add {on_ms - off:+.1f} ms, "
              f"{on_ms / off:.2f}x of events off (one endpoint subscribed)")


def _batch(bench, tenant, actor, alias: str, size: int) -> None:
    ids = list(
        AppUser.objects.using(alias).filter(deleted_at__isnull=True, banned_until__isnull=True, role="user")
        .order_by("created_at").values_list("id", flat=True)[:size]
    )
    selection = batches.Selection(ids=tuple(str(i) for i in ids))

    def ban() -> float:
        started = time.perf_counter()
        result = batches.app_users_batch(actor=actor, tenant=tenant, action="ban", selection=selection,
                                         until=timezone.now() + timedelta(hours=24), reason="bench")
        took = (time.perf_counter() - started) * 1000
        assert result.processed == len(ids), result
        AppUser.objects.using(alias).filter(id__in=ids).update(banned_until=None, ban_reason="")
        return took

    runs: dict[bool, list[float]] = {True: [], False: []}
    for on_ in (False, True, False, True):  # interleaved; the best of two each
        with override_settings(EVENTS_ENABLED=on_):
            runs[on_].append(ban())
    on, off = min(runs[True]), min(runs[False])
    bench.add(f"batch ban {len(ids):,} + events", on, off,
              note=f"events add {on - off:+,.0f} ms, {on / off:.2f}x of events off; {len(ids):,} events "
                   f"and {len(ids):,} deliveries written in bulk")


def _deliveries(bench, endpoint: Endpoint, port: int) -> None:
    pending = Delivery.objects.filter(endpoint=endpoint, state="pending")
    count = pending.count()
    bodies = [delivery.body_of(d.event) for d in pending.select_related("event")[:2000]]
    budget = 10.0
    started = time.perf_counter()
    outcome = delivery.run(endpoint.pk, budget=budget)
    took = time.perf_counter() - started
    ours = outcome["sent"] / took

    started = time.perf_counter()
    sent = 0
    for body in bodies:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/hook", body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
        sent += 1
        if time.perf_counter() - started > budget:
            break
    bare = sent / (time.perf_counter() - started)
    bench.add("deliveries/s to a local receiver", ours, bare, unit="rps",
              note=f"{outcome['sent']:,} of {count:,} sent, signed and logged, vs bare HTTP posts "
                   f"(one worker, {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})")

