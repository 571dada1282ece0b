"""The runner: django-tasks-db's queue worked by ``manage.py jobs_worker``, and the reaper that
recovers what a dead worker left RUNNING (django-tasks-db alone never looks at it again)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from jobs import process, worker
from jobs.models import WorkerBeat
from jobs.tasks import ping


@pytest.fixture
def slow_heartbeat(settings):
    # The heartbeat thread would open a connection of its own: not inside a test's transaction.
    settings.JOBS_HEARTBEAT_SECONDS = 3600


@pytest.mark.django_db(transaction=True)  # the worker closes connections between tasks
def test_a_worker_runs_an_enqueued_task_and_signs_off(slow_heartbeat):
    result = ping.enqueue("hello")
    assert DBTaskResult.objects.get(pk=result.id).status == "READY"
    call_command("jobs_worker", "--batch", "--no-reload", "--no-startup-delay", verbosity=0)
    row = DBTaskResult.objects.get(pk=result.id)
    assert row.status == "SUCCESSFUL"
    assert row.return_value["message"] == "hello"
    beat = WorkerBeat.objects.get(worker_id=row.return_value["worker"])
    assert beat.end == "stopped" and beat.stopped_at is not None


def _running_task(worker_id: str) -> DBTaskResult:
    result = ping.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(status="RUNNING", worker_ids=[worker_id],
                                                     started_at=timezone.now())
    return DBTaskResult.objects.get(pk=result.id)


@pytest.mark.django_db
def test_the_reaper_queues_again_the_tasks_of_a_worker_whose_process_is_gone():
    here = process.host_key()
    # A process of this machine that has exited (no such pid), and this very process.
    WorkerBeat.objects.create(worker_id="gone", host_key=here, pid=2**22 + 7, beat_at=timezone.now())
    WorkerBeat.objects.create(worker_id="busy", host_key=here, pid=os.getpid(),
                              proc_start=process.proc_start(os.getpid()), beat_at=timezone.now())
    lost, busy = _running_task("gone"), _running_task("busy")
    outcome = worker.reap()
    assert outcome["dead"] == 1 and outcome["requeued"] == 1
    assert DBTaskResult.objects.get(pk=lost.pk).status == "READY"  # run again by the next worker
    assert DBTaskResult.objects.get(pk=busy.pk).status == "RUNNING"  # alive: left alone
    assert WorkerBeat.objects.get(worker_id="gone").end == "lost"
    assert worker.reap()["requeued"] == 0  # once


@pytest.mark.django_db
def test_a_silent_worker_elsewhere_is_dead_after_three_missed_beats(settings):
    settings.JOBS_HEARTBEAT_SECONDS = 2
    now = timezone.now()
    WorkerBeat.objects.create(worker_id="far-quiet", host_key="other-machine", pid=1,
                              beat_at=now - timedelta(seconds=7))
    WorkerBeat.objects.create(worker_id="far-alive", host_key="other-machine", pid=1,
                              beat_at=now - timedelta(seconds=5))
    assert worker.dead_workers(now=now) == ["far-quiet"]


def test_a_zombie_or_a_reused_pid_is_not_the_worker():
    me = os.getpid()
    assert process.is_alive(me, process.proc_start(me))
    assert not process.is_alive(me, "1")  # same pid, another start time: a later process
    assert not process.is_alive(2**22 + 7, "")


@pytest.mark.django_db
def test_a_busy_worker_of_this_machine_is_not_dead_for_missing_beats(settings):
    settings.JOBS_HEARTBEAT_SECONDS = 1
    stale = timezone.now() - timedelta(minutes=5)  # busy, or waiting for SQLite's write lock
    WorkerBeat.objects.create(worker_id="busy-here", host_key=process.host_key(), pid=os.getpid(),
                              proc_start=process.proc_start(os.getpid()), beat_at=stale)
    assert worker.dead_workers() == []


@pytest.mark.django_db
def test_a_worker_taken_for_lost_that_dies_later_still_has_its_tasks_queued_again():
    # Taken for lost earlier (it went on working), then it took a task and died for real.
    WorkerBeat.objects.create(worker_id="late", host_key="other-machine", pid=1, beat_at=timezone.now(),
                              stopped_at=timezone.now(), end="lost")
    task = _running_task("late")
    assert worker.reap()["requeued"] == 1
    assert DBTaskResult.objects.get(pk=task.pk).status == "READY"


@pytest.mark.django_db
def test_a_worker_taken_for_lost_that_beats_again_is_alive():
    WorkerBeat.objects.create(worker_id="back", host_key="other-machine", pid=1, beat_at=timezone.now(),
                              stopped_at=timezone.now(), end="lost")
    worker.beat("back")
    row = WorkerBeat.objects.get(worker_id="back")
    assert row.stopped_at is None and row.end == ""
    task = _running_task("back")
    assert worker.reap()["requeued"] == 0
    assert DBTaskResult.objects.get(pk=task.pk).status == "RUNNING"
