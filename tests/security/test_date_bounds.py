"""The last representable day in a date filter is a valid filter, not a server error."""

from __future__ import annotations

import pytest

from accounts.app_users import services
from batchjobs.models import Job


@pytest.fixture
def acme(make_tenant, staff_factory, as_staff):
    tenant = make_tenant("acme")
    admin = staff_factory(superuser=True)
    services.app_user_create(actor=admin, tenant=tenant, email="ann@example.test", name="Ann",
                             password="a-long-password-1")
    as_staff(admin)
    return tenant


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("param", ["created_to", "signin_to"])
def test_users_list_and_export_accept_the_last_day(client, acme, param):
    response = client.get(f"/t/acme/users/?{param}=9999-12-31")
    assert response.status_code == 200
    export = client.get(f"/t/acme/users/export.csv?{param}=9999-12-31")
    assert export.status_code == 200
    body = b"".join(export.streaming_content).decode()
    assert ("ann@example.test" in body) == (param == "created_to")


@pytest.mark.django_db(transaction=True)
def test_batch_with_the_last_day_filter_is_not_a_server_error(client, acme):
    response = client.post("/t/acme/users/batch/", {
        "action": "sign_out", "scope": "all", "created_to": "9999-12-31",
    })
    # "All matching" becomes a batch job: its frozen preview holds the one user of the tenant.
    assert response.status_code == 302
    job_url = response["Location"]
    assert job_url.startswith("/t/acme/jobs/")
    job = Job.objects.get(pk=job_url.rstrip("/").rsplit("/", 1)[1])
    assert job.total == 1
    assert client.get(job_url).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", ["/audit/", "/audit/export.csv", "/t/acme/audit/",
                                 "/t/acme/audit/export.csv"])
def test_audit_viewer_accepts_the_last_day(client, acme, url):
    response = client.get(url + "?date_to=9999-12-31")
    assert response.status_code == 200
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
