"""The branded status pages: console and portal look, the refusal's message, no URL patterns
(DEBUG on or off), a 500 that touches nothing, the CSRF failure page."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory, override_settings

from console import errors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_console_url_is_the_branded_404_without_patterns(staff, debug):
    client = staff("support")
    with override_settings(DEBUG=debug):
        response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body and "Back to the console" in body
    assert "URLconf" not in body and "setup/" not in body and "t/&lt;slug" not in body


def test_403_shows_the_refusals_message(staff, acme):
    response = staff("viewer").get(f"/t/{acme.slug}/settings/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "You cannot do this" in body
    assert "Your role in this tenant does not allow this." in body


def test_portal_404_has_the_portal_look_and_the_tenant_name(acme):
    with override_settings(DEBUG=False):
        response = Client().get(f"/p/{acme.slug}/nowhere/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "portal.css" in body and acme.name in body and "Back to the sign-in page" in body


def test_500_is_branded_and_needs_no_database():
    request = RequestFactory().get("/p/acme/account/")
    response = errors.server_error(request)
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body and "Account portal" in body and "Traceback" not in body
    assert errors.server_error(RequestFactory().get("/t/acme/users/")).content.decode().count("Admin Console") >= 1


def test_400_and_csrf_failure_are_branded(staff):
    request = RequestFactory().get("/")
    assert errors.bad_request(request).status_code == 400
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"email": "a@b.test", "password": "x"})
    assert response.status_code == 403
    assert "This form had expired" in response.content.decode()


def test_error_pages_have_one_h1(staff):
    response = staff("support").get("/no/such/page/")
    assert response.content.decode().count("<h1") == 1
