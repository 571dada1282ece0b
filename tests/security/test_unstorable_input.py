"""Searches and imports with what no column can hold answer normally (PostgreSQL refuses a NUL
byte and an over-long varchar with a DataError, which used to surface as a 500)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import JobTarget
from tenants import db as tenant_db


@pytest.fixture
def acme(make_tenant, staff_factory, as_staff):
    tenant = make_tenant("acme")
    as_staff(staff_factory(superuser=True))
    return tenant


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", ["/", "/tenants/", "/mail/", "/staff/", "/switch/"])
def test_a_nul_in_a_search_is_dropped_not_a_server_error(client, acme, url):
    response = client.get(url, {"q": "ac\x00me", "tenant": "\x00"} if url == "/mail/" else {"q": "ac\x00me"})
    assert response.status_code in (200, 302), response.status_code
    if url in ("/", "/tenants/"):
        assert "Acme" in response.content.decode()  # the search ran, without the NUL


@pytest.mark.django_db(transaction=True)
def test_an_over_long_address_in_an_import_is_a_refused_row(client, acme):
    long_email = "a" * 300 + "@example.test"
    content = f"email,name\n{long_email},Long\nann@example.test,Ann\n".encode()
    response = client.post("/t/acme/users/import/", {"file": SimpleUploadedFile("x.csv", content, "text/csv")})
    assert response.status_code == 302 and "/t/acme/jobs/" in response["Location"]
    rows = {t.name: t for t in JobTarget.objects.using(tenant_db.using(acme))}
    assert rows["Long"].skip_result == "error" and len(rows["Long"].email) == 254
    assert rows["Ann"].skip_result == ""
