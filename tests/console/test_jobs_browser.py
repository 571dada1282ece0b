"""The batch-job journey in a browser: "all matching" ban of a few thousand users, the frozen
preview, the progress page moving by itself (htmx polling) to done, the outcome CSV, undo. The
job's chunks are worked in this process, as a worker would, while the page watches."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import AppUser
from batchjobs import engine
from batchjobs.models import Job
from tenants import db as tenant_db
from tests.accounts.app_user_data import make_users
from tests.conftest import login_verified
from tests.console.test_users_browser import browser_page  # noqa: F401  (the fixture)

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SPAM = 3_000


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"jobs-{name}.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_all_matching_ban_job_progress_csv_and_undo(live_server, browser_page, make_tenant, staff_factory,  # noqa: F811
                                                    settings):
    settings.JOBS_CHUNK_SIZE = 500
    context, page, console_errors = browser_page
    acme = make_tenant("acme", name="Acme Corp")
    make_users(acme, SPAM, prefix="spam", domain="wave.test")
    make_users(acme, 40, prefix="customer", domain="shop.test")
    root = staff_factory("root@console.test", superuser=True, name="Root")
    cookie = login_verified(Client(), root).cookies["adminpanel_session"].value
    context.add_cookies([{"name": "adminpanel_session", "value": cookie, "url": live_server.url}])
    base = live_server.url
    alias = tenant_db.using(acme)

    # Every user matching the search, not only the page: options, then the frozen preview.
    page.goto(base + "/t/acme/users/?q=wave.test")
    page.check("[data-select-page]")  # the batch bar shows once something is selected
    page.select_option("#batch-scope", "all")
    page.select_option("#batch-action", "ban")
    page.click("#batch-apply")
    page.wait_for_selector("#batch-preview")
    page.select_option("#ban-duration", "7d")
    page.fill("#ban-reason", "Spam wave")
    page.click("#batch-preview")
    page.wait_for_selector("#job-start")
    assert "Ban 3,000 users?" in page.locator("h1").inner_text()
    assert page.locator("[data-sample]").count() == 10
    shot(page, "01-preview")
    page.click("#job-start")  # too many for the request: queued for the workers
    page.wait_for_selector("#job-progress[data-job-state=queued]")
    job = Job.objects.get(action="ban")
    assert AppUser.objects.using(alias).filter(banned_until__isnull=False).count() == 0

    # The page follows the work by itself.
    engine.run(job.pk, worker_id="browser-test", max_chunks=2)
    page.wait_for_selector("[data-processed]:has-text('1,000')", timeout=15_000)
    assert "running" in page.locator("#job-state").inner_text()
    shot(page, "02-progress")
    engine.run(job.pk, worker_id="browser-test")
    page.wait_for_selector("#job-progress[data-job-state=done]", timeout=15_000)
    page.wait_for_selector("#job-undo")
    assert page.locator("[data-processed]").inner_text() == "3,000"
    assert AppUser.objects.using(alias).filter(banned_until__isnull=False).count() == SPAM
    shot(page, "03-done")

    # The outcomes as CSV: every target, each done once.
    with page.expect_download() as download:
        page.click("#job-csv")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(rows) == SPAM + 1 and {r[4] for r in rows[1:]} == {"done"}
    assert len({r[3] for r in rows[1:]}) == SPAM

    # Undo: another job puts every user back as they were.
    page.click("#job-undo")
    page.wait_for_selector("#job-progress")
    undo = Job.objects.get(undo_of=job)
    engine.run(undo.pk, worker_id="browser-test")
    page.wait_for_selector("#job-progress[data-job-state=done]", timeout=15_000)
    assert page.locator("[data-processed]").inner_text() == "3,000"
    assert AppUser.objects.using(alias).filter(banned_until__isnull=False).count() == 0
    shot(page, "04-undone")
    page.goto(base + f"/t/acme/jobs/{job.pk}/")
    assert page.locator("#job-undone").count() == 1
    page.goto(base + "/t/acme/jobs/")
    assert page.locator("#jobs-table tbody tr").count() == 2
    assert not console_errors, console_errors
