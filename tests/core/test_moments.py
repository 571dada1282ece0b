from datetime import UTC, datetime

from django.utils import timezone

from core.moments import query_moment
from core.templatetags.when import absolute


def test_query_moment_is_utc_and_refuses_what_is_off_the_calendar():
    assert query_moment("2026-03-01T10:00:00+02:00") == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert query_moment("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    for raw in ("", None, "yesterday", "2026-13-01T00:00:00", "9999-12-31T23:59:59-12:00", "x" * 400):
        assert query_moment(raw) is None, raw


def test_a_time_with_no_local_form_is_shown_not_an_error():
    edge = datetime.fromisoformat("9999-12-31T23:59:59-12:00")
    with timezone.override("Asia/Tokyo"):
        assert absolute(edge) == "no end date"
