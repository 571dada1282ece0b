"""The one CSV-safety rule: spreadsheets run a cell that starts with = + - @ TAB or CR as a
formula (OWASP "CSV injection"). Exports quote such cells; imports refuse them."""

from __future__ import annotations

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def starts_formula(text: str) -> bool:
    """Whether a spreadsheet would run ``text`` (leading spaces are skipped by spreadsheets)."""
    return text.lstrip(" ").startswith(FORMULA_PREFIXES)


def safe_cell(value: Any) -> str:
    """``value`` as a cell a spreadsheet shows as text."""
    text = "" if value is None else str(value)
    return "'" + text if starts_formula(text) else text
