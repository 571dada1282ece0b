"""Issue 11, finding 5: no URL holding a live token is ever written to a log."""

from __future__ import annotations

import io
import logging
import secrets
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from core.policy import policy
from core.redaction import REMOVED, TokenMaskFilter, redact_tokens


def _token() -> str:
    return secrets.token_urlsafe(policy().token_bytes)


def _token_routes(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    """The names of every URL pattern that takes a ``token``, wherever it is mounted."""
    resolver = resolver or get_resolver()
    names = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            names += _token_routes(entry, ns)
        elif isinstance(entry, URLPattern) and "token" in entry.pattern.converters and entry.name:
            names.append(prefix + entry.name)
    return names


def test_every_route_with_a_token_is_masked():
    routes = _token_routes()
    assert {"portal:accept", "portal:recover", "portal:magic", "console:staff-accept"} <= set(routes)
    for name in routes:
        raw = _token()
        args = ["acme", raw] if name.startswith("portal:") else [raw]
        try:
            path = reverse(name, args=args)
        except Exception:  # noqa: BLE001 - a route with other arguments: the token alone
            path = reverse(name, kwargs={"token": raw})
        line = f'Method Not Allowed (HEAD): {path} "GET {path}?token={raw} HTTP/1.1"'
        masked = redact_tokens(line)
        assert raw not in masked, name
        assert REMOVED in masked


def test_ids_and_slugs_are_left_alone():
    path = "/t/my-long-tenant-slug/users/0b7e6a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b/sessions/"
    assert redact_tokens(path) == path


def _configured_handler(logger_name: str) -> logging.Handler:
    logger = logging.getLogger(logger_name)
    while logger is not None:
        for handler in logger.handlers:
            if any(isinstance(f, TokenMaskFilter) for f in handler.filters):
                return handler
        logger = logger.parent if logger.propagate else None
    raise AssertionError(f"no handler of {logger_name} masks tokens")


@pytest.mark.django_db
def test_django_request_lines_are_masked(client, make_tenant):
    """A 400 on a link page is logged by django.request with its path: masked."""
    make_tenant("acme")
    handler = _configured_handler("django.request")
    stream = io.StringIO()
    old = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        raw = _token()
        assert client.get(f"/p/acme/recover/{raw}/").status_code == 400
        logging.getLogger("django.request").warning("Method Not Allowed (HEAD): %s", f"/p/acme/magic/{raw}/")
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
    written = stream.getvalue()
    assert "Bad Request: /p/acme/recover/[removed]/" in written
    assert "Method Not Allowed (HEAD): /p/acme/magic/[removed]/" in written
    assert raw not in written


def test_runserver_request_lines_are_masked():
    handler = _configured_handler("django.server")
    stream = io.StringIO()
    old = handler.setStream(stream)  # type: ignore[attr-defined]
    raw = _token()
    try:
        logging.getLogger("django.server").info(
            '"%s" %s %s', f"GET /p/acme/accept/{raw}/ HTTP/1.1", 200, 1234,
            extra={"status_code": 200, "server_time": "01/Dec/2026 17:00:00"},
        )
    finally:
        handler.setStream(old)  # type: ignore[attr-defined]
    written = stream.getvalue()
    assert "/p/acme/accept/[removed]/" in written and raw not in written


def test_gunicorn_access_log_atoms_are_masked():
    from gunicorn.config import Config

    from config.gunicorn_logger import TokenMaskingLogger

    raw = _token()

    class Response:
        status = "200 OK"
        headers = [("Content-Type", "text/html")]
        sent = 10

    class Request:
        headers = [("REFERER", f"http://x.test/p/acme/recover/{raw}/")]

    environ = {
        "REQUEST_METHOD": "HEAD", "RAW_URI": f"/p/acme/recover/{raw}/?token={raw}",
        "PATH_INFO": f"/p/acme/recover/{raw}/", "QUERY_STRING": f"token={raw}",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_REFERER": f"http://x.test/p/acme/magic/{raw}/",
        "REMOTE_ADDR": "127.0.0.1",
    }
    logger = TokenMaskingLogger(Config())
    atoms = logger.atoms(Response(), Request(), environ, timedelta(milliseconds=3))
    assert raw not in repr(atoms)
    assert atoms["U"] == "/p/acme/recover/[removed]/"
    assert atoms["r"] == "HEAD /p/acme/recover/[removed]/?token=[removed] HTTP/1.1"
