"""The shape of the house, checked on the source: the layer contract, and one way to a tenant's
database (``tenants.db.using``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("config", "core", "console", "portal", "accounts", "tenants", "audit", "outbox",
           "benchmarks")
THE_DOOR = ROOT / "tenants" / "db.py"
ALIAS_START = "tenant:"
# Reading any of these outside tenants/db.py is a second door to a tenant alias.
PRIVATE_NAMES = frozenset({"db_alias", "ALIAS_PREFIX", "_alias_name", "ensure_alias"})


def test_imports_go_down_the_layers():
    run = subprocess.run(
        [sys.executable, "-c",
         "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "0 broken" in report and "1 kept" in report, report


def _modules() -> Iterator[Path]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.relative_to(ROOT).parts or path == THE_DOOR:
                continue
            yield path


def _starts_an_alias(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith(ALIAS_START)
    if isinstance(node, ast.JoinedStr) and node.values:  # f"tenant:{slug}"
        return _starts_an_alias(node.values[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "tenant:" + slug
        return _starts_an_alias(node.left)
    return False


def _offences(tree: ast.AST) -> Iterator[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            yield node.lineno, f"reads .{node.attr}"
        elif isinstance(node, ast.Name) and node.id in PRIVATE_NAMES:
            yield node.lineno, f"uses {node.id}"
        elif isinstance(node, ast.alias) and node.name.rsplit(".", 1)[-1] in PRIVATE_NAMES:
            yield getattr(node, "lineno", 0), f"imports {node.name}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in {"getattr", "setattr", "hasattr"} and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in PRIVATE_NAMES):
            yield node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"
        elif id(node) not in docstrings and _starts_an_alias(node):
            yield getattr(node, "lineno", 0), f"builds an alias string {ALIAS_START!r}..."


def test_only_tenants_db_knows_the_tenant_aliases():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _modules()
        for line, what in _offences(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert not found, "Use tenants.db.using(tenant):\n" + "\n".join(found)


def test_the_scan_sees_what_it_looks_for():
    samples = {
        "alias = tenant.db_alias": True,
        "alias = getattr(tenant, 'db_alias')": True,
        "alias = f'tenant:{tenant.slug}'": True,
        "alias = 'tenant:' + slug": True,
        "from tenants.db import ALIAS_PREFIX": True,
        "alias = tenants.db.ensure_alias(tenant)": True,
        "'''tenant: its users.'''\nalias = using(tenant)": False,
        "label = 'a tenant: acme'": False,
    }
    for source, expected in samples.items():
        assert bool(list(_offences(ast.parse(source)))) is expected, source
    assert any(p.name == "services.py" and p.parent.name == "tenants" for p in _modules())
    assert THE_DOOR not in set(_modules())
