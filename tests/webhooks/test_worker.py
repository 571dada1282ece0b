"""Delivery on the real job runner: a ``jobs_worker`` process killed with SIGKILL in the middle
of a delivery loses nothing; the next worker sends every event, each counted once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.app_users import services as users
from events.models import Event
from tests.accounts.app_user_data import make_user
from webhooks import services as hooks
from webhooks.models import Attempt, Delivery

ROOT = Path(settings.BASE_DIR)


def _worker(log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict),
        "WEBHOOKS_ALLOW_PRIVATE": "1", "WEBHOOKS_LEASE_SECONDS": "2", "WEBHOOKS_RETRY_SCHEDULE": "0.2",
        "JOBS_HEARTBEAT_SECONDS": "0.5",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "jobs_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def _wait(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_loses_nothing(acme, tadmin, receiver, private_ok, tmp_path):
    endpoint, secret = hooks.endpoint_create(actor=tadmin, tenant=acme, url=receiver.url)
    people = [make_user(acme, f"u{i}@example.test") for i in range(5)]
    for person in people:
        users.app_user_ban(actor=tadmin, tenant=acme, user_id=person.pk,
                           until=timezone.now() + dt.timedelta(hours=1))
    expected = set(Event.objects.filter(type="user.banned").values_list("uid", flat=True))
    assert len(expected) == 5 and Delivery.objects.filter(endpoint=endpoint).count() == 5

    receiver.delay = 30.0  # the first request hangs: the worker is in the middle of it
    log = tmp_path / "worker.log"
    first = _worker(log)
    try:
        assert _wait(lambda: len(receiver.received) >= 1), log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert Attempt.objects.count() == 0  # killed before anything was logged
    receiver.delay = 0.0
    second = _worker(log)
    try:
        done = _wait(lambda: Delivery.objects.filter(endpoint=endpoint, state="succeeded").count() == 5)
        assert done, log.read_text()
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=15)
        except subprocess.TimeoutExpired:
            second.kill()
    assert set(receiver.ids()) == expected  # every event arrived (the hung one twice: same id)
    for got in receiver.received:
        got.verify(secret)
    assert Attempt.objects.filter(succeeded=True).count() == 5  # each delivery counted once
    assert Attempt.objects.filter(succeeded=False).count() == 0
    order = [r.id for r in receiver.received[1:]]
    by_id = dict(Event.objects.values_list("uid", "id"))
    assert order == sorted(order, key=by_id.get)  # oldest first
