"""The old error classes are gone for good: no module of the app defines a class of those names,
and the app-user and portal services raise only the family of ``core.errors`` (no Django
``ValidationError``/``PermissionDenied``, no ``Model.DoesNotExist``, no exception class of their
own). An AST scan: comments and strings do not count, aliases (``as DjangoValidationError``) do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("config", "console", "portal", "accounts", "tenants", "audit", "outbox", "core")
OLD_CLASSES = frozenset({
    "AppUserError", "AppUserNotFound", "ActionRefused", "BatchTooLarge", "PortalRefused",
    "SessionRefused", "TokenInvalid",
})
# The service modules of the app-user and portal side.
SERVICE_MODULES = (
    "accounts/app_users/services.py", "accounts/app_users/batches.py", "accounts/app_users/selectors.py",
    "accounts/app_users/csv_io.py", "accounts/app_users/permissions.py", "accounts/tokens.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "portal" / "services").glob("*.py")),
)
DJANGO_ERRORS = {
    ("django.core.exceptions", "ValidationError"), ("django.core.exceptions", "PermissionDenied"),
    ("django.forms", "ValidationError"),
}


def app_modules() -> list[Path]:
    return sorted(
        path for package in APP_PACKAGES for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_scan_sees_the_app():
    assert len(app_modules()) > 50 and all((ROOT / m).exists() for m in SERVICE_MODULES)
    assert "portal/services/auth.py" in SERVICE_MODULES


@pytest.mark.parametrize("path", app_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_defines_an_old_error_class(path):
    defined = {node.name for node in ast.walk(tree(path)) if isinstance(node, ast.ClassDef)}
    assert not defined & OLD_CLASSES, f"{path.relative_to(ROOT)} defines {sorted(defined & OLD_CLASSES)}"


def _django_error_names(module: ast.Module) -> tuple[set[str], set[str]]:
    """Local names bound to Django's ValidationError/PermissionDenied, and to their modules."""
    names, modules = set(), set()
    for node in ast.walk(module):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in DJANGO_ERRORS:
                    names.add(alias.asname or alias.name)
                if f"{node.module}.{alias.name}" in {"django.core.exceptions", "django.forms"}:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in {"django.core.exceptions", "django.forms"}:
                    modules.add(alias.asname or alias.name)
    return names, modules


def _raised(node: ast.Raise) -> ast.expr | None:
    exc = node.exc
    return exc.func if isinstance(exc, ast.Call) else exc


def _dotted(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return f"{_dotted(expr.value)}.{expr.attr}"
    return ""


def forbidden(module: ast.Module) -> list[str]:
    """What a service module must not do: raise a Django error or a ``DoesNotExist``, or
    define an exception class of its own."""
    names, modules = _django_error_names(module)
    wrong = []
    for node in ast.walk(module):
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = _dotted(_raised(node) or node.exc)
            head, _, attr = raised.rpartition(".")
            django_error = raised in names or (
                attr in {"ValidationError", "PermissionDenied"} and head.rpartition(".")[2] in modules
            )
            if django_error or raised.endswith(".DoesNotExist"):
                wrong.append(f"line {node.lineno}: raise {raised}")
        if isinstance(node, ast.ClassDef):
            bases = {_dotted(b).rpartition(".")[2] for b in node.bases}
            if bases & {"Exception", "ServiceError", "NotFound", "Refused", "Invalid", "Conflict", "ValueError"}:
                wrong.append(f"line {node.lineno}: class {node.name} (use the family with a code)")
    return wrong


@pytest.mark.parametrize("relative", SERVICE_MODULES)
def test_services_raise_only_the_error_family(relative):
    wrong = forbidden(tree(ROOT / relative))
    assert not wrong, f"{relative}: " + "; ".join(wrong)


def test_the_scan_catches_what_it_forbids():
    """The scan itself: aliased Django errors, module attributes, DoesNotExist, own classes."""
    source = (
        "from django.core.exceptions import ValidationError as VE\n"
        "from django.core import exceptions\n"
        "from core.errors import Refused\n"
        "class Mine(Refused):\n    pass\n"
        "def f():\n    raise VE('x')\n"
        "def g():\n    raise exceptions.PermissionDenied\n"
        "def h():\n    raise Thing.DoesNotExist()\n"
        "def ok():\n    raise Refused('fine', code='role')\n"
    )
    assert forbidden(ast.parse(source)) == [
        "line 4: class Mine (use the family with a code)", "line 7: raise VE",
        "line 9: raise exceptions.PermissionDenied", "line 11: raise Thing.DoesNotExist",
    ]
