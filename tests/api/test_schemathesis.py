"""Schemathesis against the served OpenAPI document (/api/v1/openapi.json), both surfaces: for
every operation, generated requests with real credentials (a tenant admin key on the GoTrue
surface, an instance admin's personal token on the native one) get no server error, and every
answer matches the status codes and the schema the document declares."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def credentials(make_tenant, staff_factory, settings):
    from core.policy import policy
    from credentials.services import api_key_create, staff_token_create

    settings.SECURITY_POLICY = {"api_auth_failures_per_minute": 100_000, "api_rate_per_minute": 100_000,
                                "api_rate_per_hour": 100_000}
    policy.cache_clear()
    tenant = make_tenant("acme")
    boss = staff_factory("boss@console.test", superuser=True)
    yield {"key": api_key_create(actor=None, tenant=tenant, name="fuzz", role="admin")[1],
           "pat": staff_token_create(actor=boss, name="fuzz")[1]}
    settings.SECURITY_POLICY = {}
    policy.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_api_conforms_to_its_openapi_document(credentials):
    """One tenant for every operation (creating one per operation would cost minutes on
    PostgreSQL); each operation gets its own generated examples, failures reported by label."""
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            if "slug" in (case.path_parameters or {}):
                case.path_parameters["slug"] = "acme"  # the tenant that exists: reach past authentication
            secret = credentials["key"] if case.path.startswith("/t/") else credentials["pat"]
            case.call_and_validate(headers={"apikey": secret, "Authorization": f"Bearer {secret}"}, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - collected: every operation is checked, all failures shown
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert operations >= 80, operations
    assert not failures, "\n\n".join(failures)
