"""Checks every notebook the course ships is tidy: structure, clean stored outputs, paired .py.

The notebooks themselves are executed by nbval (`pytest --nbval-lax`); this file checks what nbval
does not: the house-style skeleton, that the stored outputs come from one clean top-to-bottom run,
and that each paired jupytext `.py` file is exactly what `jupytext --to py:percent` produces.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MAIN = sorted(NOTEBOOKS.glob("*.ipynb"))
SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
ALL = MAIN + SOLUTIONS

REQUIRED_SECTIONS = ["## Learning goals", "## Setup", "## Exercises", "## Summary",
                     "## Further reading"]
# Two digits and at most one lower-case letter (04b: the second part of notebook 04), then words.
NAME_PATTERN = re.compile(r"^\d\d[a-z]?_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _headings(nb: nbformat.NotebookNode) -> list[str]:
    """Markdown heading lines, skipping fenced code blocks."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced and re.match(r"^#{1,6} ", line):
                found.append(line.rstrip())
    return found


def _is_code(cell) -> bool:
    return cell.cell_type == "code" and cell.source.strip() != ""


def test_there_are_notebooks():
    assert MAIN, f"no notebooks found in {_rel(NOTEBOOKS)}"


params_all = pytest.mark.parametrize("path", ALL, ids=_rel)
params_main = pytest.mark.parametrize("path", MAIN, ids=_rel)


@params_all
def test_file_name(path):
    assert NAME_PATTERN.match(path.name), (
        f"{_rel(path)}: notebook names must look like NN_snake_case_topic.ipynb")
    if path.parent.name == "solutions":
        assert path.stem.endswith("_solutions"), f"{_rel(path)}: name must end in _solutions"


ZH = sorted((NOTEBOOKS / "zh-CN").rglob("*.ipynb"))
_LIST_MARKER = re.compile(r"^\s*(?:[-+*]|\d+[.)])\s")


@pytest.mark.parametrize("path", ALL + ZH, ids=_rel)
def test_no_wrapped_formula_line_starts_a_list(path):
    """A line of a paragraph that starts with "- " (or "+ ", "1. ") is a list item in CommonMark,
    which the website uses, even inside an inline formula that began on the line before: the
    formula then breaks apart on the page (JupyterLab, which protects maths first, hides it)."""
    found = []
    for cell in _read(path).cells:
        if cell.cell_type != "markdown":
            continue
        paragraph = ""
        for line in cell.source.split("\n"):
            if not line.strip():
                paragraph = ""
                continue
            starts_item = bool(_LIST_MARKER.match(line))
            if starts_item and paragraph.replace("$$", "").count("$") % 2 == 1:
                found.append(f"cell {cell.get('id')}: {line[:60]!r}")
            paragraph = line if starts_item else f"{paragraph} {line}"
    assert not found, f"{_rel(path)}: re-wrap so no formula line starts a list: {found}"


@params_all
def test_valid_notebook(path):
    nb = _read(path)  # raises on invalid JSON
    nbformat.validate(nb)


@params_all
def test_one_title(path):
    titles = [h for h in _headings(_read(path)) if h.startswith("# ")]
    assert len(titles) == 1, f"{_rel(path)}: expected exactly one H1 title, found {titles}"


@params_main
def test_skeleton_sections(path):
    headings = _headings(_read(path))
    missing = [s for s in REQUIRED_SECTIONS if s not in headings]
    assert not missing, f"{_rel(path)}: missing the section(s) {missing} (see STYLE.md)"
    positions = [headings.index(s) for s in REQUIRED_SECTIONS]
    assert positions == sorted(positions), (
        f"{_rel(path)}: sections must come in the order {REQUIRED_SECTIONS}")


@params_all
def test_clean_run_execution_counts(path):
    counts = [cell.execution_count for cell in _read(path).cells if _is_code(cell)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{_rel(path)}: execution counts are {counts}, expected 1..{len(counts)}. Re-run it from "
        f"a fresh kernel: jupyter nbconvert --to notebook --execute --inplace {_rel(path)}")


@params_all
def test_kernelspec(path):
    # Without a kernelspec JupyterLab greets every student with a "Select Kernel" dialog.
    spec = _read(path).metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", (
        f"{_rel(path)}: metadata.kernelspec is {spec!r}, expected name 'python3'. Open and save it "
        "in JupyterLab with the Python 3 kernel, or set it with nbformat.")


@params_all
def test_no_stored_errors(path):
    for index, cell in enumerate(_read(path).cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", (
                f"{_rel(path)}: cell {index} has a stored error: {output.get('ename')}: "
                f"{output.get('evalue')}")


@params_main
def test_has_checked_output(path):
    tagged = [cell for cell in _read(path).cells
              if "nbval-check-output" in cell.get("metadata", {}).get("tags", [])]
    assert tagged, f"{_rel(path)}: needs at least one cell tagged nbval-check-output"
    assert all(cell.get("outputs") for cell in tagged), (
        f"{_rel(path)}: a cell tagged nbval-check-output has no stored output to check")


@params_all
def test_paired_py_in_sync(path):
    py = path.with_suffix(".py")
    command = f"jupytext --to py:percent {_rel(path)}"
    assert py.is_file(), f"{_rel(path)} has no paired {py.name}; create it with `{command}`"
    expected = jupytext.writes(jupytext.reads(path.read_text(encoding="utf-8"), fmt="ipynb"),
                               fmt="py:percent")
    assert py.read_text(encoding="utf-8") == expected, (
        f"{_rel(py)} differs from {_rel(path)}; regenerate it with `{command}`")


@pytest.mark.parametrize("module", ["fl_helpers", "fl_helpers.data"])
def test_light_import(module):
    """Importing the package (or the numpy-only data module) must not pull in TensorFlow."""
    code = (f"import sys, {module}; heavy = [m for m in ('tensorflow', 'keras') "
            "if m in sys.modules]; print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    assert result.stdout.strip() == "", f"importing {module} imported {result.stdout.strip()}"
