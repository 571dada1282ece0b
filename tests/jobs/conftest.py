from __future__ import annotations

import pytest

from accounts.app_users.batches import Selection
from accounts.app_users.selectors import UserFilters
from batchjobs import engine, services
from batchjobs.models import Job


@pytest.fixture
def admin(staff_factory, acme):
    return staff_factory("admin@console.test", tenants={acme: "admin"})


@pytest.fixture
def support(staff_factory, acme):
    return staff_factory("support@console.test", tenants={acme: "support"})


def everyone(**filters) -> Selection:
    return Selection(filters=UserFilters(**filters))


def run_all(job: Job, *, worker_id: str = "test-worker", max_chunks: int | None = None) -> Job:
    """Work the job in this process, as a worker's task would (until done, or ``max_chunks``)."""
    engine.run(job.pk, worker_id=worker_id, max_chunks=max_chunks)
    job.refresh_from_db()
    return job


def start(actor, tenant, action, selection, **options) -> Job:
    job = services.batch_preview(actor=actor, tenant=tenant, action=action, selection=selection, options=options)
    return services.job_start(actor=actor, tenant=tenant, job_id=job.pk, inline=False)
