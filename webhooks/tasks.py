"""The delivery task on the job runner (queue ``webhooks``): one run of one endpoint."""

from __future__ import annotations

from typing import Any

from django_tasks import TaskContext, task

from webhooks import delivery


@task(queue_name="webhooks", takes_context=True)
def deliver_endpoint(context: TaskContext, endpoint_id: str) -> dict[str, Any]:
    owner = f"{context.task_result.id}:{context.attempt}"[:40]
    return delivery.run(endpoint_id, owner=owner)
