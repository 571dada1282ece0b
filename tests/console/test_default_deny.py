"""Every console URL refuses a session that passed the password but not TOTP.

The test walks every URL pattern, so a new page cannot forget the check: the middleware
(console.middleware.require_verified_staff) is default-deny, and only the views of signing
in are marked public. The list of public views is pinned here too.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from console.middleware import PUBLIC_PREFIXES
from core.api_paths import is_api_path
from tests.accounts.helpers import enrol, sign_in_password

PUBLIC_VIEW_NAMES = {"setup", "login", "login-verify", "login-enroll", "logout", "staff-accept"}
CONVERTER_RE = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _walk(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + _source(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + _source(p.pattern), p


def _source(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        return str(pattern._route)
    assert isinstance(pattern, RegexPattern)
    regex = pattern._regex.lstrip("^").rstrip("$").replace("\\Z", "")

    def group(m: re.Match) -> str:
        return "<regex:" + m.group(1) + ":" + m.group(2).split("|")[0] + ">"

    return re.sub(r"\(\?P<(\w+)>([^)]*)\)", group, regex)


def _fill(route: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        conv = m.group("conv") or "str"
        name = m.group("name")
        if conv.startswith("regex"):
            return name.split(":", 1)[1]
        return values.get(conv, values["str"]) if name not in values else values[name]

    return "/" + CONVERTER_RE.sub(one, route)


@pytest.fixture
def half_signed_in(client, staff_factory, make_tenant):
    tenant = make_tenant("acme")
    user = staff_factory("half@console.test", superuser=True, tenants={tenant: "admin"})
    enrol(user)
    response = sign_in_password(client, user.email)
    assert response["Location"] == "/login/verify/"
    return client, user, tenant


def test_no_console_url_answers_200_before_totp(half_signed_in):
    client, user, tenant = half_signed_in
    values = {"slug": tenant.slug, "uuid": str(user.pk), "int": "1", "str": "x", "path": "x"}
    checked = []
    for route, pattern in _walk(get_resolver().url_patterns):
        path = _fill(route, values)
        if path.startswith(PUBLIC_PREFIXES) or pattern.name in PUBLIC_VIEW_NAMES or is_api_path(path):
            continue  # API paths take keys, never sessions: tests/api/test_api_paths.py walks them
        for method in ("get", "post"):
            for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
                response = getattr(client, method)(path, **headers)
                assert response.status_code != 200 or response.get("HX-Redirect"), (method, path)
                assert response.status_code < 500, (method, path)
                if headers:
                    assert response["HX-Redirect"] == "/login/verify/", path
                    assert response.content == b"", path
                else:
                    assert response.status_code == 302, (method, path)
                    assert response["Location"] == "/login/verify/", (method, path)
        checked.append(path)
    assert len(checked) > 20
    assert "/" in checked and "/staff/" in checked and "/admin/" in checked
    assert f"/t/{tenant.slug}/admins/" in checked


def test_only_the_sign_in_views_are_public():
    public = {
        pattern.name or route
        for route, pattern in _walk(get_resolver().url_patterns)
        if getattr(pattern.callback, "staff_public", False)
    }
    assert public == PUBLIC_VIEW_NAMES


def test_an_over_long_address_still_leads_to_the_sign_in_page(client, staff_factory):
    staff_factory(superuser=True)  # setup is done
    response = client.get("/t/acme/users/?q=" + "x" * 20_000)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=") and len(response["Location"]) < 2100
