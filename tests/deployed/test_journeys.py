"""The deployed tier's journeys: real HTTP to gunicorn (two workers) with the mail worker beside it.

Between steps gunicorn gets SIGHUP (a graceful restart): the first request of each step is served
by a worker that has never answered before, which is how a fresh worker's 500 on every portal
sign-in reached production while the in-process suite stayed green.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from django_otp.oath import totp

from core.redaction import redact_tokens
from tests.deployed import conftest as deployed
from tests.deployed.helpers import submit

pytestmark = pytest.mark.deployed

ROOT = Path(__file__).resolve().parents[2]
INVITED_EMAIL = "bob@deployed.test"
INVITED_PASSWORD = "bob-chosen-passphrase-31"
RECOVERED_PASSWORD = "bob-recovered-passphrase-58"


def totp_code(instance) -> str:
    key = bytes.fromhex(instance.env["DEPLOYED_TOTP_KEY"])
    return f"{totp(key, step=30, t0=0, digits=6):06d}"


def assert_account_page(response, email: str) -> None:
    assert response.status_code == 200, (response.url, response.status_code, response.text[:500])
    assert response.url.path == f"/p/{deployed.TENANT}/account/", response.url
    assert re.search(r'id="profile-email">\s*' + re.escape(email), response.text), response.text[:2000]


def step_healthz(instance) -> None:
    with instance.client() as browser:
        response = browser.get("/healthz")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "database": "ok"}


def step_portal_sign_in(instance) -> None:
    with instance.client() as browser:
        # The sign-in page was open in the browser while the servers restarted...
        page = browser.get(f"/p/{deployed.TENANT}/login/")
        assert page.status_code == 200
        instance.restart_web()
        # ...so the sign-in itself is the very first request the new workers get.
        first = len(instance.responses)
        response = submit(browser, page, having="password", email=deployed.APP_USER_EMAIL,
                          password=deployed.APP_USER_PASSWORD)
        assert instance.responses[first][1:3] == ("POST", f"/p/{deployed.TENANT}/login/")
        assert_account_page(response, deployed.APP_USER_EMAIL)


def step_console_sign_in(instance, browser) -> None:
    page = browser.get("/login/")
    assert page.status_code == 200
    # Production serves fingerprinted static files through whitenoise (collectstatic ran).
    for href in re.findall(r'href="(/static/[^"]+\.css)"', page.text):
        asset = browser.get(href)
        assert asset.status_code == 200, href
    verify = submit(browser, page, having="password", email=deployed.ADMIN_EMAIL,
                    password=deployed.ADMIN_PASSWORD)
    assert verify.status_code == 200 and verify.url.path == "/login/verify/", (verify.url, verify.text[:500])
    home = submit(browser, verify, having="code", code=totp_code(instance))
    assert home.status_code == 200, home.text[:500]
    assert not home.url.path.startswith("/login"), home.url
    assert 'action="/logout/"' in home.text


def step_users_and_invite(instance, browser) -> None:
    users = browser.get(f"/t/{deployed.TENANT}/users/")
    assert users.status_code == 200, users.text[:500]
    assert deployed.APP_USER_EMAIL in users.text
    invite = browser.get(f"/t/{deployed.TENANT}/users/invite/")
    assert invite.status_code == 200
    detail = submit(browser, invite, having="email", email=INVITED_EMAIL, name="Bob")
    assert detail.status_code == 200, detail.text[:500]
    assert f"Invitation sent to {INVITED_EMAIL}" in detail.text, detail.text[:2000]


def step_accept_invitation(instance) -> None:
    link = instance.wait_for_link(to=INVITED_EMAIL, containing=f"/p/{deployed.TENANT}/accept/")
    assert link.startswith(instance.base_url + "/"), link
    with instance.client() as browser:
        page = browser.get(link)
        assert page.status_code == 200, page.text[:500]
        response = submit(browser, page, having="password1", password1=INVITED_PASSWORD,
                          password2=INVITED_PASSWORD)
        assert_account_page(response, INVITED_EMAIL)


def _request_link(instance, browser, kind: str, email: str) -> str:
    page = browser.get(f"/p/{deployed.TENANT}/{kind}/")
    assert page.status_code == 200
    sent = submit(browser, page, having="email", email=email)
    assert sent.status_code == 200 and sent.url.path == f"/p/{deployed.TENANT}/{kind}/sent/", sent.url
    return instance.wait_for_link(to=email, containing=f"/p/{deployed.TENANT}/{kind}/")


def step_recovery(instance) -> None:
    with instance.client() as browser:
        link = _request_link(instance, browser, "recover", INVITED_EMAIL)
        page = browser.get(link)
        assert page.status_code == 200, page.text[:500]
        response = submit(browser, page, having="password1", password1=RECOVERED_PASSWORD,
                          password2=RECOVERED_PASSWORD)
        assert_account_page(response, INVITED_EMAIL)


def step_magic_link(instance) -> None:
    # Recovery and magic-link requests share one per-account limit: another account asks here.
    with instance.client() as browser:
        link = _request_link(instance, browser, "magic", deployed.APP_USER_EMAIL)
        page = browser.get(link)
        assert page.status_code == 200, page.text[:500]
        response = submit(browser, page, having="csrfmiddlewaretoken")
        assert_account_page(response, deployed.APP_USER_EMAIL)


def test_deployed_journeys(instance):
    """Every journey in order, a graceful restart of gunicorn before each; no 5xx, no traceback."""
    steps: list[tuple[str, float]] = []
    first = len(instance.responses)  # the instance is shared: other tests' answers came before

    def run(name, fn, *args, restart=True):
        if restart:
            instance.restart_web()
        started = time.monotonic()
        fn(instance, *args)
        steps.append((name, time.monotonic() - started))

    run("healthz", step_healthz, restart=False)
    run("portal sign-in, the first request of new workers", step_portal_sign_in, restart=False)
    with instance.client() as console:
        run("console sign-in, password + TOTP", step_console_sign_in, console)
        run("users list, invite a user", step_users_and_invite, console)
    run("accept the invitation from its mail", step_accept_invitation)
    run("recovery link from its mail", step_recovery)
    run("magic link from its mail", step_magic_link)
    instance.assert_running()

    # gunicorn's access log holds what the clients saw, answer for answer. A worker writes its
    # line just after the answer went out: on a loaded machine the last lines may still be on
    # their way when the client is done, so wait for them (bounded).
    # Other tests of the session (the API clients, the webhooks) were served by the same
    # instance: this test compares the answers it got with the log lines of its request ids.
    # Link tokens never reach the log (core.redaction, through config.gunicorn_logger).
    # Answers without a request id (static files, served before the middleware) are matched
    # as a multiset of the log's lines without one.
    ours = [(status, method, redact_tokens(path), rid) for status, method, path, rid in instance.responses[first:]]
    with_id = sorted(r for r in ours if r[3] != "-")
    without_id = Counter(r for r in ours if r[3] == "-")
    ids = {r[3] for r in with_id}

    def served_ours():
        lines = [line[1:] for line in instance.access_log()]
        return sorted(line for line in lines if line[3] in ids), Counter(line for line in lines if line[3] == "-")

    deadline = time.monotonic() + 15
    served, served_without_id = served_ours()
    while (len(served) < len(with_id) or without_id - served_without_id) and time.monotonic() < deadline:
        time.sleep(0.2)
        served, served_without_id = served_ours()
    assert served == with_id
    assert not without_id - served_without_id, without_id - served_without_id
    log = instance.log("web")
    for _, _, path, _ in instance.responses:  # and no live token anywhere in the log
        if path != redact_tokens(path):
            assert path not in log, path
    served = instance.access_log()
    # After each restart the first request went to one of the new workers (by its request id).
    worker_of = {rid: pid for pid, *_, rid in served if rid != "-"}
    for index, new_workers in instance.restarts:
        status, method, path, rid = instance.responses[index]
        assert worker_of[rid] in new_workers, (method, path, worker_of[rid], new_workers)
    server_errors = [r for r in instance.responses if r[0] >= 500]
    tracebacks = {name: instance.log(name).count("Traceback") for name in instance.procs}
    restarts = [seconds for name, seconds in instance.timings if name == "gunicorn SIGHUP"]
    deployed.SUMMARY[:] = [
        f"{instance.database}: {len(instance.responses)} HTTP answers, {len(server_errors)} 5xx; "
        f"{len(instance.restarts)} graceful restarts (SIGHUP, {sum(restarts) / len(restarts):.1f}s each); "
        f"tracebacks in the logs: {tracebacks}",
        "  " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in instance.timings if name != "gunicorn SIGHUP"),
        *(f"  {name}: {seconds:.1f}s" for name, seconds in steps),
    ]
    assert not server_errors, server_errors
    assert not any(tracebacks.values()), {name: instance.log(name)[-4000:] for name, n in tracebacks.items() if n}


def _process_names(procfile: str) -> set[str]:
    return {
        line.split(":", 1)[0].strip()
        for line in (ROOT / procfile).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


def test_procfiles_and_this_tier_run_the_same_processes():
    """What production runs (Procfile), what `make run` runs (Procfile.dev) and what this tier
    runs are one set: a new worker in one of them must be added to the others."""
    assert _process_names("Procfile") == {"web", *deployed.SERVICES}
    assert _process_names("Procfile.dev") == _process_names("Procfile")
