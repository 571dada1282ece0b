"""The hostile-input walk of tests/console/test_no_server_errors.py (its module docstring says
what it sends and checks), run in parts (every PARTS-th route) that a test run can spread over
processes: the whole walk is the suite's longest test."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.console.test_no_server_errors import PARTS, Walk, _actors, _restore, _routes, _walk_one


@pytest.mark.parametrize("part", range(PARTS))
def test_no_input_gives_a_server_error_or_unescaped_output(world, quiet_refusals, part):
    routes = _routes()[part::PARTS]
    actors = _actors(world)
    walk = Walk()
    for route in routes:
        portal = route.route.startswith("p/")
        for actor in actors:
            if actor.portal_only and not portal:
                continue
            _restore(world)
            actor.sign_in()
            _walk_one(walk, world, actor, route)
    assert walk.requests > (1000 if connection.vendor == "sqlite" else 3000) // PARTS, walk.requests
    assert not walk.failures, (
        f"{len(walk.failures)} problem(s) in {walk.requests} requests:\n\n" + "\n\n".join(walk.failures.values())
    )
