"""The ``{% url %}`` builtin that remembers its answers (core.templatetags.urls): the same output as
Django's tag, for every script prefix and URLconf, and nothing remembered that could change."""

from __future__ import annotations

import uuid

import pytest
from django.template import engines
from django.urls import NoReverseMatch, reverse, set_script_prefix

from core.templatetags import urls


def _render(source: str, **context) -> str:
    return engines["django"].from_string(source).render(context)


def test_the_tag_is_the_cached_one_and_answers_as_reverse_does():
    pk = uuid.uuid4()
    out = _render("{% url 'console:users-detail' slug pk %}|{% url 'console:home' %}", slug="acme", pk=pk)
    assert out == f"{reverse('console:users-detail', args=['acme', pk])}|{reverse('console:home')}"
    before = urls._reverse.cache_info().hits
    _render("{% url 'console:users-detail' slug pk %}", slug="acme", pk=pk)
    assert urls._reverse.cache_info().hits == before + 1


def test_the_script_prefix_is_part_of_the_answer():
    try:
        set_script_prefix("/a/")
        first = _render("{% url 'console:home' %}")
        set_script_prefix("/b/")
        second = _render("{% url 'console:home' %}")
    finally:
        set_script_prefix("/")
    assert (first, second) == ("/a/", "/b/")


def test_unknown_names_still_fail_and_as_var_still_swallows():
    with pytest.raises(NoReverseMatch):
        _render("{% url 'console:no-such-page' %}")
    assert _render("{% url 'console:no-such-page' as u %}[{{ u }}]") == "[]"


def test_values_whose_text_can_change_are_never_remembered():
    class Renamed:  # equal to itself whatever its text: must be reversed each time
        text = "one"

        def __str__(self) -> str:
            return self.text

    arg = Renamed()
    assert _render("{% url 'console:users-list' arg %}", arg=arg) == "/t/one/users/"
    arg.text = "two"
    assert _render("{% url 'console:users-list' arg %}", arg=arg) == "/t/two/users/"

