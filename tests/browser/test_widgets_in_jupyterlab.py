"""The ``### Try it`` widgets, tested where students meet them: JupyterLab in a real browser.

For every notebook in :data:`WIDGET_CASES` the test opens the notebook in JupyterLab (served from a
temporary copy, see ``conftest.py``, that holds the widget's section and the earlier code cells it
needs: :func:`served_cells`), clears the stored outputs, runs all cells from the "Run" menu and
waits until every prompt shows its number and the kernel is idle. It then checks that

* every code cell ran, in order, with prompts [1]..[N], and no cell has an error output;
* no widget shows "Error displaying widget" (e.g. "model not found");
* the widget was rendered as a widget (it has a ``.widget-slider``), not as its text repr, which is
  what a missing widget manager looks like;
* moving the main slider with the keyboard changes its readout, and the widget's output really
  changes (the printed text and/or the plot image, as the case says), without a traceback, and
  the new plot is not blank;
* moving it back and forward again gives the same text and the same picture at the same setting
  (this catches half-drawn figures and stale state);
* a callback that fails outside its output area is reported with the kernel's error.

Screenshots of the widget before and after go to ``test-artifacts/widgets/<notebook>_before.png``
and ``..._after.png`` (a full-page ``..._failure.png`` when the test fails); the time of each
phase goes to ``test-artifacts/widgets/timings.json``.

Widget callbacks should draw on a ``matplotlib.figure.Figure`` and ``display`` it, not use
``plt.subplots``/``plt.show``: JupyterLab sends widget messages on a kernel subshell (a second
thread), whose ``post_execute`` hook redraws every open pyplot figure while the callback is still
drawing it, which can leave a blank or half-drawn plot (seen here with ipykernel 7.4).

Run only these tests with ``.venv/bin/python -m pytest -m browser``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tools import course_notebooks as cn  # noqa: E402
from tools import make_student_edition  # noqa: E402

NOTEBOOKS_DIR = REPO / "notebooks"
ARTIFACTS_DIR = REPO / "test-artifacts" / "widgets"  # as in conftest.py


@dataclasses.dataclass(frozen=True)
class WidgetCase:
    r"""One widget to drive: where it is, which slider to move and what must change.

    Attributes:
        notebook: File name in ``notebooks/``.
        section: Text of the heading (any level) whose section holds the widget; the widget is
            the first code cell output with a slider between that heading and the next heading
            of the same or a higher level.
        slider: Description label of the main slider (e.g. ``"epsilon ε"``); ``None`` means the
            widget's first slider.
        keys: Keys pressed on the slider handle. ``None``: one PageUp/PageDown (5 steps) away
            from the nearer end of the range.
        must_change: What in the widget's output must differ after the move: ``"text"`` (printed
            output and labels) and/or ``"plot"`` (the images).
        volatile: Regular expression for parts of the printed text that may differ between two
            redraws at the same setting (e.g. a timing, ``r"\d+\.\d s"``); they are masked when
            the round trip compares texts.
        run_timeout_s: Time allowed for "Run All Cells".
        move_timeout_s: Time allowed for the output to change after the slider moved.
    """

    notebook: str
    section: str = "Try it"
    slider: str | None = None
    keys: tuple[str, ...] | None = None
    must_change: tuple[str, ...] = ("text", "plot")
    volatile: str | None = None
    run_timeout_s: float = 300.0
    move_timeout_s: float = 120.0

    @property
    def name(self) -> str:
        return Path(self.notebook).stem


# One line per widget. A notebook with a "### Try it" heading must appear here
# (test_every_try_it_section_is_listed checks that).
WIDGET_CASES = [
    WidgetCase("00_welcome_to_federated_learning.ipynb", section="Environment check",
               slider="example"),
    WidgetCase("01_differential_privacy_noise.ipynb", slider="epsilon ε"),
    WidgetCase("02_local_gradient_descent.ipynb", slider="learning rate η"),
    # One step (E = 1 -> 2): every move reruns a short federated training.
    WidgetCase("03_federated_averaging.ipynb", slider="local epochs E", keys=("ArrowRight",)),
    # Every move retrains DP-FedAvg; the printed line ends with the seconds it took.
    WidgetCase("04_multi_client_experiment.ipynb", slider="target ε", volatile=r"\d+\.\d s\b",
               run_timeout_s=600.0),
    # Every move replays adaptive clipping on stored update norms (the accountant's z is
    # remembered per budget); the printed line ends with the seconds it took.
    WidgetCase("04b_dp_fedavg_at_scale.ipynb", slider="target quantile γ",
               volatile=r"\d+\.\d s\b", run_timeout_s=600.0),
    # Every move re-runs the analytic inversion of a stored update (no training).
    WidgetCase("05_attacks_and_defences.ipynb", slider="noise multiplier z"),
    # One step (20 % -> 30 % attackers): every move retrains a small poisoned federation.
    WidgetCase("07_robustness.ipynb", slider="malicious f/n", keys=("ArrowRight",),
               volatile=r"\d+\.\d s\b", run_timeout_s=600.0),
    # Every move retrains the four-hospital federation twice (the Flower deployment comes after
    # the widget's section, so the served copy leaves it out).
    WidgetCase("08_cross_silo_deployment.ipynb", slider="noise multiplier σ", run_timeout_s=600.0),
    # Every move retrains split learning with label-DP noise and reruns the attacks; the last
    # printed line gives the seconds it took.
    WidgetCase("09_vertical_and_transfer_learning.ipynb", slider="target ε",
               volatile=r"\d+\.\d s\b", run_timeout_s=600.0),
    # One step (Dirichlet alpha 0.1 -> 0.3): every new setting re-deals the MNIST images and
    # trains FedAvg and FedProx for 10 rounds; the last printed line gives the seconds it took.
    WidgetCase("10_heterogeneity_and_personalisation.ipynb", slider="Dirichlet α",
               keys=("ArrowRight",), volatile=r"\d+\.\d s\b", run_timeout_s=600.0),
]

STDERR_MIME = "application/vnd.jupyter.stderr"
QUIET_S = 15.0  # kernel idle this long after a move with no redraw: the callback failed
POLL_S = 0.1  # how often the widget's state is read while waiting for a redraw
SETTLE_S = 1.0  # a new output unchanged this long, with the kernel idle, has settled
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TRY_IT_HEADING = re.compile(r"^#{1,6}\s+Try it\s*$", re.MULTILINE)

# --- JavaScript run in the page -------------------------------------------------------------

# The notebook panel showing `path` (window.jupyterapp exists because the server runs with
# --LabApp.expose_app_in_browser=True).
_FIND_PANEL = """
const findPanel = (path) => [...window.jupyterapp.shell.widgets('main')]
    .find(w => w.context && w.context.path === path && w.content && w.content.model);
"""

# Prompts, kernel status and the error outputs from the notebook *model*: on screen an error
# and a warning on stderr look alike, in the model they are different output types.
_NOTEBOOK_STATE = _FIND_PANEL + """
(path) => {
  const panel = findPanel(path);
  if (!panel) return null;
  const prompts = [...panel.content.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
      .map(e => e.textContent.trim());
  const cells = panel.content.model.cells;
  const errors = [];
  let codeCells = 0;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    codeCells += 1;
    const tags = cell.getMetadata('tags') || [];
    for (let j = 0; j < cell.outputs.length; j++) {
      const out = cell.outputs.get(j).toJSON();
      const text = Array.isArray(out.text) ? out.text.join('') : (out.text || '');
      if (out.output_type === 'error' && !tags.includes('raises-exception')) {
        errors.push({cell: codeCells, count: cell.executionCount, ename: out.ename,
                     evalue: out.evalue, traceback: (out.traceback || []).join('\\n')});
      } else if (out.output_type === 'stream' && out.name === 'stderr'
                 && text.includes('Traceback (most recent call last)')) {
        errors.push({cell: codeCells, count: cell.executionCount, ename: 'stderr',
                     evalue: '', traceback: text});
      }
    }
  }
  const status = document.querySelector('.jp-StatusBar-Left');
  const displayErrors = [...panel.content.node.querySelectorAll('.jp-OutputArea-output')]
      .map(e => e.textContent).filter(t => t.includes('Error displaying widget'))
      .map(t => t.trim().slice(0, 300));
  return {prompts, codeCells, errors, displayErrors,
          status: status ? status.textContent : '',
          kernel: panel.sessionContext.kernelDisplayStatus};
}
"""

# Marks the widget to drive: data-widget-test="root" on the output area of the first code cell
# with a slider in the section, "slider" on the main slider row. Returns a diagnosis otherwise.
_MARK_WIDGET = _FIND_PANEL + """
([path, section, sliderLabel]) => {
  const panel = findPanel(path);
  const norm = s => (s || '').replace(/\\u00b6/g, '').replace(/\\s+/g, ' ').trim();
  document.querySelectorAll('[data-widget-test]')
      .forEach(e => e.removeAttribute('data-widget-test'));
  const cells = panel.content.widgets.map(w => w.node);
  const headingOf = (cell) => cell.classList.contains('jp-MarkdownCell')
      ? [...cell.querySelectorAll('h1, h2, h3, h4, h5, h6')] : [];
  let start = -1, level = 7;
  cells.forEach((cell, i) => {
    if (start >= 0) return;
    const h = headingOf(cell).find(h => norm(h.textContent) === section);
    if (h) { start = i; level = Number(h.tagName[1]); }
  });
  if (start < 0) {
    const all = cells.flatMap(c => headingOf(c).map(h => norm(h.textContent)));
    return {error: `no heading "${section}" in the notebook; its headings are: ${all.join(' | ')}`};
  }
  const seen = [];
  for (let i = start + 1; i < cells.length; i++) {
    const cell = cells[i];
    if (headingOf(cell).some(h => Number(h.tagName[1]) <= level)) break;
    if (!cell.classList.contains('jp-CodeCell')) continue;
    const area = cell.querySelector('.jp-Cell-outputArea');
    if (!area) continue;
    const rows = [...area.querySelectorAll('.widget-slider')];
    seen.push(norm(area.textContent).slice(0, 200));
    if (!rows.length) continue;
    const labels = rows.map(r => norm((r.querySelector('.widget-label') || {}).textContent));
    const index = sliderLabel === null ? 0 : labels.indexOf(sliderLabel);
    if (index < 0) {
      return {error: `the widget has no slider labelled "${sliderLabel}"; `
                     + `its sliders are: ${labels.join(' | ')}`};
    }
    area.setAttribute('data-widget-test', 'root');
    rows[index].setAttribute('data-widget-test', 'slider');
    return {label: labels[index], labels};
  }
  return {error: `no rendered slider (.widget-slider) in the section "${section}": the widget `
                 + `manager is missing or the widget was not displayed. The section's code `
                 + `cells show: ${seen.map(s => JSON.stringify(s)).join(', ') || '(nothing)'}`};
}
"""

# What the widget shows now: the main slider's readout and handle, the display text (outputs,
# labels, HTML; not the controls), the plot images, and any traceback inside the widget.
_WIDGET_STATE = """
() => {
  const root = document.querySelector('[data-widget-test=root]');
  if (!root) return null;
  const slider = root.querySelector('[data-widget-test=slider]');
  const handle = slider.querySelector('.noUi-handle[role=slider]');
  const readout = slider.querySelector('.widget-readout');
  const controls = '.widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-radio, '
      + '.widget-checkbox, .widget-text, .widget-button, .widget-select, .widget-toggle-button';
  const shown = '.widget-output, .widget-label, .widget-html, .widget-htmlmath';
  const texts = [...root.querySelectorAll(shown)]
      .filter(e => !e.closest(controls))
      .filter(e => !(e.parentElement && e.parentElement.closest('.widget-output')))
      .map(e => e.textContent.trim());
  const errors = [...root.querySelectorAll('.jp-OutputArea-output[data-mime-type="STDERR_MIME"]')]
      .map(e => e.textContent)
      .filter(t => t.includes('Traceback (most recent call last)')
                   || /^\\w*(Error|Exception)\\b/m.test(t));
  const displayErrors = [...root.querySelectorAll('*')]
      .filter(e => e.children.length === 0 && e.textContent.includes('Error displaying widget'))
      .map(e => e.textContent.trim());
  return {
    readout: readout ? readout.textContent.trim() : null,
    value: handle ? handle.getAttribute('aria-valuenow') : null,
    min: handle ? Number(handle.getAttribute('aria-valuemin')) : null,
    max: handle ? Number(handle.getAttribute('aria-valuemax')) : null,
    text: texts.join('\\n'),
    images: [...root.querySelectorAll('img')].map(i => i.src),
    imagesReady: [...root.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0),
    errors, displayErrors,
  };
}
""".replace("STDERR_MIME", STDERR_MIME)


# --- helpers --------------------------------------------------------------------------------


def _clean(text: str, max_lines: int = 25) -> str:
    lines = ANSI_ESCAPE.sub("", text).rstrip().splitlines()
    if len(lines) > max_lines:
        lines = ["..."] + lines[-max_lines:]
    return "\n".join(lines)


def _describe_errors(errors: list[dict]) -> str:
    first = errors[0]
    where = f"code cell {first['cell']} (prompt [{first['count']}])"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{where} has an error output{more}: {first['ename']}: {first['evalue']}\n"
            f"{_clean(first['traceback'])}")


def _ink_fraction(src: str) -> float:
    """Fraction of a PNG data URL's pixels that differ from its most common colour."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])),
                                     format="png")
    flat = np.round(pixels.reshape(-1, pixels.shape[-1]) * 255).astype(np.uint8)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return 1.0 - counts.max() / len(flat)


def _kernels_idle(jupyterlab) -> bool:
    kernels = jupyterlab.api("GET", "kernels")
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


def _widget_output(state: dict) -> dict:
    """The parts of the widget state that the slider must change."""
    return {"text": state["text"],
            "plot": [hashlib.sha256(src.encode()).hexdigest()[:16] for src in state["images"]]}


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _headings(cell: dict) -> list[tuple[int, str]]:
    if cell["cell_type"] != "markdown":
        return []
    text = "".join(cell["source"])
    return [(len(m.group(1)), m.group(2).strip()) for m in _HEADING.finditer(text)]


def trimmed_cells(cells: list[dict], section: str) -> list[dict]:
    """The notebook's cells up to the end of the section whose heading is ``section``.

    The section ends at the next heading of the same or a higher level (as ``_MARK_WIDGET``
    finds it on the page). Cells after it cannot change what the widget shows when a student
    moves its slider right after running it, and nbval already runs every cell of every
    notebook; serving only this prefix keeps each notebook from running twice in full (notebook
    08's Flower deployment, 02's and 05's long experiments come after their widgets).
    """
    start = next((i for i, cell in enumerate(cells)
                  for level, text in _headings(cell) if text == section), None)
    if start is None:
        raise ValueError(f"no heading {section!r} in the notebook")
    level = min(lvl for lvl, text in _headings(cells[start]) if text == section)
    for end in range(start + 1, len(cells)):
        if any(lvl <= level for lvl, _ in _headings(cells[end])):
            return cells[:end]
    return cells


def _section_start(cells: list[dict], section: str) -> int:
    return next(i for i, cell in enumerate(cells)
                for _, text in _headings(cell) if text == section)


def _source(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_cell(cells: list[dict], section: str) -> int:
    """Index of the widget's code cell: the first code cell of the section whose stored outputs
    show a widget (the section's start if none does)."""
    trimmed = trimmed_cells(cells, section)
    start = _section_start(trimmed, section)
    return next((i for i in range(start, len(trimmed)) if trimmed[i]["cell_type"] == "code"
                 and any(WIDGET_VIEW in output.get("data", {})
                         for output in trimmed[i].get("outputs", []))), start)


def served_cells(cells: list[dict], section: str) -> list[dict]:
    """What the browser runs: the title, the section's heading (by which the test finds the
    widget), the earlier code cells that the widget's cell and the rest of the section need, and
    the widget's cell to the section's end (:func:`trimmed_cells`).

    The code cells come from a backward slice over names (the student edition's
    :func:`tools.make_student_edition.needed_cells`, which also keeps a cell that changes a
    needed object in place, such as a generator it draws from or a model it trains): the
    experiments before the widget that the widget does not read are left out, also those of its
    own section before it (03's static figure retrains two federations the widget never reads).
    nbval runs every cell of every notebook; this test is about the widget in JupyterLab, and
    so each notebook does not run twice in full (04's experiments, 08's Flower deployment, 02's
    and 05's long runs). If the slice missed a cell the widget needs, the widget's cell fails
    here with a ``NameError``, which the test reports.
    """
    trimmed = trimmed_cells(cells, section)
    start = _section_start(trimmed, section)
    widget = widget_cell(cells, section)
    before = nbformat.from_dict({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [dict(cell, source=_source(cell), metadata=cell.get("metadata", {}))
                  for cell in trimmed[:widget]]})
    sources = [_source(cell) for cell in trimmed[widget:] if cell["cell_type"] == "code"]
    keep = set(make_student_edition.needed_cells(before, sources, stop=widget)) | {start}
    if trimmed[0]["cell_type"] == "markdown" and start > 0:
        keep.add(0)  # the title
    return [trimmed[i] for i in sorted(keep)] + trimmed[widget:]


def _serve_trimmed(jupyterlab, case: WidgetCase) -> None:
    """Replaces the served copy of the notebook by :func:`served_cells` of it."""
    path = jupyterlab.root_dir / case.notebook
    nb = json.loads((NOTEBOOKS_DIR / case.notebook).read_text(encoding="utf-8"))
    nb["cells"] = served_cells(nb["cells"], case.section)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _open_notebook(page, jupyterlab, case: WidgetCase) -> None:
    """Opens the notebook, accepts the kernel dialog, waits for its code cells and "Idle"."""
    page.goto(f"{jupyterlab.url}/lab/workspaces/browser-test-{case.name}/tree/{case.notebook}"
              f"?token={jupyterlab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor", timeout=120_000)
    deadline = time.monotonic() + 120
    while True:
        dialog = page.locator(".jp-Dialog")
        if dialog.count() and "Select Kernel" in (dialog.first.text_content() or ""):
            # Our notebooks store no kernelspec, so JupyterLab asks, as it asks a student.
            dialog.first.locator("button.jp-mod-accept").click()
        state = page.evaluate(_NOTEBOOK_STATE, case.notebook)
        if state and re.search(r"\| Idle\b", state["status"]):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{case.notebook}: the kernel did not reach Idle within 120 s after "
                        f"opening; status bar: {state and state['status']!r}", pytrace=False)
        time.sleep(0.25)


def _run_all(page, jupyterlab, case: WidgetCase) -> dict:
    """Clears the outputs, runs all cells from the Run menu, waits for numbers and idle."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
        ".jp-CodeCell .jp-InputArea-prompt')].every(e => !/\\d/.test(e.textContent))",
        timeout=30_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline = time.monotonic() + case.run_timeout_s
    done_once = False
    while True:
        state = page.evaluate(_NOTEBOOK_STATE, case.notebook)
        numbered = all(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"])
        queued = any(p == "[*]:" for p in state["prompts"])
        idle = bool(re.search(r"\| Idle\b", state["status"])) and _kernels_idle(jupyterlab)
        if state["errors"] and idle and not queued:
            pytest.fail(f"{case.notebook}: Run All Cells stopped: "
                        f"{_describe_errors(state['errors'])}", pytrace=False)
        if numbered and idle:
            if done_once:  # idle on two polls in a row: nothing is left in flight
                return state
            done_once = True
        else:
            done_once = False
        if time.monotonic() > deadline:
            pending = [i + 1 for i, p in enumerate(state["prompts"])
                       if not re.fullmatch(r"\[\d+\]:", p)]
            pytest.fail(f"{case.notebook}: Run All Cells did not finish within "
                        f"{case.run_timeout_s:.0f} s: code cells {pending[:10]} show no number; "
                        f"status bar {state['status']!r}", pytrace=False)
        time.sleep(1.0)


REVERSE_KEY = {"ArrowLeft": "ArrowRight", "ArrowRight": "ArrowLeft", "ArrowDown": "ArrowUp",
               "ArrowUp": "ArrowDown", "PageDown": "PageUp", "PageUp": "PageDown"}


def _choose_keys(case: WidgetCase, before: dict) -> tuple[str, ...]:
    if case.keys is not None:
        return case.keys
    value = float(before["value"])
    return ("PageDown",) if value - before["min"] > before["max"] - value else ("PageUp",)


def _move(page, jupyterlab, kernel_errors: KernelErrors, case: WidgetCase, keys, previous: dict, *,
          label: str, timing: dict | None = None) -> dict:
    """Presses ``keys`` on the main slider's handle; returns the settled widget state.

    With ``timing``, stores in ``timing["shown_at"]`` the ``time.monotonic()`` of the first poll
    that saw the new output whole (readout, text and plot changed, images loaded): what a
    student sees, before the test's extra poll that confirms the widget has settled.

    Fails with a message naming the move when the widget then shows a traceback or "Error
    displaying widget", when the readout did not move, or when the output did not change.
    """
    handle = page.locator("[data-widget-test=slider] .noUi-handle[role=slider]")
    if handle.count() != 1:
        pytest.fail(f"{case.notebook}: the slider '{label}' has no keyboard handle "
                    "(.noUi-handle[role=slider])", pytrace=False)
    errors_index = len(kernel_errors.texts)
    handle.focus()
    for key in keys:
        handle.press(key)
    state, gave_up, shown_at = _wait_for_new_output(page, jupyterlab, case, previous)
    if timing is not None:
        timing["shown_at"] = shown_at
    move = (f"moving '{label}' with {'+'.join(keys)} from {previous['readout']} "
            f"to {state['readout']}")
    raised = kernel_errors.since(errors_index)
    raised = f"; the kernel reported {' / '.join(raised)}" if raised else ""
    if state["errors"]:
        pytest.fail(f"{case.notebook}: after {move} the widget shows a traceback:\n"
                    f"{_clean(state['errors'][0])}", pytrace=False)
    if state["displayErrors"]:
        pytest.fail(f"{case.notebook}: after {move} the widget shows "
                    f"{state['displayErrors'][0]!r}", pytrace=False)
    if state["readout"] == previous["readout"]:
        pytest.fail(f"{case.notebook}: pressing {'+'.join(keys)} on '{label}' did not change "
                    f"its readout ({previous['readout']})", pytrace=False)
    for part in case.must_change:
        if _widget_output(state)[part] == _widget_output(previous)[part]:
            pytest.fail(f"{case.notebook}: after {move} the widget's {part} did not change: "
                        f"{gave_up}{raised} (text now: {state['text'][:300]!r})",
                        pytrace=False)
    return state


def _same_picture(src_a: str, src_b: str) -> bool:
    """Whether two PNG data URLs show the same picture (at most 0.5% of pixels differ)."""
    import matplotlib.image

    a, b = (matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])),
                                    format="png") for src in (src_a, src_b))
    if a.shape != b.shape:
        return False
    differs = np.abs(a - b).max(axis=-1) > 0.05
    return float(differs.mean()) <= 0.005


def _assert_same_output(case: WidgetCase, label: str, *, expected: dict, actual: dict) -> None:
    where = f"{case.notebook}: with '{label}' back at {actual['readout']},"
    if "text" in case.must_change:
        def mask(text: str) -> str:
            return re.sub(case.volatile, "<volatile>", text) if case.volatile else text

        assert mask(actual["text"]) == mask(expected["text"]), (
            f"{where} the widget prints {actual['text'][:300]!r}, but printed "
            f"{expected['text'][:300]!r} the first time at that setting")
    if "plot" in case.must_change:
        pairs = list(zip(actual["images"], expected["images"], strict=False))
        if len(actual["images"]) != len(expected["images"]) or not all(
                _same_picture(a, b) for a, b in pairs):
            pytest.fail(f"{where} the plot differs from the one drawn the first time at that "
                        "setting (a half-drawn or stale figure?)", pytrace=False)


def _record_timings(case: WidgetCase, timings: dict) -> None:
    path = ARTIFACTS_DIR / "timings.json"
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded[case.name] = timings
    path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def _ink_floor(state: dict) -> float:
    """The least ink a redrawn plot must have not to count as blank: a quarter of the ink of
    the plot before the move, and at least 0.2 % of the pixels."""
    inks = [_ink_fraction(src) for src in state["images"]]
    return max(0.002, 0.25 * max(inks, default=0.0))


def _plots_complete(state: dict, floor: float, inks: dict[str, float]) -> bool:
    """Whether the widget shows at least one plot and none of them is (nearly) blank."""
    if not state["images"] or not state["imagesReady"]:
        return False
    for src in state["images"]:
        if src not in inks:
            inks[src] = _ink_fraction(src)
    return all(inks[src] >= floor for src in state["images"])


def _wait_for_new_output(page, jupyterlab, case: WidgetCase, before: dict
                         ) -> tuple[dict, str, float | None]:
    """Waits until the readout and the output changed and the new output is complete, then
    until the widget is settled.

    Complete means: with a plot, every image has loaded and none is (nearly) blank (see
    :func:`_ink_floor`); a frame in the middle of a redraw is never judged, the test waits for
    the finished one (up to ``case.move_timeout_s``). Settled means: the kernel idle and the
    widget unchanged for :data:`SETTLE_S` seconds.

    Returns the widget state; if it gave up, why (the timeout, or the kernel idle for
    ``QUIET_S`` seconds with nothing redrawn: a callback that failed outside the output area);
    and the ``time.monotonic()`` at which the new output was first seen complete (``None`` if
    never). Polls every :data:`POLL_S` seconds.
    """
    start = time.monotonic()
    busy_at = start
    previous, stable_since = None, None
    shown_at = None
    needs_plot = "plot" in case.must_change
    floor = _ink_floor(before) if needs_plot else 0.0
    inks: dict[str, float] = {}
    while True:
        state = page.evaluate(_WIDGET_STATE)
        output, old = _widget_output(state), _widget_output(before)
        changed = all(output[part] != old[part] for part in case.must_change)
        now = time.monotonic()
        moved = state["readout"] != before["readout"]
        complete = (_plots_complete(state, floor, inks) if needs_plot
                    else state["imagesReady"])
        if shown_at is None and moved and changed and complete:
            shown_at = now
        idle = _kernels_idle(jupyterlab)
        if not idle:
            busy_at = now
        if state["errors"] or state["displayErrors"]:
            return state, "", shown_at
        if moved and changed and complete and idle:
            if previous != state:
                previous, stable_since = state, now
            elif now - stable_since >= SETTLE_S:
                return state, "", shown_at
        else:
            previous, stable_since = None, None
            if not changed and now - busy_at > QUIET_S:
                return (state, f"the kernel has been idle for {QUIET_S:.0f} s and nothing was "
                        "redrawn", shown_at)
        if now - start > case.move_timeout_s:
            why = "nothing settled" if changed and complete else (
                "the plot stayed (nearly) blank or incomplete" if changed else "nothing changed")
            return state, f"{why} within {case.move_timeout_s:.0f} s", shown_at
        time.sleep(POLL_S)


class KernelErrors:
    """Collects the errors that kernels report, as seen on the page's websockets.

    An exception in a widget callback outside its output area is sent as an "error" message
    that JupyterLab shows only in its log console, so a failure message can quote it here.
    """

    def __init__(self, page):
        self.texts: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._on_frame))

    def _on_frame(self, payload) -> None:
        data = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        if not re.search(r'"msg_type":\s*"error"', data):
            return
        fields = {}
        for key in ("ename", "evalue"):
            match = re.search(rf'"{key}":\s*("(?:[^"\\]|\\.)*")', data)
            if match:
                try:
                    fields[key] = json.loads(match.group(1))
                except json.JSONDecodeError:
                    fields[key] = match.group(1)
        if fields:
            self.texts.append(f"{fields.get('ename', '?')}: {fields.get('evalue', '')}")

    def since(self, index: int) -> list[str]:
        return self.texts[index:]


# --- tests ----------------------------------------------------------------------------------


def test_every_try_it_section_is_listed():
    """A notebook with a "Try it" widget but no line in WIDGET_CASES would go untested."""
    listed = {case.notebook for case in WIDGET_CASES}
    missing = []
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9]*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        if any(cell["cell_type"] == "markdown" and TRY_IT_HEADING.search("".join(cell["source"]))
               for cell in cells) and path.name not in listed:
            missing.append(path.name)
    assert not missing, (f"notebooks with a '### Try it' widget not in WIDGET_CASES of {__file__}: "
                         f"{missing}; add one line each, e.g. WidgetCase({missing[0]!r}, "
                         "slider='<description of the main slider>')")
    absent = [c.notebook for c in WIDGET_CASES if not (NOTEBOOKS_DIR / c.notebook).is_file()]
    assert not absent, f"WIDGET_CASES lists notebooks that do not exist: {absent}"


@pytest.mark.parametrize("case", WIDGET_CASES, ids=lambda case: case.name)
def test_the_served_copy_ends_with_the_widgets_section(case):
    """The browser runs the widget's cell and the rest of its section, after the section's
    heading and the earlier cells they need, in the notebook's order; the section ends where the
    next one of its level begins."""
    cells = json.loads((NOTEBOOKS_DIR / case.notebook).read_text(encoding="utf-8"))["cells"]
    trimmed = trimmed_cells(cells, case.section)
    assert trimmed == cells[:len(trimmed)]
    start = _section_start(trimmed, case.section)
    widget = widget_cell(cells, case.section)
    assert any(WIDGET_VIEW in output.get("data", {}) for output in cells[widget]["outputs"]), (
        f"{case.notebook}: no stored widget in the section {case.section!r}")
    served = served_cells(cells, case.section)
    assert served[-(len(trimmed) - widget):] == trimmed[widget:]
    assert any(cell is trimmed[start] for cell in served), "the section's heading is not served"
    positions = [next(i for i, cell in enumerate(cells) if cell is mine) for mine in served]
    assert positions == sorted(set(positions)), "the served cells are not in the notebook's order"
    if len(trimmed) < len(cells):  # the next cell starts a section of the same or a higher level
        level = min(lvl for lvl, text in _headings(trimmed[start]) if text == case.section)
        assert any(lvl <= level for lvl, _ in _headings(cells[len(trimmed)]))


@pytest.mark.parametrize("case", WIDGET_CASES, ids=lambda case: case.name)
def test_the_served_copy_defines_what_the_widgets_section_reads(case):
    """Every name that the widget's cell and the rest of its section read, and that an earlier
    code cell of the notebook binds, is bound by a served cell too (the slice left out only
    cells the widget does not read)."""
    cells = json.loads((NOTEBOOKS_DIR / case.notebook).read_text(encoding="utf-8"))["cells"]
    widget = widget_cell(cells, case.section)
    served = served_cells(cells, case.section)
    end = len(trimmed_cells(cells, case.section))
    section_code = [cn.parse(_source(c)) for c in cells[widget:end] if c["cell_type"] == "code"]
    reads = set().union(*(cn.free_names(tree) for tree in section_code if tree))
    bound_before = set().union(*(cn.bound_names(tree) for tree in
                                 (cn.parse(_source(c)) for c in cells[:widget]
                                  if c["cell_type"] == "code") if tree))
    served_before = [c for c in served if c["cell_type"] == "code"
                     and any(c is mine for mine in cells[:widget])]
    bound_served = set().union(*(cn.bound_names(tree) for tree in
                                 (cn.parse(_source(c)) for c in served_before) if tree))
    missing = sorted((reads & bound_before) - bound_served)
    assert not missing, f"{case.notebook}: the served copy does not define {missing}"


def test_trimming_stops_at_the_next_heading_of_the_same_or_a_higher_level():
    md = lambda text: {"cell_type": "markdown", "source": [text]}  # noqa: E731
    code = {"cell_type": "code", "source": ["x = 1"]}
    cells = [md("# Title"), md("## A"), code, md("### Try it"), code, md("#### Detail"), code,
             md("### Next"), code, md("## B")]
    assert trimmed_cells(cells, "Try it") == cells[:7]
    assert trimmed_cells(cells, "B") == cells
    with pytest.raises(ValueError, match="no heading 'Nope'"):
        trimmed_cells(cells, "Nope")


@pytest.mark.browser
@pytest.mark.parametrize("case", WIDGET_CASES, ids=lambda case: case.name)
def test_widget_in_jupyterlab(case, jupyterlab, browser):
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS_DIR.glob(f"{case.name}_*.png"):
        old.unlink()
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    kernel_errors = KernelErrors(page)
    started = time.monotonic()
    try:
        _serve_trimmed(jupyterlab, case)
        _open_notebook(page, jupyterlab, case)
        opened = time.monotonic()
        state = _run_all(page, jupyterlab, case)
        ran = time.monotonic()
        timings = {"open_s": round(opened - started, 1), "run_all_s": round(ran - opened, 1)}

        counts = [int(p[1:-2]) for p in state["prompts"]]
        assert len(counts) == state["codeCells"], (
            f"{case.notebook}: {state['codeCells']} code cells but {len(counts)} prompts on screen")
        assert counts == list(range(1, len(counts) + 1)), (
            f"{case.notebook}: after Run All the prompts are {counts}, not 1..{len(counts)}")
        assert not state["errors"], f"{case.notebook}: {_describe_errors(state['errors'])}"
        assert not state["displayErrors"], (
            f"{case.notebook}: a widget shows {state['displayErrors'][0]!r}")

        marked = page.evaluate(_MARK_WIDGET, [case.notebook, case.section, case.slider])
        if "error" in marked:
            pytest.fail(f"{case.notebook}: {marked['error']}", pytrace=False)
        widget = page.locator("[data-widget-test=root]")
        widget.scroll_into_view_if_needed()
        page.wait_for_function(f"({_WIDGET_STATE})().imagesReady", timeout=30_000)
        before = page.evaluate(_WIDGET_STATE)
        assert not before["errors"], (
            f"{case.notebook}: the widget shows an error before any move:\n"
            f"{_clean(before['errors'][0])}")
        if "text" in case.must_change:
            assert re.search(r"\d", before["text"]), (
                f"{case.notebook}: the widget shows no number before the move: "
                f"{before['text'][:200]!r}")
        if "plot" in case.must_change:
            assert before["images"], f"{case.notebook}: the widget shows no plot before the move"
        widget.screenshot(path=ARTIFACTS_DIR / f"{case.name}_before.png")

        keys = _choose_keys(case, before)
        label = marked["label"]
        moved, seen = time.monotonic(), {}
        after = _move(page, jupyterlab, kernel_errors, case, keys, before, label=label,
                      timing=seen)
        # From the key press to the first poll that saw the new output whole; settled_s adds
        # the polls that confirm it stays (the kernel idle, the output unchanged).
        settled = time.monotonic()
        # (No plot at all is never "shown": the blank-plot check below reports it.)
        shown = settled if seen["shown_at"] is None else seen["shown_at"]
        timings["slider_to_output_s"] = round(shown - moved, 1)
        timings["slider_to_settled_s"] = round(settled - moved, 1)
        widget.screenshot(path=ARTIFACTS_DIR / f"{case.name}_after.png")
        if "plot" in case.must_change:
            # A plot that changed into an empty picture is a broken plot, not a redraw.
            ink_before = max(_ink_fraction(src) for src in before["images"])
            ink_after = min(_ink_fraction(src) for src in after["images"]) if after["images"] else 0
            if ink_after < max(0.002, 0.25 * ink_before):
                pytest.fail(f"{case.notebook}: after moving '{label}' to {after['readout']} the "
                            f"plot is (nearly) blank: {ink_after:.2%} of its pixels are drawn, "
                            f"against {ink_before:.2%} before", pytrace=False)
        # Same setting, same output: back, then forward again to the same setting. This
        # catches a redraw that draws the wrong thing (e.g. a half-drawn figure) or stale state.
        # (Back may not reach the start exactly: the handle snaps to the slider's steps.)
        back_keys = tuple(REVERSE_KEY.get(key) for key in reversed(keys))
        if all(back_keys):
            back = _move(page, jupyterlab, kernel_errors, case, back_keys, after, label=label)
            if back["readout"] == before["readout"]:
                _assert_same_output(case, marked["label"], expected=before, actual=back)
            again = _move(page, jupyterlab, kernel_errors, case, keys, back, label=label)
            assert again["readout"] == after["readout"], (
                f"{case.notebook}: pressing {'+'.join(back_keys)} then {'+'.join(keys)} on "
                f"'{marked['label']}' went to {again['readout']}, not back to {after['readout']}")
            _assert_same_output(case, marked["label"], expected=after, actual=again)
        final = page.evaluate(_NOTEBOOK_STATE, case.notebook)
        assert not final["errors"], f"{case.notebook}: {_describe_errors(final['errors'])}"
        timings["total_s"] = round(time.monotonic() - started, 1)
        _record_timings(case, timings)
    except BaseException:
        page.screenshot(path=ARTIFACTS_DIR / f"{case.name}_failure.png", full_page=True)
        raise
    finally:
        context.close()
        jupyterlab.shutdown_kernels()
