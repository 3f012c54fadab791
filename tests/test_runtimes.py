"""Every runtime the course quotes agrees with the one measurement, ``time_notebooks.json``.

The source is ``benchmarks/results/time_notebooks.json``, written by
``benchmarks/time_notebooks.py``: one fresh-kernel run (``jupyter nbconvert --execute``) of each
notebook and each solutions notebook, with the 1-minute load average before it, the date and the
CPU count. Three places quote it, and this test reads all of them (it only reads files; it runs
nothing):

- each notebook's runtime line in its first markdown cell, in the jupytext ``.py`` pair and in the
  ``.ipynb`` (``*Runtime: about N s ...`` or ``*Runtime: about N min ...``), and a solutions
  notebook's, if its introduction states one;
- the README's notebook table (its last column) and the paragraph under it (the whole course's
  total and the date of the measurement);
- the instructor guide's ``## Runtimes`` table (the notebook's and its solutions' seconds).

Rounding rule. A notebook header gives the measurement rounded for a reader: below 57.5 s to the
nearest 5 s ("about 35 s"), from 57.5 s on to the nearest half minute ("about 1.5 min"); the
header's figure must be of that form. The README and the guide give whole seconds.

Tolerance. A written figure agrees with the measurement when it is within 10 s or 25 % of it,
whichever is larger. The measurement is one run on a shared 2-core machine whose load moves
between about 1 and 10 while other people's tests run, and the same notebook then takes from one
to two or three times as long; a second run a few minutes later commonly differs by 10-20 %.
Demanding the exact figure would make every re-measurement rewrite twenty lines for noise, and
would claim a precision the figure does not have; a tolerance wider than this would let a
notebook that got half again slower (the change this test exists to catch) through unnoticed.
The rounding of the headers (at most 2.5 s or 15 s) fits inside the tolerance. A failure names
the file, the figure written and the one measured; fix the text, or re-measure with
``.venv/bin/python benchmarks/time_notebooks.py --notebooks NN`` if the notebook changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
RESULTS = ROOT / "benchmarks" / "results" / "time_notebooks.json"
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "instructor_guide.md"

ABSOLUTE_TOLERANCE_S = 10.0
RELATIVE_TOLERANCE = 0.25
HEADER = re.compile(r"\*Runtime: about (\d+(?:\.\d+)?) (s|min)\b")
FIGURE = re.compile(r"(?:about )?(\d+(?:\.\d+)?) (s|min)\b")
#: A notebook's number: two digits and at most one lower-case letter (``04``, ``04b``).
NUMBER = re.compile(r"\d\d[a-z]?(?=_)")
PAIRS = sorted(p for p in NOTEBOOKS.glob("*.py") if NUMBER.match(p.name))
SOLUTION_PAIRS = sorted(p for p in SOLUTIONS.glob("*.py") if NUMBER.match(p.name))


def _number(name: str) -> str:
    """The number a notebook's name or a table row starts with, e.g. ``04b``."""
    match = NUMBER.match(name) or re.match(r"\d\d[a-z]?\b", name)
    assert match, f"{name!r} does not start with a notebook number (NN or NNx)"
    return match[0]


def _measurements() -> dict[str, dict[str, Any]]:
    """The records of ``time_notebooks.json``: name relative to notebooks/ -> record."""
    return dict(json.loads(RESULTS.read_text(encoding="utf-8"))["notebooks"])


def _name(pair: Path) -> str:
    """The measurement key of a jupytext pair, e.g. ``solutions/00_x_solutions.ipynb``."""
    return pair.with_suffix(".ipynb").relative_to(NOTEBOOKS).as_posix()


def _seconds(value: str, unit: str) -> float:
    """A written figure in seconds."""
    return float(value) * (60.0 if unit == "min" else 1.0)


def _header_figure(seconds: float) -> str:
    """What a notebook header should say for ``seconds`` by the rounding rule."""
    if seconds < 57.5:
        return f"about {max(5, 5 * round(seconds / 5))} s"
    halves = round(seconds / 30) / 2
    return f"about {halves:g} min"


def _record(name: str) -> dict[str, Any]:
    """The measurement of ``name`` (e.g. ``03_federated_averaging.ipynb``); fails if missing."""
    records = _measurements()
    assert name in records, (
        f"{RESULTS.relative_to(ROOT)} has no measurement of {name}: run "
        f".venv/bin/python benchmarks/time_notebooks.py --notebooks {_number(name)}_")
    return records[name]


def _check(where: str, written: str, seconds_written: float, name: str) -> None:
    """Fail with the file, the figure written and the one measured if they disagree."""
    record = _record(name)
    measured = float(record["seconds"])
    allowed = max(ABSOLUTE_TOLERANCE_S, RELATIVE_TOLERANCE * measured)
    assert abs(seconds_written - measured) <= allowed, (
        f"{where} says {written!r} for {name}, but {RESULTS.relative_to(ROOT)} measured "
        f"{measured:.1f} s (load {record['load_1min']}, {record['date']}); allowed "
        f"+/- {allowed:.1f} s (10 s or 25 %); a header would say {_header_figure(measured)!r}")


def _first_markdown(path: Path) -> str:
    """The first markdown cell's text of a jupytext percent ``.py`` or of an ``.ipynb``."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return next("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    text = path.read_text(encoding="utf-8")
    start = text.index("# %% [markdown]")
    end = text.find("# %%", start + 1)
    return text[start:end if end >= 0 else None]


def _table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of every row of the first Markdown table after ``heading``."""
    section = text[text.index(heading):]
    rows: list[list[str]] = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header row


def test_every_notebook_and_solution_is_measured_and_ran() -> None:
    records = _measurements()
    for pair in PAIRS + SOLUTION_PAIRS:
        name = _name(pair)
        record = _record(name)
        assert record["ok"] is True, f"{name} failed in the measurement: {record.get('error')}"
        assert record["cpu_count"] and record["date"] and "load_1min" in record
    stale = sorted(set(records) - {_name(pair) for pair in PAIRS + SOLUTION_PAIRS})
    assert not stale, f"{RESULTS.relative_to(ROOT)} measures notebooks no longer here: {stale}"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: _number(p.name))
def test_notebook_header_runtime(pair: Path) -> None:
    name = pair.with_suffix(".ipynb").name
    for path in (pair, pair.with_suffix(".ipynb")):
        where = path.relative_to(ROOT).as_posix()
        match = HEADER.search(_first_markdown(path).replace("\n# ", " ").replace("\n", " "))
        assert match, f"{where}: the first markdown cell has no '*Runtime: about N s|min' line"
        written = f"about {match[1]} {match[2]}"
        seconds = _seconds(match[1], match[2])
        granular = (match[2] == "s" and seconds < 60 and seconds % 5 == 0) or (
            match[2] == "min" and (2 * float(match[1])).is_integer())
        assert granular, (f"{where} says {written!r}: headers round to 5 s below a minute and to "
                          f"half minutes above")
        _check(where, written, seconds, name)


@pytest.mark.parametrize("pair", SOLUTION_PAIRS, ids=lambda p: _number(p.name))
def test_solutions_header_runtime_if_stated(pair: Path) -> None:
    text = _first_markdown(pair).replace("\n# ", " ")
    if "Runtime" not in text:
        return
    match = HEADER.search(text)
    where = pair.relative_to(ROOT).as_posix()
    assert match, f"{where} states a runtime that is not of the form '*Runtime: about N s|min'"
    _check(where, match[0], _seconds(match[1], match[2]), _name(pair))


def test_readme_table_runtime_column() -> None:
    rows = _table_rows(README.read_text(encoding="utf-8"), "## The notebooks")
    named = {re.search(r"`(\d\d[a-z]?_\w+)`", row[0])[1]: row[-1] for row in rows}  # type: ignore[index]
    assert sorted(named) == [p.stem for p in PAIRS], "README's table lists other notebooks"
    for stem, cell in named.items():
        match = FIGURE.match(cell)
        assert match, f"README.md: the runtime column of {stem} ({cell!r}) gives no 'N s'"
        _check("README.md (notebook table)", match[0], _seconds(match[1], match[2]),
               f"{stem}.ipynb")


def test_readme_paragraph_total_and_date() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The notebooks"):text.index("## Quick start")]
    paragraph = section[section.index("Runtimes are"):]
    records = _measurements()
    dates = {str(r["date"])[:10] for r in records.values()}
    for date in dates:
        assert date in paragraph, f"README.md's runtime paragraph does not give the date {date}"
    match = re.search(r"whole course[^.]*? in (?:about )?(\d+(?:\.\d+)?) (s|min)\b",
                      paragraph.replace("\n", " "))
    assert match, "README.md's runtime paragraph gives no total ('whole course ... in N s')"
    total = sum(float(r["seconds"]) for r in records.values())
    allowed = max(ABSOLUTE_TOLERANCE_S, RELATIVE_TOLERANCE * total)
    written = _seconds(match[1], match[2])
    assert abs(written - total) <= allowed, (
        f"README.md's runtime paragraph says the whole course takes {match[1]} {match[2]}, but "
        f"{RESULTS.relative_to(ROOT)} adds up to {total:.0f} s")


def test_instructor_guide_runtimes_table() -> None:
    rows = _table_rows(GUIDE.read_text(encoding="utf-8"), "## Runtimes")
    by_number = {_number(row[0]): row for row in rows}
    assert sorted(by_number) == [_number(p.name) for p in PAIRS], (
        f"docs/instructor_guide.md's Runtimes table covers {sorted(by_number)}, the course "
        f"{[_number(p.name) for p in PAIRS]}")
    for pair in PAIRS:
        row = by_number[_number(pair.name)]
        solution = SOLUTIONS / f"{pair.stem}_solutions.ipynb"
        for cell, name in ((row[1], pair.with_suffix(".ipynb").name),
                           (row[2], solution.relative_to(NOTEBOOKS).as_posix())):
            match = FIGURE.match(cell)
            assert match, f"docs/instructor_guide.md: Runtimes row {row[0]!r} has {cell!r}"
            _check("docs/instructor_guide.md (Runtimes table)", match[0],
                   _seconds(match[1], match[2]), name)
