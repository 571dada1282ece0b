"""Go's ``time.ParseDuration``, which GoTrue uses for ``ban_duration``: ``"24h"``, ``"1h30m"``,
``"300ms"``, ``"-1m"``, ``"0"``; no ``d`` unit; at most 2^63-1 nanoseconds."""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction

_UNITS = {
    "ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_NUMBER = re.compile(r"(\d*)(?:\.(\d*))?")
_UNIT = re.compile(r"[^\d.]+")
_MAX_NS = 2**63 - 1


def parse_go_duration(text: str) -> timedelta:
    """The duration ``text`` names, or ``ValueError`` with Go's own message."""
    original, s = text, text
    negative = False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return timedelta(0)
    if not s:
        raise ValueError(f'time: invalid duration "{original}"')
    total = Fraction(0)
    while s:
        number = _NUMBER.match(s)
        whole, frac = (number.group(1), number.group(2)) if number else ("", None)
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{original}"')
        s = s[number.end():] if number else s
        unit_match = _UNIT.match(s)
        if unit_match is None:
            raise ValueError(f'time: missing unit in duration "{original}"')
        unit = unit_match.group(0)
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
        s = s[unit_match.end():]
        value = Fraction(int(whole or "0"))
        if frac:
            value += Fraction(int(frac), 10 ** len(frac))
        total += value * _UNITS[unit]
        if total > _MAX_NS + (1 if negative else 0):
            raise ValueError(f'time: invalid duration "{original}"')
    micro = int(total) // 1000
    return timedelta(microseconds=-micro if negative else micro)
