"""Issue 11's figure kept as a test: of 20 concurrent uses of one staff TOTP code, or of one
backup code, exactly one is accepted (the device row is locked while checking; links: see
tests/portal/test_tokens.py). PostgreSQL, where the row lock is what decides."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connections

from accounts import otp
from tests.accounts.helpers import code_for, enrol

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(n: int, attempt: Callable[[], bool]) -> list[bool]:
    barrier = threading.Barrier(n)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            ok = attempt()
            with lock:
                outcomes.append(ok)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == n
    return outcomes


def test_one_totp_code_twenty_times_at_once_is_accepted_once(staff_factory):
    user = staff_factory("race@console.test")
    device, _ = enrol(user)
    code = code_for(device)
    outcomes = _race(20, lambda: otp.verify(user, code).ok)
    assert outcomes.count(True) == 1, outcomes


def test_one_backup_code_twenty_times_at_once_is_accepted_once(staff_factory):
    user = staff_factory("race@console.test")
    _, codes = enrol(user)
    outcomes = _race(20, lambda: otp.verify(user, codes[0]).ok)
    assert outcomes.count(True) == 1, outcomes
    assert otp.backup_codes_left(user) == 9
