"""``raises(Refused, "protected_user")``: the error family's class AND its stable code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.errors import ServiceError


@contextmanager
def raises(cls: type[ServiceError], code: str, *, match: str | None = None) -> Iterator[pytest.ExceptionInfo]:
    with pytest.raises(cls, match=match) as info:
        yield info
    assert info.value.code == code, f"expected code {code!r}, got {info.value.code!r}: {info.value}"
