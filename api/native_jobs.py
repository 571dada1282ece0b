"""Batch jobs in the native API: a large batch answers ``202 Accepted`` with its job
(``native_users.users_batch``); these follow it and cancel it. Another tenant's job is 404."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from api.http import ApiError
from api.native import BASE, ERRORS, ok, router
from api.native_users import Envelope, _gate, job_json
from batchjobs import selectors, services
from batchjobs.models import Job

J = f"{BASE}/tenants/{{slug}}/jobs/{{job_id}}"


def _job(tenant: object, job_id: str) -> Job:
    job = selectors.job_get(tenant=tenant, job_id=job_id)  # type: ignore[arg-type]
    if job is None:
        raise ApiError(404, "job_not_found", "No such job in this tenant.")
    return job


@router.get(J, response={200: Envelope, **ERRORS}, tags=["batches"], operation_id="native_job_get")
def job_get(request: HttpRequest, slug: str, job_id: str) -> HttpResponse:
    tenant, _actor = _gate(request, slug, "view_users")
    return ok(job_json(_job(tenant, job_id)))


@router.post(f"{J}/cancel", response={200: Envelope, **ERRORS}, tags=["batches"], operation_id="native_job_cancel")
def job_cancel(request: HttpRequest, slug: str, job_id: str) -> HttpResponse:
    """Stop the job after the chunks in flight (the rest untouched); a scheduled one never starts."""
    tenant, actor = _gate(request, slug, "view_users")
    job = services.job_cancel(actor=actor, tenant=tenant, job_id=_job(tenant, job_id).pk)
    return ok(job_json(job))
