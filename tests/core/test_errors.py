"""The console maps a service error that no view handled once, by its class: NotFound 404,
Refused 403, Invalid 400, Conflict 409 (``console.errors.ServiceErrorMiddleware``), never a 500.
And the views that do handle them: one-click actions flash the message, NotFound is a 404."""

from __future__ import annotations

from unittest import mock

import pytest

from core.errors import Conflict, Invalid, NotFound, Refused, ServiceError
from tests.accounts.app_user_data import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def detail(acme, staff_factory, as_staff):
    """A real console page (a user's detail) whose selector can be made to raise."""
    ann = make_user(acme, "ann@example.test")
    client = as_staff(staff_factory("support@console.test", tenants={acme: "support"}))
    return client, f"/t/acme/users/{ann.pk}/"


@pytest.mark.parametrize("error, status", [
    (NotFound("No such thing here.", code="not_found"), 404),
    (Refused("You may not look at this.", code="role"), 403),
    (Invalid("This input is wrong.", code="invalid_email", field="email"), 400),
    (Conflict("Not in this state.", code="not_banned"), 409),
    (ServiceError("Something else went wrong.", code="odd"), 400),
])
def test_an_unhandled_service_error_gets_its_status_page(detail, error, status):
    client, url = detail
    with mock.patch("accounts.app_users.selectors.app_user_sessions", side_effect=error):
        response = client.get(url)
    assert response.status_code == status
    if status in (400, 409):  # the console's own page, with the error's message
        assert error.message in response.content.decode()


def test_a_one_click_action_flashes_the_error_and_a_missing_target_is_404(acme, detail):
    client, url = detail
    with mock.patch("accounts.app_users.services.app_user_sign_out",
                    side_effect=Conflict("This session has already ended.", code="session_ended")):
        response = client.post(url + "sign-out/", follow=True)
    assert response.status_code == 200
    assert "This session has already ended." in [str(m) for m in response.context["messages"]]
    with mock.patch("accounts.app_users.services.app_user_sign_out",
                    side_effect=NotFound("No such session.", code="session_not_found")):
        assert client.post(url + "sign-out/").status_code == 404


def test_every_error_has_a_code_a_status_and_its_fields():
    error = Invalid("Enter an email address.", code="required", field="email")
    assert (error.status, error.code, error.field, error.fields) == (
        400, "required", "email", {"email": ["Enter an email address."]})
    assert str(error) == error.message and error.messages == ["Enter an email address."]
    assert (NotFound("x").code, Refused("x").code, Invalid("x").code, Conflict("x").code) == (
        "not_found", "refused", "invalid", "conflict")
