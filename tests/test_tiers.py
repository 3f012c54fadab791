"""The test tiers of ``tests/conftest.py`` name tests that exist (a renamed test must not slip
into the fast tier unnoticed, nor a stale name stay in the list)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# tests/conftest.py by its path (another conftest.py may come first on sys.path).
_spec = importlib.util.spec_from_file_location("tests_conftest", ROOT / "tests" / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")}


def test_every_listed_slow_test_exists():
    missing = []
    for name in sorted(conftest.SLOW_TESTS):
        file, _, function = name.partition("::")
        path = ROOT / file
        if not path.is_file() or function not in _functions(path):
            missing.append(name)
    assert not missing, f"tests/conftest.py lists tests that do not exist: {missing}"


def test_the_tier_markers_are_declared():
    text = (ROOT / "pyproject.toml").read_text()
    for marker in ("slow", "fuzz", "notebooks", "browser"):
        assert f'"{marker}:' in text, marker
    for name in conftest.NOTEBOOK_TEST_FILES:
        assert (ROOT / name).is_file(), name
