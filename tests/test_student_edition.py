"""The student edition and the answer key (``tools/make_student_edition.py``), per language.

Each edition (English, and the Simplified Chinese one built from the generated Chinese
notebooks) is built once into a temporary folder. Fast tests check what it contains, in both
languages: every notebook, the launch links and the Colab set-up cell, empty answer cells, the
check cells unchanged, every other cell unchanged (against the notebook the edition is built
from), nothing of the solutions. A slow test runs the teacher's ``--check`` on notebook 00: the
cells the exercises need, then every ★/★★ check cell on the empty and the filled answer. Every
notebook's check cells run in nbval's run of the notebooks, after the notebook's last cell in its
kernel (the root ``conftest.py``): on the empty answer they must print a message that does not
start with "Correct", on the solution's answer one that does. The Chinese edition's code is the
English code but for comments (a test here checks that), so that run covers it too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import course_notebooks as cn  # noqa: E402
from tools import make_student_edition as se  # noqa: E402

NOTEBOOKS = cn.main_notebooks()
params = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
ZH = se.zh.LANGUAGE


class Edition(type(Path())):
    """The folder an edition was built into (``student/``, ``answer_key/``), and its language."""

    language = "en"


@pytest.fixture(scope="module", params=se.LANGUAGES)
def edition(request, tmp_path_factory) -> Edition:
    out = Edition(tmp_path_factory.mktemp(f"editions-{request.param}"))
    out.language = request.param
    se.build_student_edition(out / "student", request.param)
    se.build_answer_key(out / "answer_key", request.param)  # problems: see test_answer_key_...
    return out


def _student(edition: Path, path: Path) -> nbformat.NotebookNode:
    return nbformat.read(edition / "student" / "notebooks" / path.name, as_version=4)


def _source(edition: Edition, path: Path) -> nbformat.NotebookNode:
    """The notebook the edition was built from: English, or the generated Chinese one."""
    return se.source_notebook(path, edition.language)


def _text(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells)


def test_every_notebook_is_in_the_edition(edition):
    built = sorted(p.name for p in (edition / "student" / "notebooks").glob("*.ipynb"))
    assert built == [p.name for p in NOTEBOOKS]
    assert not list((edition / "student").rglob("*solutions*")), "solutions in the edition"
    keys = sorted(p.name for p in (edition / "answer_key").glob("*.ipynb"))
    assert keys == [f"{p.stem}_answers.ipynb" for p in NOTEBOOKS]
    for name in ("fl_helpers/__init__.py", "data/mnist", "requirements.txt", "pyproject.toml",
                 "README.md"):
        assert (edition / "student" / name).exists(), f"the edition lacks {name}"
    readme = (edition / "student" / "README.md").read_text(encoding="utf-8")
    assert "pip install -r requirements.txt -e ." in readme
    if edition.language == ZH:
        assert "学生版" in readme and "答案册" in (edition / "answer_key" / "README.md").read_text(
            encoding="utf-8")


@pytest.mark.parametrize("edition", [ZH], indirect=True)
def test_the_chinese_edition_is_built_from_the_chinese_notebooks(edition):
    translated = [p for p in NOTEBOOKS if se.is_translated(p, ZH)]
    assert translated, "no notebook is translated"
    for path in translated:
        nb = _student(edition, path)
        chinese = se.zh.generate(path, relinked=False)
        titles = [c.source for c in chinese.cells if c.cell_type == "markdown"][:1]
        assert nb.cells[0].source == titles[0], f"{path.name}: not the Chinese notebook"
        assert not [c for c in nb.cells if c.get("id") == se.zh.NOTE_ID], (
            "the generator's note (do not edit this notebook) has no place in a student edition")
        assert "在 Colab 上请先运行" in nb.cells[1].source


@params
def test_header_links_and_install_cell(edition, path):
    nb = _student(edition, path)
    links = [c for c in nb.cells if "launch-links" in c.metadata.get("tags", [])]
    install = [c for c in nb.cells if "colab-install" in c.metadata.get("tags", [])]
    assert len(links) == 1 and len(install) == 1
    assert nb.cells.index(links[0]) == 1 and nb.cells.index(install[0]) == 2, "not under the title"
    relative = f"notebooks/{path.name}"
    if edition.language == ZH and se.is_translated(path, ZH):
        relative = f"notebooks/{ZH}/{path.name}"  # Colab, Binder and GitHub open the Chinese one
        assert (ROOT / relative).is_file()
    assert f"/blob/main/{relative})" in links[0].source  # Colab and GitHub
    assert f"?labpath={relative.replace('/', '%2F')})" in links[0].source  # Binder
    assert "nbval-skip" in install[0].metadata["tags"], "nbval (and so CI) must skip it"


def test_install_cell_does_nothing_outside_colab(tmp_path):
    code = (cn.install_cell_source()
            + "\nimport os, sys\nprint(os.getcwd(), len(sys.path), 'FL_DATA_DIR' in os.environ)")
    before = subprocess.run([sys.executable, "-c", "import os, sys\nprint(os.getcwd(), "
                             "len(sys.path), 'FL_DATA_DIR' in os.environ)"],
                            capture_output=True, text=True, check=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin"})
    after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert after.stdout == before.stdout
    ast.parse(cn.install_cell_source())


def test_readme_shows_the_same_install_cell():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Run it without installing", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = "\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines())
    assert ast.dump(ast.parse(code)) == ast.dump(ast.parse(cn.install_cell_source())), (
        "the README's Colab cell differs from tools/course_notebooks.install_cell_source()")


@params
def test_answer_cells_are_empty_and_check_cells_kept(edition, path):
    original, student = _source(edition, path), _student(edition, path)
    exercises = [e for e in se.find_exercises(student) if e.stars <= 2]
    assert len(exercises) == sum(e.stars <= 2 for e in cn.find_exercises(cn.read(path)))
    originals = [e for e in se.find_exercises(original) if e.stars <= 2]
    for exercise, source in zip(exercises, originals, strict=True):
        assert exercise.check_cell is not None and exercise.answer_cells, (
            f"{path.name}: {exercise.title!r} needs an answer cell and a check cell")
        for index, own in zip(exercise.answer_cells, source.answer_cells, strict=True):
            cell = student.cells[index]
            if se.GIVEN_TAG in cell.metadata["tags"]:  # code to fix, the notebook's own
                assert cell.source == original.cells[own].source
            else:
                assert cn.is_placeholder(cell.source), (
                    f"{exercise.title}: not empty:\n{cell.source}")
                # The notebook itself has the placeholder, so nbval's run of the notebook runs
                # the check cell on the student's empty answer (root conftest.py).
                assert cell.source == original.cells[own].source, (
                    f"{path.name}, {exercise.title}: the notebook's answer cell is not the "
                    "placeholder the student edition has")
            assert not cell.outputs and "exercise-answer" in cell.metadata["tags"]
        check = student.cells[exercise.check_cell]
        assert check.source == original.cells[source.check_cell].source
        assert not check.outputs and "exercise-check" in check.metadata["tags"]


@params
def test_other_cells_unchanged(edition, path):
    original, student = _source(edition, path), _student(edition, path)
    added = [c for c in student.cells
             if {"launch-links", "colab-install"} & set(c.metadata.get("tags", []))]
    rest = [c for c in student.cells if c not in added]
    assert len(rest) == len(original.cells)
    for mine, theirs in zip(rest, original.cells, strict=True):
        if mine.cell_type == "markdown":
            assert mine.source == se.student_text(theirs.source, edition.language)
        elif not {"exercise-answer", "exercise-check"} & set(mine.metadata.get("tags", [])):
            assert mine.source == theirs.source
            assert mine.get("outputs") == theirs.get("outputs")


@params
def test_nothing_of_the_solutions_in_the_edition(edition, path):
    text = _text(_student(edition, path))
    assert "solutions/" not in text and "solutions notebook" not in text.lower()
    assert not re.search("参考答案笔记本|解答笔记本", text)
    student_defs = {}
    for cell in _student(edition, path).cells:
        tree = cn.parse(cell.source) if cell.cell_type == "code" else None
        for node in ast.walk(tree) if tree else []:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                student_defs.setdefault(node.name, []).append(ast.dump(node))
    answers = se.answers_for(path) if cn.solutions_notebook(path) else []  # else: answer key test
    for answer in answers:
        for node in ast.parse(answer.source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert ast.dump(node) not in student_defs.get(node.name, []), (
                    f"{path.name}: the solution's {node.name}() is in the student edition")
            elif isinstance(node, ast.Assign):
                for name in cn.statement_binds(node) & set(answer.names):
                    assert f"{name} = {ast.unparse(node.value)}" not in text, (
                        f"{path.name}: the answer {name} = ... is in the student edition")


@params
def test_answer_key_has_every_answer_and_check(edition, path):
    key = nbformat.read(edition / "answer_key" / f"{path.stem}_answers.ipynb", as_version=4)
    text = _text(key)
    for answer in se.answers_for(path):
        assert answer.source.strip() in text
    for exercise in se.find_exercises(_student(edition, path)):
        assert exercise.title in text


def test_student_text_points_to_the_answer_key_in_chinese_too():
    text = ("参考答案在 `notebooks/solutions/01_x_\nsolutions.ipynb` 中。见参考答案笔记本，"
            "或[解答](solutions/01_x_solutions.ipynb)。解答笔记本运行了它。")
    assert se.student_text(text, ZH) == "参考答案在答案册中。见答案册，或解答。答案册运行了它。"
    with pytest.raises(ValueError, match=r"language must be one of en, zh-CN, got 'zh'"):
        se.student_text(text, "zh")
    with pytest.raises(ValueError, match="language must be one of"):
        se.edition_dirs("fr")


def test_exercises_are_found_under_a_chinese_heading():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 标题"),
                nbformat.v4.new_markdown_cell("## 练习\n\n### 练习 1 ★（预测）：一个数"),
                nbformat.v4.new_code_cell("guess = None"),
                nbformat.v4.new_code_cell("# Check cell（检查单元）\nprint('Correct')"),
                nbformat.v4.new_markdown_cell("### 练习 2 ★★★（设计）"),
                nbformat.v4.new_markdown_cell("## 小结")]
    exercises = se.find_exercises(nb)
    assert [(e.stars, e.answer_cells, e.check_cell, e.end_cell) for e in exercises] == [
        (1, [2], 3, 4), (3, [], None, 5)]
    assert se.exercises_section(nb) == (1, 5)
    assert nb.cells[1].source.startswith("## 练习"), "the notebook itself is not changed"
    assert cn.find_exercises(nb) == [], "course_notebooks alone looks for ## Exercises"


def test_student_text_points_to_the_answer_key():
    text = ("A solution is in `notebooks/solutions/01_x_solutions.ipynb`. See the solutions "
            "notebook, or [the worked answer](solutions/01_x_solutions.ipynb).")
    assert se.student_text(text) == ("A solution is in the answer key. See the answer key, or "
                                     "the worked answer.")
    assert se.student_text("design.\nThe solutions\nnotebook runs one.") == (
        "design.\nThe answer key runs one.")


def test_placeholders():
    assert cn.is_placeholder("x = None  # your answer\ny = None")
    assert cn.is_placeholder('def f(a):\n    """Doc."""\n    return None  # replace\n')
    assert cn.is_placeholder('def f(a):\n    raise NotImplementedError("Exercise")\n')
    assert not cn.is_placeholder("x = 2")
    assert not cn.is_placeholder("def f(a):\n    return a + 1\n")
    blank = cn.placeholder_for('def f(a, *, b):\n    """Doc."""\n    return a + b\n\nx = f(1, b=2)')
    assert cn.is_placeholder(blank) and 'def f(a, *, b):\n    """Doc."""' in blank
    assert "x = None" in blank and "a + b" not in blank


def test_free_names():
    code = ("import math\ndef f(a, b=c):\n    x = a + y\n    return [q for q in x if q > z]\n"
            "try:\n    w = f(1)\n    v = w + 1\nexcept ValueError as e:\n    print(e, k)\n"
            "for i in r:\n    u = i + math.pi\nwith open(path) as h:\n    h.read()\n")
    assert cn.free_names(ast.parse(code)) == {"c", "y", "z", "ValueError", "print", "k", "r",
                                              "open", "path"}


def test_needed_cells_follow_the_names():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np"),
                nbformat.v4.new_code_cell("rng = np.random.default_rng(0)"),
                nbformat.v4.new_code_cell("noise = rng.normal(size=3)"),        # advances rng
                nbformat.v4.new_code_cell("unused = np.arange(3)"),
                nbformat.v4.new_code_cell("table = {}\ntable['a'] = 1"),
                nbformat.v4.new_code_cell("table['b'] = 2"),                    # changes table
                nbformat.v4.new_code_cell("fig = plot(table)"),
                nbformat.v4.new_markdown_cell("## Exercises")]
    needed = se.needed_cells(nb, ["print(rng.integers(5), table['b'])"])
    assert needed == [0, 1, 2, 4, 5]


def test_a_worked_answer_inline_is_emptied(tmp_path, monkeypatch):
    """A notebook that keeps a solution in its answer cell, or a cell tagged "solution", gets an
    empty answer cell and loses the solution cell in the student edition."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"),
                nbformat.v4.new_markdown_cell("## Exercises\n\n### ★ Predict: a number"),
                nbformat.v4.new_code_cell("guess = 42"),
                nbformat.v4.new_code_cell("# Check cell\nprint('Correct' if guess == 42 else "
                                          "'Not quite')"),
                nbformat.v4.new_code_cell("print('the answer is 42')",
                                          metadata={"tags": ["solution"]}),
                nbformat.v4.new_markdown_cell("## Summary")]
    path = tmp_path / "99_example.ipynb"
    nbformat.write(nb, path)
    student = se.student_notebook(path)
    sources = [c.source for c in student.cells]
    assert "guess = None  # your answer\n" in sources
    assert "print('the answer is 42')" not in sources


def test_exercises_are_found():
    for path in NOTEBOOKS:
        exercises = cn.find_exercises(cn.read(path))
        assert exercises, (f"{path.name}: no exercise found (a heading with ★, ★★ or ★★★ "
                           "under ## Exercises)")
        for exercise in exercises:
            if exercise.stars <= 2:
                assert exercise.check_cell is not None and exercise.answer_cells, (
                    f"{path.name}: {exercise.title!r} needs an answer cell and a check cell")


@pytest.mark.parametrize("edition", [ZH], indirect=True)
def test_the_chinese_edition_runs_the_english_code(edition):
    """Every code cell of the Chinese student edition (answer and check cells included) is the
    English edition's code but for translated comments, so the English run of the check cells
    (in nbval's run, see the root conftest.py) covers the Chinese edition too."""
    for path in NOTEBOOKS:
        english = [c.source for c in se.student_notebook(path).cells if c.cell_type == "code"]
        chinese = [c.source for c in _student(edition, path).cells if c.cell_type == "code"]
        assert len(chinese) == len(english), path.name
        for ours, theirs in zip(chinese, english, strict=True):
            code = se.zh.code_without_comments(ours)
            assert code is not None and code == se.zh.code_without_comments(theirs), (
                f"{path.name}: a Chinese code cell differs from the English one:\n{ours}")


@pytest.mark.slow
def test_nbval_checks_every_exercise_after_its_notebook():
    """The README's command (nbval on the notebooks) collects one check per ★/★★ exercise right
    after the last cell of its notebook (root conftest.py), and none for the solutions."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval-lax", "-p", "no:xdist",
         "-o", "addopts=", "-p", "no:cacheprovider", "notebooks"],
        capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    for path in NOTEBOOKS:
        mine = [i.partition("::")[2] for i in ids if i.startswith(f"notebooks/{path.name}::")]
        count = sum(e.stars <= 2 for e in cn.find_exercises(cn.read(path)))
        checks = [f"Exercise check {k} of {count}" for k in range(1, count + 1)]
        assert mine[len(mine) - count:] == checks, f"{path.name}: {mine[-count - 1:]}"
        assert not [i for i in mine[:len(mine) - count] if i.startswith("Exercise")]
    assert not [i for i in ids if "solutions" in i and "Exercise check" in i]


@pytest.mark.slow
def test_the_teachers_check_runs_the_check_cells_of_a_student_notebook(tmp_path):
    """``python -m tools.make_student_edition --check``, the teacher's command: on notebook 00
    of a built edition, every check cell says something other than "Correct" on the empty answer
    and "Correct" on the solution's. (Every notebook's check cells run in nbval's run.)"""
    se.build_student_edition(tmp_path / "student", "en")
    path = NOTEBOOKS[0]
    results, facts = se.check_notebook(tmp_path / "student" / "notebooks" / path.name)
    assert results, f"{path.name}: no ★/★★ exercise was checked"
    assert facts["mode"] == "slice" and facts["prefix_cells"] < facts["cells_run"]
    for result in results:
        assert result.fails_on_empty, (result.exercise, result.empty_error, result.empty_output)
        assert result.passes_on_filled, (result.exercise, result.filled_error,
                                         result.filled_output)
