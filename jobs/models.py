"""The job workers themselves: one row per ``manage.py jobs_worker`` process, with its heartbeat.

django-tasks-db marks a task RUNNING when a worker takes it and never looks again: a worker
killed with SIGKILL leaves its task RUNNING forever. These rows let the other workers (and the
next one to start) tell a dead worker from a busy one, and queue its tasks again.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerBeat(models.Model):
    worker_id = models.CharField(max_length=64, primary_key=True)
    # Where the process runs: the kernel's boot id and the process's pid namespace, so a worker
    # on the same machine (and in the same container) can check the pid directly.
    host_key = models.CharField(max_length=120)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField()
    proc_start = models.CharField(max_length=40, blank=True)  # /proc/<pid>/stat start time
    queues = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # "stopped" (shut down cleanly) or "lost" (found dead by another worker).
    end = models.CharField(max_length=10, blank=True)

    class Meta:
        indexes = [models.Index(fields=["stopped_at", "beat_at"], name="workerbeat_live")]

    def __str__(self) -> str:
        return f"worker {self.worker_id} (pid {self.pid} on {self.hostname})"
