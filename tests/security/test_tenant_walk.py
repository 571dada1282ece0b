"""Issue 11's figures kept as tests: every console URL of a tenant, walked.

1. Under another tenant's slug, or with another tenant's ids, every pattern answers 404 or 405
   for every method, and the other tenant's tables (every tenant table, row for row and column
   for column) and the control plane stay exactly as they were.
2. The role matrix, checked in the database: every POST a support or viewer member may not make
   (``core.access.MATRIX`` says no to the view's action) is refused and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from core.access import role_can
from core.api_paths import is_api_path
from tenants import db as tenant_db
from tenants.router import tenant_model_labels
from tests.accounts.app_user_data import make_factor, make_session, make_user
from tests.conftest import login_verified

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
# Control tables a refused request may write: the trail of the refusal (and its chain head, its
# figures refresh task), sessions, lockout counters.
CONTROL_SKIPPED = {"audit", "sessions", "axes", "django_tasks_database"}
CONTROL_SKIPPED_MODELS = {"tenants.tenantfigures", "jobs.workerbeat"}
# A form that would pass each action's own checks, so the id (not a missing field) is refused.
def _body(ids: dict[str, str], slug: str) -> dict[str, Any]:
    return {"confirm": "1", "reason": "testing the walk", "duration": "24h", "mode": "soft",
            "role": "admin", "email": f"x@{slug}.test", "name": "X", "ids": [ids[slug]],
            "action": "ban", "scope": "selected"}


CONVERTER = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _walk(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if isinstance(p.pattern, RoutePattern):
                yield from _walk(p.url_patterns, prefix + str(p.pattern._route))
        elif isinstance(p, URLPattern) and isinstance(p.pattern, RoutePattern):
            yield prefix + str(p.pattern._route), p


def _tenant_routes():
    """(route, pattern) of every console page of a tenant: ``t/<slug:slug>/...`` (the API
    under it takes keys, not sessions: tests/api walks it)."""
    routes = []
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("t/<slug:slug>/") and not is_api_path("/" + route.replace("<slug:slug>", "x")):
            routes.append((route, pattern))
    return routes


def _fill(route: str, slug: str, ids: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        conv, name = m.group("conv") or "str", m.group("name")
        if name == "slug":
            return slug
        if conv == "uuid":
            return ids.get(name, ids["uuid"])
        if conv == "int":
            return "1"
        return ids.get(name, "x")

    return "/" + CONVERTER.sub(one, route)


def _tenant_snapshot(tenant) -> dict[str, list[Any]]:
    alias = tenant_db.using(tenant)
    return {
        label: list(apps.get_model(label)._default_manager.using(alias).order_by("pk").values_list())
        for label in sorted(tenant_model_labels())
    }


def _control_snapshot() -> dict[str, list[Any]]:
    labels = tenant_model_labels()
    snapshot = {}
    for model in apps.get_models():
        meta = model._meta
        if (meta.label_lower in labels or meta.proxy or not meta.managed
                or meta.app_label in CONTROL_SKIPPED or meta.label_lower in CONTROL_SKIPPED_MODELS):
            continue
        snapshot[meta.label_lower] = list(model._default_manager.using("default").order_by("pk").values_list())
    return snapshot


def _changed(before: dict, after: dict) -> list[str]:
    return [label for label in before if before[label] != after[label]]


@pytest.fixture
def two_tenants(make_tenant, staff_factory):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    ids = {}
    for tenant in (acme, globex):
        user = make_user(tenant, f"target@{tenant.slug}.test")
        make_session(tenant, user)
        make_factor(tenant, user)
        ids[tenant.slug] = str(user.pk)
    return acme, globex, ids


@pytest.mark.postgres  # tenant isolation is proved where it is deployed (and the walk runs once)
def test_another_tenants_slug_and_ids_answer_404_or_405_and_change_nothing(two_tenants, staff_factory):
    acme, globex, ids = two_tenants
    boss = staff_factory("boss@acme.test", tenants={acme: "admin"})
    client = login_verified(Client(), boss)
    routes = _tenant_routes()
    assert len(routes) > 40
    tenant_before, control_before = _tenant_snapshot(globex), _control_snapshot()
    answers: dict[int, int] = {}
    walked = 0
    for route, _ in routes:
        # Under globex's slug with globex's ids; under acme's slug with globex's ids.
        paths = [_fill(route, "globex", {"uuid": ids["globex"]})]
        if "<uuid:" in route:
            paths.append(_fill(route, "acme", {"uuid": ids["globex"]}))
        for path in paths:
            for method in METHODS:
                # htmx asks with GET and POST only; the other methods are refused before any gate.
                variants = ({}, {"HTTP_HX_REQUEST": "true"}) if method in ("get", "post") else ({},)
                for headers in variants:
                    data = _body(ids, "globex") if method == "post" else None
                    response = getattr(client, method)(path, data, **headers)
                    answers[response.status_code] = answers.get(response.status_code, 0) + 1
                    assert response.status_code in (404, 405), (method.upper(), path, response.status_code)
                    walked += 1
    assert set(answers) <= {404, 405} and walked > 400
    assert _changed(tenant_before, _tenant_snapshot(globex)) == []
    assert _changed(control_before, _control_snapshot()) == []


@pytest.mark.parametrize("role", ["support", "viewer"])
def test_every_post_the_role_matrix_refuses_changes_nothing(two_tenants, staff_factory, role):
    acme, _, ids = two_tenants
    member = staff_factory(f"{role}@acme.test", tenants={acme: role})
    client = login_verified(Client(), member)
    refused = []
    for route, pattern in _tenant_routes():
        action = pattern.callback.__dict__.get("tenant_action")
        if action is None or role_can(role, action):
            continue
        refused.append((_fill(route, "acme", {"uuid": ids["acme"]}), action))
    assert len(refused) >= 15
    tenant_before, control_before = _tenant_snapshot(acme), _control_snapshot()
    for path, action in refused:
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(path, _body(ids, "acme"), **headers)
            assert response.status_code in (403, 404, 405), (path, action, response.status_code)
    assert _changed(tenant_before, _tenant_snapshot(acme)) == []
    assert _changed(control_before, _control_snapshot()) == []
    print(f"\n{role}: {len(refused)} refused POST routes x 2, nothing changed")
