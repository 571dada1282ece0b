"""The job's task on the runner. Any number of them may run for one job at once (they share its
chunks); each works for at most ``JOBS_SLICE_SECONDS`` and then queues its own continuation, so
a long job never holds a worker from other tasks, and a stopping worker hands it on at once."""

from __future__ import annotations

from django.utils import timezone
from django_tasks import TaskContext, task

from batchjobs import engine
from batchjobs.models import Job


@task(queue_name="jobs", takes_context=True)
def job_run(context: TaskContext, job_id: str) -> str:
    worker_id = context.task_result.worker_ids[-1] if context.task_result.worker_ids else "task"
    outcome = engine.run(job_id, worker_id=worker_id, budget=engine.slice_seconds())
    if outcome == "sliced":
        job_run.enqueue(job_id)
    elif outcome == "scheduled":  # woken early (by the reaper): sleep again until its time
        job = Job.objects.get(pk=job_id)
        if job.scheduled_for and job.scheduled_for > timezone.now():
            job_run.using(run_after=job.scheduled_for).enqueue(job_id)
    return outcome
