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


def test_every_public_module_has_its_test_file():
    """Whoever changes ``fl_helpers/X.py`` runs ``tests/test_X.py`` (``_X.py``: ``test_X.py``),
    and that file imports the module."""
    missing = []
    for path in sorted((ROOT / "fl_helpers").glob("*.py")):
        if path.stem == "__init__":
            continue
        test_file = ROOT / "tests" / f"test_{path.stem.lstrip('_')}.py"
        if not test_file.is_file():
            missing.append(f"fl_helpers/{path.name}: no {test_file.relative_to(ROOT)}")
            continue
        imported = set()
        for node in ast.walk(ast.parse(test_file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "fl_helpers":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fl_helpers."):
                imported.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[1] for a in node.names
                             if a.name.startswith("fl_helpers.")}
        if path.stem not in imported:
            missing.append(f"{test_file.relative_to(ROOT)} does not import fl_helpers.{path.stem}")
    assert not missing, missing
