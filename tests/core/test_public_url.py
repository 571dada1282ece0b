"""Links mailed in development follow the served host and port (`make run PORT=8101`)."""

from __future__ import annotations

from django.test import RequestFactory, override_settings

from core import request_context


@override_settings(PUBLIC_BASE_URL="", DEVELOPMENT_BASE_URL="http://127.0.0.1:8101", ALLOWED_HOSTS=["*"])
def test_without_a_configured_base_links_follow_the_request_then_host_and_port():
    assert request_context.public_url("/p/acme/magic/x/") == "http://127.0.0.1:8101/p/acme/magic/x/"
    request = RequestFactory().get("/", HTTP_HOST="localhost:8202")
    request_context.bind(request)
    try:
        assert request_context.public_url("/p/acme/magic/x/") == "http://localhost:8202/p/acme/magic/x/"
    finally:
        request_context.reset()


@override_settings(PUBLIC_BASE_URL="https://console.example.com", ALLOWED_HOSTS=["*"])
def test_a_configured_base_wins_over_the_request():
    request_context.bind(RequestFactory().get("/", HTTP_HOST="evil.example"))
    try:
        assert request_context.public_url("/x/") == "https://console.example.com/x/"
    finally:
        request_context.reset()
