"""``{% url %}`` with its answers remembered (a builtin: it stands in for Django's tag everywhere).

Reversing is a function of the URL name, its arguments, the current app, the URLconf and the script
prefix alone, and costs about 60 µs; a console page reverses some sixty links (the header's and the
tenant menu's twice over), a quarter of the users page's own time. Same syntax, same output, same
errors: only the answer of a call already made is reused (a bounded cache, per process).
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from django import template
from django.conf import settings
from django.template import defaulttags
from django.template.base import Parser, Token
from django.template.context import Context
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

register = template.Library()


@lru_cache(maxsize=4096)
def _reverse(view_name: str, args: tuple, kwargs: tuple, current_app: str | None, urlconf: Any,
             root_urlconf: str, script_prefix: str) -> str:
    # The last two take no part in the call: they are in the key (reverse reads them itself).
    return reverse(view_name, args=args, kwargs=dict(kwargs), current_app=current_app, urlconf=urlconf)


# Values whose text is a function of their equality (a model instance is equal to its renamed
# self, a lazy string changes with the language): only those make a call remembered.
_PLAIN = (str, SafeString, int, uuid.UUID)


def cached_reverse(view_name: str, args: list, kwargs: dict, current_app: str | None) -> str:
    values = [*args, *kwargs.values()]
    if type(view_name) not in _PLAIN or not all(type(v) in _PLAIN for v in values):
        return reverse(view_name, args=args, kwargs=kwargs, current_app=current_app)
    return _reverse(view_name, tuple(args), tuple(sorted(kwargs.items())), current_app, get_urlconf(),
                    str(settings.ROOT_URLCONF), get_script_prefix())


class CachedURLNode(defaulttags.URLNode):
    def render(self, context: Context) -> str:
        args = [arg.resolve(context) for arg in self.args]
        kwargs = {k: v.resolve(context) for k, v in self.kwargs.items()}
        view_name = self.view_name.resolve(context)
        try:
            current_app = context.request.current_app  # type: ignore[attr-defined]
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace  # type: ignore[attr-defined]
            except AttributeError:
                current_app = None
        url = ""
        try:
            url = cached_reverse(view_name, args, kwargs, current_app)
        except NoReverseMatch:
            if self.asvar is None:
                raise
        if self.asvar:
            context[self.asvar] = url
            return ""
        return conditional_escape(url) if context.autoescape else url


@register.tag
def url(parser: Parser, token: Token) -> CachedURLNode:
    node = defaulttags.url(parser, token)
    return CachedURLNode(node.view_name, node.args, node.kwargs, node.asvar)
