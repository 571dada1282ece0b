"""Tasks of the runner itself. Each task here is a module-level function decorated with
``django_tasks.task``; enqueue it with ``.enqueue(...)`` (inside a transaction: the task row
commits or rolls back with it) and any ``jobs_worker`` runs it."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_tasks import TaskContext, task


@task(takes_context=True)
def ping(context: TaskContext, message: str = "pong") -> dict[str, Any]:
    """Answers with who ran it and when: proves a worker is taking tasks (``jobs_worker --batch``)."""
    return {
        "message": message,
        "worker": context.task_result.worker_ids[-1] if context.task_result.worker_ids else "",
        "attempt": context.attempt,
        "at": timezone.now().isoformat(),
    }
