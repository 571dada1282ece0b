from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import BANNED_FOREVER, AppUser
from console.templatetags.app_user_tags import status_badge, user_rows

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def make(**kwargs) -> AppUser:
    defaults = {"email": "ann@acme.test", "name": "Ann", "role": "user", "created_at": NOW - timedelta(days=3),
                "email_confirmed_at": NOW - timedelta(days=3)}
    return AppUser(**{**defaults, **kwargs})


def test_rows_escape_every_user_supplied_value():
    evil = make(email='x"><script>alert(1)</script>@a.test', name="<b>Bob</b>", role="us<er",
                banned_until=NOW + timedelta(hours=2), ban_reason='"><img src=x>')
    html = str(user_rows([evil], slug="acme", selectable=True, now=NOW))
    assert "<script>" not in html and "<b>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;Bob&lt;/b&gt;" in html
    assert 'name="ids"' in html and f'href="/t/acme/users/{evil.pk}/"' in html


def test_rows_show_status_mfa_sign_in_and_created():
    user = make(mfa_enabled=True, last_sign_in_at=NOW - timedelta(days=2, hours=3))
    html = str(user_rows([user], slug="acme", selectable=False, now=NOW))
    assert 'name="ids"' not in html
    assert "badge-success" in html and "✓ On" in html
    assert "2 days ago" in html and ">Nov 17</time>" in html  # the year only when it is not this one


def test_status_badges():
    assert "Active" in status_badge(make())
    assert "Invited" in status_badge(make(email_confirmed_at=None, invited_at=NOW))
    assert "Unconfirmed" in status_badge(make(email_confirmed_at=None, password="x"))
    assert "Banned indefinitely" in status_badge(make(banned_until=BANNED_FOREVER))
    until = datetime.now(UTC) + timedelta(days=1)
    assert f"Banned until {until:%b} {until.day}, {until:%H:%M}" in status_badge(make(banned_until=until))
    assert "Deleted" in status_badge(make(deleted_at=NOW))


def test_deleted_rows_say_so_instead_of_the_placeholder_address():
    html = str(user_rows([make(email="deleted-abc@deleted.invalid", deleted_at=NOW)], slug="acme",
                         selectable=False, now=NOW))
    assert ">Deleted user</a>" in html and 'title="deleted-abc@deleted.invalid"' in html


def test_each_row_can_copy_its_id():
    user = make()
    html = str(user_rows([user], slug="acme", selectable=False, now=NOW))
    assert f'data-copy="{user.pk}"' in html and "Copy id" in html


@pytest.mark.parametrize("selected", ["b", 50, "", None])
def test_select_options_is_the_markup_of_the_loop_it_replaces(selected):
    from django.template import engines
    from django.utils.translation import gettext_lazy

    choices = [("", "Any"), ("a", "A & <b>"), ("b", gettext_lazy("Bee")), (25, "25"), (50, "50 rows")]
    loop = ('{% for value, label in choices %}<option value="{{ value }}"{% if selected == value %} selected'
            '{% endif %}>{{ label }}</option>{% endfor %}')
    tag = "{% load app_user_tags %}{% select_options choices selected %}"
    render = lambda source: engines["django"].from_string(source).render({"choices": choices, "selected": selected})  # noqa: E731
    assert render(tag) == render(loop)
