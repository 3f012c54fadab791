"""Builds the student edition of the course and its answer key, and checks every exercise.

    .venv/bin/python -m tools.make_student_edition            # build into build/
    .venv/bin/python -m tools.make_student_edition --check    # build, then run every check cell
    .venv/bin/python -m tools.make_student_edition --language zh-CN  # Chinese: build/zh-CN/

What it writes (``build/`` is ignored by git; nothing here is maintained by hand):

``build/student/``
    A self-contained copy to hand out: ``notebooks/NN_*.ipynb`` (every notebook the course has,
    with the "Open in Colab / launch Binder" links and the Colab set-up cell added, the exercises'
    answer cells left as placeholders (an answer cell tagged ``exercise-given`` keeps its code:
    the code a find-the-bug exercise gives to fix), their stored outputs cleared, the exercise
    check cells kept, every mention of the solutions replaced by "the answer key", no
    ``solutions/`` folder), and ``fl_helpers/``, ``data/``, ``benchmarks/results/``,
    ``requirements.txt``, ``pyproject.toml`` and a short ``README.md``, so that
    ``pip install -r requirements.txt -e .`` works in it.
``build/answer_key/``
    For the teacher: ``NN_*_answers.ipynb`` per notebook (each exercise's statement, the answer
    cell filled in, the check cell, and the worked solution from ``notebooks/solutions/`` with its
    stored outputs), and ``README.md``.

The filled answer of a ★/★★ exercise is taken from the solutions notebook's section of the same
rank (the k-th starred section answers the k-th starred exercise): the statements of that section
that define the names the answer cell leaves empty, with the statements they depend on. A
prediction that the solution states only in prose is read from inline code in the section's text
(``` `same_when_equal_sizes = True` ```) or, failing that, from ``tools/exercise_answers.yml``.

``--check`` executes, in one kernel per notebook, the cells the exercises need (see
:func:`needed_cells`), then for every ★/★★ exercise the empty answer cells and the check cell, then
the filled answer and the check cell again. An exercise passes when its check cell, run on the
empty answer, prints a message that does not start with "Correct" (and raises nothing), and, run
on the filled answer, prints a message that starts with "Correct".

Per language (``--language``, default ``en``): ``zh-CN`` builds the Chinese student edition and
answer key into ``build/zh-CN/student/`` and ``build/zh-CN/answer_key/`` from the Chinese
notebooks (``tools/make_zh_edition.py`` generates them from ``translations/zh-CN/``; a notebook
without a translation store is taken in English). The Chinese notebooks sit in the edition's
``notebooks/`` as the English ones do, so their links are the English notebooks' (not
``notebooks/zh-CN/``'s); the generator's edition note (it tells readers not to edit the notebook)
is left out; the Colab/Binder links open ``notebooks/zh-CN/`` on GitHub. An exercises section is
headed ``## Exercises`` or ``## 练习``; pointers to the solutions become 答案册 (the answer key).
The code, the check cells and their "Correct" messages are the English ones, so ``--check`` works
the same; the answers come from the English solutions notebooks (the same code), the worked
solutions in the answer key from the Chinese ones where they are translated.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python tools/make_student_edition.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat
import yaml

from tools import course_notebooks as cn
from tools import make_zh_edition as zh

BUILD = cn.REPO / "build"
STUDENT_DIR = BUILD / "student"
ANSWER_KEY_DIR = BUILD / "answer_key"
#: The editions: English (the source) and the generated Simplified Chinese one.
LANGUAGES = ("en", zh.LANGUAGE)
#: The heading of the exercises section in each language (course_notebooks looks for the English).
EXERCISES_HEADING = {"en": "Exercises", zh.LANGUAGE: "练习"}
ANSWERS_TABLE = Path(__file__).resolve().parent / "exercise_answers.yml"
#: Copied into the student edition so that its notebooks run there.
SUPPORT = ["fl_helpers", "data", "benchmarks/results", "requirements.txt", "pyproject.toml",
           "LICENSE", "docs/applications.md"]  # notebook 00 links to the applications page

_SOLUTION_LINK = re.compile(r"\[([^\]]*)\]\((?:\.\./|\./)?(?:notebooks/)?solutions/[^)]*\)")
_SOLUTION_PATH = re.compile(r"`(?:\.\./|\./)?(?:notebooks/)?solutions/?[^`]*`")
_SOLUTION_WORDS = [(re.compile(r"\bthe\s+solutions\s+notebook"), "the answer key"),
                   (re.compile(r"\bThe\s+solutions\s+notebook"), "The answer key"),
                   (re.compile(r"\b[Ss]olutions\s+notebook"), "answer key")]
_INLINE_ASSIGNMENT = re.compile(r"`\s*([A-Za-z_]\w*)\s*=\s*([^`]+?)\s*`")
#: The answer key's name in each language, and the Chinese words for the solutions notebook.
ANSWER_KEY = {"en": "the answer key", zh.LANGUAGE: "答案册"}
_ZH_SOLUTION_PATH = re.compile(r" ?`(?:\.\./|\./)?(?:notebooks/)?solutions/?[^`]*` ?")
_ZH_SOLUTION_WORDS = re.compile(r"参考答案笔记本|解答笔记本|题解笔记本")
_HEADING_LINE = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*$", re.M)


def check_language(language: str) -> str:
    """Returns ``language`` if the course has that edition; raises otherwise."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}.")
    return language


def _english_headings(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A shallow copy of ``nb`` (same cells, same indices) whose ``## 练习`` heading reads
    ``## Exercises``, so that ``course_notebooks`` finds the exercises of either edition."""
    chinese = EXERCISES_HEADING[zh.LANGUAGE]

    def english(match: re.Match) -> str:
        return (f"{match.group(1)} {EXERCISES_HEADING['en']}"
                if match.group(2) == chinese else match.group(0))
    view = copy.copy(nb)
    view.cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and chinese in cell.source:
            cell = copy.copy(cell)
            cell.source = _HEADING_LINE.sub(english, cell.source)
        view.cells.append(cell)
    return view


def find_exercises(nb: nbformat.NotebookNode) -> list[cn.Exercise]:
    """:func:`course_notebooks.find_exercises`, under ``## Exercises`` or ``## 练习``."""
    return cn.find_exercises(_english_headings(nb))


def exercises_section(nb: nbformat.NotebookNode) -> tuple[int, int] | None:
    """:func:`course_notebooks.exercises_section`, headed ``## Exercises`` or ``## 练习``."""
    return cn.exercises_section(_english_headings(nb))


def edition_dirs(language: str = "en", build: Path = BUILD) -> tuple[Path, Path]:
    """``(student, answer_key)`` folders of an edition: ``build/student`` and
    ``build/answer_key`` for English, ``build/zh-CN/...`` for Chinese."""
    root = build if check_language(language) == "en" else build / language
    return root / "student", root / "answer_key"


def is_translated(path: Path, language: str) -> bool:
    """Whether ``path`` (a course notebook) has an edition in ``language``."""
    return check_language(language) == "en" or zh.store_path(path).is_file()


def source_notebook(path: Path, language: str = "en") -> nbformat.NotebookNode:
    """The notebook an edition is built from: the English one, or its Chinese edition (with
    the English notebook's links and without the generator's edition note) when translated."""
    if check_language(language) == "en" or not is_translated(path, language):
        return cn.read(path)
    nb = zh.generate(path, relinked=False)
    nb.cells = [cell for cell in nb.cells if cell.get("id") != zh.NOTE_ID]
    return nb


def _repo_path(path: Path, language: str) -> str:
    """Where the notebook of this edition lives in the repository (for Colab/Binder links)."""
    if language != "en" and is_translated(path, language):
        return f"notebooks/{language}/{path.name}"
    return f"notebooks/{path.name}"


_COLAB_NOTE = {
    "en": None,
    zh.LANGUAGE: "*在 Colab 上请先运行下面的设置单元（约一分钟）；"
                 "在 Binder 和你自己的电脑上它什么也不做。*",
}


class AnswerNotFound(LookupError):
    """A ★/★★ exercise whose filled answer cannot be derived from its solution."""


# --------------------------------------------------------------------------------------------
# The student edition


def student_text(markdown: str, language: str = "en") -> str:
    """Markdown with every pointer to the solutions turned into a pointer to the answer key
    (in Chinese: 答案册)."""
    text = _SOLUTION_LINK.sub(r"\1", markdown)
    if check_language(language) != "en":
        text = _ZH_SOLUTION_PATH.sub(ANSWER_KEY[language], text)
        text = _ZH_SOLUTION_WORDS.sub(ANSWER_KEY[language], text)
    text = _SOLUTION_PATH.sub(ANSWER_KEY["en"], text)
    for pattern, replacement in _SOLUTION_WORDS:
        text = pattern.sub(replacement, text)
    return text


#: Tag of an answer cell whose code the student starts from (a find-the-bug exercise's code):
#: the student edition keeps it instead of a placeholder.
GIVEN_TAG = "exercise-given"


def student_notebook(path: Path, language: str = "en") -> nbformat.NotebookNode:
    """The student edition of one notebook (see the module docstring)."""
    nb = source_notebook(path, language)
    nb.cells = [cell for cell in nb.cells
                if not cn.SOLUTION_TAGS & set(cell.metadata.get("tags", []))]
    nb = cn.with_header(nb, _repo_path(path, language))
    if _COLAB_NOTE[language] and is_translated(path, language):
        links = next(c for c in nb.cells if "launch-links" in c.metadata.get("tags", []))
        links.source = links.source.split("\n\n", 1)[0] + "\n\n" + _COLAB_NOTE[language]
    for exercise in find_exercises(nb):
        if exercise.stars > 2:
            continue
        for index in exercise.answer_cells:
            cell = nb.cells[index]
            if not cn.is_placeholder(cell.source) and GIVEN_TAG not in cell.metadata.get(
                    "tags", []):
                cell.source = cn.placeholder_for(cell.source)
            _tag(cell, "exercise-answer")
        if exercise.check_cell is not None:
            _tag(nb.cells[exercise.check_cell], "exercise-check")
        for index in [*exercise.answer_cells, *filter(None, [exercise.check_cell])]:
            nb.cells[index].outputs = []
            nb.cells[index].execution_count = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = student_text(cell.source, language)
    return nb


def _tag(cell, tag: str) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


STUDENT_README = """\
# Federated learning with differential privacy — student edition

The course's notebooks with the exercises left for you: each ★ (predict) and ★★ (modify) exercise
has an answer cell to complete and a check cell that tells you whether your answer is right. ★★★
(design) exercises have no check cell; discuss them in class. Your instructor has the answer key.

Set up once, then open the notebooks (Python 3.10 or newer, about 3 GB of disk):

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e .
    .venv/bin/jupyter lab notebooks/

No installation possible? Each notebook starts with "Open in Colab" and "Launch Binder" links;
on Colab, run the set-up cell at the top first. The MNIST data ships in `data/` (CC BY-SA 3.0,
see `data/README.md`); nothing is downloaded.

The notebooks:

{listing}
"""

STUDENT_README_ZH = """\
# 联邦学习与差分隐私 — 学生版（简体中文）

本课程的笔记本，练习留给你来做：每个 ★（预测）和 ★★（修改）练习都有一个
需要你完成的答案单元，以及一个告诉你答案是否正确的检查单元。★★★（设计）
练习没有检查单元，请在课堂上讨论。答案册在老师手里。代码、输出和检查单元的
提示与英文版相同（英文）。

安装一次，然后打开笔记本（Python 3.10 或更新版本，约 3 GB 磁盘空间）：

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e .
    .venv/bin/jupyter lab notebooks/

无法安装？每个笔记本开头都有 “Open in Colab” 和 “Launch Binder” 链接；
在 Colab 上请先运行顶部的设置单元。MNIST 数据随附在 `data/` 中
（CC BY-SA 3.0，见 `data/README.md`），不会下载任何东西。

笔记本：

{listing}
"""


def build_student_edition(out: Path = STUDENT_DIR, language: str = "en") -> list[Path]:
    """Writes the student edition in ``language`` into ``out`` (replacing it); returns the
    notebooks written."""
    check_language(language)
    if out.exists():
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    written = []
    for path in cn.main_notebooks():
        target = out / "notebooks" / path.name
        nbformat.write(student_notebook(path, language), target)
        written.append(target)
    for name in SUPPORT:
        source = cn.REPO / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", ".ipynb_checkpoints", "*.tmp"))
        elif source.is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out / name)
    english = "（英文，尚未翻译）"
    colon = ": " if language == "en" else "："
    listing = "\n".join(f"- `notebooks/{p.name}`{colon}{_title(source_notebook(p, language))}"
                        + ("" if is_translated(p, language) else english)
                        for p in cn.main_notebooks())
    readme = STUDENT_README if language == "en" else STUDENT_README_ZH
    (out / "README.md").write_text(readme.format(listing=listing), encoding="utf-8")
    return written


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip()[2:].splitlines()[0].strip()
    return ""


# --------------------------------------------------------------------------------------------
# The answer key


@dataclasses.dataclass
class Answer:
    """The filled answer of one ★/★★ exercise.

    Attributes:
        notebook: The main notebook's file name.
        exercise: The exercise, as found in the student edition.
        names: The names the answer cells leave empty.
        source: Code that fills them in (run in the notebook's kernel after its own cells).
        origin: Where each name's answer came from (``"solution code"``, ``"solution text"``,
            ``"tools/exercise_answers.yml"``).
        solution_cells: ``(first, end)`` of the solution's section in the solutions notebook.
    """

    notebook: str
    exercise: cn.Exercise
    names: list[str]
    source: str
    origin: dict[str, str]
    solution_cells: tuple[int, int]


def _answers_table() -> dict:
    if not ANSWERS_TABLE.is_file():
        return {}
    return yaml.safe_load(ANSWERS_TABLE.read_text(encoding="utf-8")) or {}


def _statements(cells) -> list[tuple[ast.stmt, str]]:
    found = []
    for cell in cells:
        tree = cn.parse(cell.source)
        if tree is None:
            continue
        lines = cell.source.splitlines()
        for statement in tree.body:
            first = min([statement.lineno, *(d.lineno for d in
                                              getattr(statement, "decorator_list", []))])
            found.append((statement, "\n".join(lines[first - 1:statement.end_lineno])))
    return found


def derive_answer(notebook: Path, nb: nbformat.NotebookNode, exercise: cn.Exercise,
                  solutions: nbformat.NotebookNode, section: tuple[str, int, int],
                  table: dict) -> Answer:
    """The filled answer of ``exercise`` from its section of the solutions notebook."""
    names = sorted(set().union(*(cn.bound_names(cn.parse(nb.cells[i].source) or ast.Module([]))
                                 for i in exercise.answer_cells)))
    _, first, end = section
    cells = solutions.cells[first:end]
    statements = _statements([c for c in cells if c.cell_type == "code"])
    wanted, chosen = set(names), []
    for statement, text in reversed(statements):
        if cn.statement_binds(statement) & wanted:
            chosen.append(text)
            wanted |= cn.used_names(statement)
    chosen.reverse()
    # The answer runs in the student's notebook, which may not import what the solution uses:
    # bring the solutions notebook's imports of the names the chosen code needs.
    imports = {}
    for statement, text in _statements([c for c in solutions.cells if c.cell_type == "code"]):
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            for name in cn.statement_binds(statement):
                imports.setdefault(name, text)
    needs = cn.free_names(ast.parse("\n\n".join(chosen))) if chosen else set()
    chosen = list(dict.fromkeys(imports[name] for name in sorted(needs) if name in imports)) \
        + chosen
    defined = set().union(*(cn.bound_names(ast.parse(text)) for text in chosen)) if chosen \
        else set()
    origin = {name: "solution code" for name in names if name in defined}
    extra = []
    prose = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    for name in names:
        if name in origin:
            continue
        for match in _INLINE_ASSIGNMENT.finditer(prose):
            if match.group(1) == name:
                value = ast.literal_eval(match.group(2))
                extra.append(f"{name} = {value!r}")
                origin[name] = "solution text"
                break
        else:
            entry = table.get(notebook.stem, {})
            if name in entry:
                extra.append(f"{name} = {entry[name]!r}")
                origin[name] = f"tools/{ANSWERS_TABLE.name}"
    missing = [name for name in names if name not in origin]
    if missing:
        raise AnswerNotFound(
            f"{notebook.name}, exercise {exercise.title!r}: the solution does not define "
            f"{missing}. Assign them in a code cell of its section in "
            f"notebooks/solutions/{notebook.stem}_solutions.ipynb, or state them as inline code "
            f"(`{missing[0]} = ...`) in its text, or add them to tools/{ANSWERS_TABLE.name}.")
    source = "\n\n".join([*chosen, *extra]) + "\n"
    return Answer(notebook=notebook.name, exercise=exercise, names=names, source=source,
                  origin=origin, solution_cells=(first, end))


def answers_for(notebook: Path, student: nbformat.NotebookNode | None = None) -> list[Answer]:
    """The filled answers of every ★/★★ exercise of one notebook (in order); ``student`` may be
    either edition's student notebook (the answers are code, the same in both)."""
    student = student if student is not None else student_notebook(notebook)
    exercises = find_exercises(student)
    checked = [e for e in exercises if e.stars <= 2]
    if not checked:
        return []
    solutions_path = cn.solutions_notebook(notebook)
    if solutions_path is None:
        raise AnswerNotFound(f"{notebook.name} has ★/★★ exercises but no "
                             f"notebooks/solutions/{notebook.stem}_solutions.ipynb.")
    solutions = cn.read(solutions_path)
    sections = cn.solution_sections(solutions)
    if len(sections) < len(exercises):
        raise AnswerNotFound(f"{solutions_path.name} has {len(sections)} starred sections for "
                             f"the {len(exercises)} exercises of {notebook.name}.")
    table = _answers_table()
    answers = []
    for exercise, section in zip(exercises, sections, strict=False):
        if section[0].count("★") != exercise.title.count("★"):
            raise AnswerNotFound(f"{solutions_path.name}: section {section[0]!r} does not match "
                                 f"exercise {exercise.title!r} of {notebook.name} (same rank, "
                                 "different stars).")
        if exercise.stars <= 2:
            answers.append(derive_answer(notebook, student, exercise, solutions, section, table))
    return answers


#: The answer key's own sentences, per language.
KEY_TEXTS = {
    "en": {
        "intro": "# Answer key: {title}\n\nFor the instructor. For each exercise of "
                 "`notebooks/{name}`: the exercise, the answer cell filled in (paste it over the "
                 "placeholder in the student's notebook and run the check cell, which should "
                 "then say \"Correct\"), and the worked solution from "
                 "`notebooks/solutions/{stem}_solutions.ipynb` with its stored output. Built by "
                 "`tools/make_student_edition.py`; do not edit by hand.",
        "origin": "`{name}` from the {origin}", "join": ", ",
        "answer": "**Answer cell, filled in** ({origins}):",
        "check": "**Check cell** (as in the student's notebook):",
        "worked": "**Worked solution:**",
        "missing": "# Answer key: {title}\n\n**Not available:** {error}",
        "origins": {"solution code": "solution code", "solution text": "solution text"},
        "readme": "# Answer key (for instructors)\n\nGenerated by `tools/make_student_edition.py` "
                  "from `notebooks/` and `notebooks/solutions/`; keep it away from the student "
                  "edition.\n\n",
        "line": "- `{name}`: {count} exercises ({stars})", "none": "none",
    },
    zh.LANGUAGE: {
        "intro": "# 答案册：{title}\n\n供教师使用。`notebooks/{name}` 的每个练习"
                 "依次给出：练习本身、填好的答案单元（把它粘贴到学生笔记本中的占位单元上，"
                 "再运行检查单元，检查单元应当输出以 \"Correct\" 开头的信息），以及 "
                 "`notebooks/solutions/{stem}_solutions.ipynb` 中带有存储输出的完整解答。"
                 "由 `tools/make_student_edition.py` 生成，不要手工编辑。",
        "origin": "`{name}` 来自{origin}", "join": "，",
        "answer": "**填好的答案单元**（{origins}）：",
        "check": "**检查单元**（与学生笔记本中的相同）：",
        "worked": "**完整解答：**",
        "missing": "# 答案册：{title}\n\n**无法提供：** {error}",
        "origins": {"solution code": "解答代码", "solution text": "解答正文"},
        "readme": "# 答案册（供教师使用）\n\n由 `tools/make_student_edition.py --language zh-CN` "
                  "从中文笔记本和 `notebooks/solutions/` 生成；不要放进学生版。\n\n",
        "line": "- `{name}`：{count} 个练习（{stars}）", "none": "无",
    },
}


def _solutions_source(notebook: Path, language: str) -> nbformat.NotebookNode | None:
    """The solutions notebook the answer key shows: the Chinese one where translated."""
    path = cn.solutions_notebook(notebook)
    if path is None:
        return None
    if language != "en" and zh.store_path(path).is_file():
        nb = zh.generate(path, relinked=False)
        nb.cells = [cell for cell in nb.cells if cell.get("id") != zh.NOTE_ID]
        return nb
    return cn.read(path)


def answer_key_notebook(notebook: Path, language: str = "en") -> nbformat.NotebookNode:
    """One notebook of the answer key (see the module docstring)."""
    texts = KEY_TEXTS[check_language(language)]
    student = student_notebook(notebook, language)
    exercises = find_exercises(student)
    answers = {id(a.exercise): a for a in answers_for(notebook, student)}
    by_heading = {a.exercise.heading_cell: a for a in answers.values()}
    solutions = _solutions_source(notebook, language)
    sections = cn.solution_sections(solutions) if solutions else []
    key = nbformat.v4.new_notebook(metadata=copy.deepcopy(student.metadata))
    key.metadata.pop("widgets", None)
    new_md, new_code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    key.cells.append(new_md(texts["intro"].format(title=_title(student), name=notebook.name,
                                                  stem=notebook.stem)))
    for rank, exercise in enumerate(exercises):
        cells = student.cells[exercise.heading_cell:exercise.end_cell]
        statement = [c for c in cells if c.cell_type == "markdown"]
        key.cells.append(new_md(re.sub(r"^#{1,6} ", "## ",
                                       cn.exercise_statement(student, exercise), count=1)))
        key.cells.extend(copy.deepcopy(c) for c in statement[1:])
        answer = by_heading.get(exercise.heading_cell)
        if answer is not None:
            origins = texts["join"].join(
                texts["origin"].format(name=n, origin=texts["origins"].get(o, o))
                for n, o in answer.origin.items())
            key.cells.append(new_md(texts["answer"].format(origins=origins)))
            key.cells.append(new_code(answer.source.rstrip("\n")))
            key.cells.append(new_md(texts["check"]))
            key.cells.append(new_code(student.cells[exercise.check_cell].source))
        if rank < len(sections):
            _, first, end = sections[rank]
            key.cells.append(new_md(texts["worked"]))
            for cell in solutions.cells[first + 1:end]:
                key.cells.append(copy.deepcopy(cell))
    for cell in key.cells:
        cell.setdefault("id", nbformat.v4.new_code_cell().id)
        if cell.cell_type == "markdown":
            cell.source = re.sub(r"\]\((?:\.\./)?(\d\d[a-z]?_[\w-]+\.ipynb)",
                                 r"](../student/notebooks/\1", cell.source)
    return key


def build_answer_key(out: Path = ANSWER_KEY_DIR,
                     language: str = "en") -> tuple[list[Path], list[str]]:
    """Writes the answer key in ``language`` into ``out`` (replacing it).

    Returns:
        The notebooks written, and a problem per notebook whose answers could not be derived
        (its key notebook then says so instead of giving answers).
    """
    texts = KEY_TEXTS[check_language(language)]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written, lines, problems = [], [], []
    for path in cn.main_notebooks():
        target = out / f"{path.stem}_answers.ipynb"
        try:
            key = answer_key_notebook(path, language)
        except AnswerNotFound as error:
            problems.append(str(error))
            key = nbformat.v4.new_notebook()
            key.cells = [nbformat.v4.new_markdown_cell(texts["missing"].format(
                title=_title(source_notebook(path, language)), error=error))]
        nbformat.write(key, target)
        written.append(target)
        counts = [e.stars for e in cn.find_exercises(cn.read(path))]
        lines.append(texts["line"].format(name=target.name, count=len(counts),
                                          stars=", ".join("★" * s for s in counts)
                                          or texts["none"]))
    (out / "README.md").write_text(texts["readme"] + "\n".join(lines) + "\n", encoding="utf-8")
    return written, problems


# --------------------------------------------------------------------------------------------
# Checking: every check cell fails on the empty answer and passes on the filled one

#: Text a check cell prints first when the answer is right.
CORRECT = re.compile(r"^\s*Correct\b")
_STATEFUL = re.compile(r"\brng\b|default_rng|seed_everything|Generator|\bmake_\w+|keras\.|"
                       r"Sequential|[Ee]ngine|[Aa]ccountant")


def needed_cells(nb: nbformat.NotebookNode, exercise_sources: list[str], *,
                 stop: int | None = None) -> list[int]:
    """The code cells before the Exercises section (or before cell ``stop``) that the exercises'
    code (or any ``exercise_sources``) needs.

    A backward slice over names: a cell is kept when it binds a name that later kept code (or
    the exercises) reads, or changes such a name's object in place (``x[...] = ``,
    ``x.method()``, or passing a random generator or a model to a call, which may advance or
    train it); calling a function of an imported module does not count as changing the module.
    Cells that cannot be parsed (magics) are kept. The install cell is never run.
    """
    if stop is None:
        section = exercises_section(nb)
        stop = section[0] if section else len(nb.cells)
    needed = set()
    for source in exercise_sources:
        tree = cn.parse(source)
        needed |= cn.free_names(tree) if tree else set()
    stateful, modules = set(), set()
    candidates = []
    for index in range(stop):
        cell = nb.cells[index]
        if (cell.cell_type != "code" or not cell.source.strip()
                or "colab-install" in cell.metadata.get("tags", [])):
            continue
        tree = cn.parse(cell.source)
        candidates.append((index, tree))
        if tree is not None:
            for statement in tree.body:
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    modules |= cn.statement_binds(statement)
                elif _STATEFUL.search(ast.unparse(statement)):
                    stateful |= cn.statement_binds(statement)
    kept = []
    for index, tree in reversed(candidates):
        if tree is None:
            kept.append(index)
            continue
        touched = cn.touched_names(tree) - modules  # np.sum(...) does not change np
        changes = (cn.bound_names(tree) | {n for n in touched if n in stateful}
                   | {n for n in touched if _mutated_by_statement(tree, n)})
        if changes & needed:
            kept.append(index)
            # What this cell assigns outright, earlier cells need not provide (unless it also
            # reads it, as in x = x + 1).
            needed = (needed - _definitely_bound(tree)) | cn.free_names(tree)
    return sorted(kept)


def _definitely_bound(tree: ast.Module) -> set[str]:
    """Names a cell always rebinds: plain top-level assignments, defs and imports."""
    names = set()
    for statement in tree.body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.FunctionDef,
                                  ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                  ast.ImportFrom)):
            if isinstance(statement, ast.AnnAssign) and statement.value is None:
                continue
            names |= {n for n in cn.statement_binds(statement)}
        if isinstance(statement, ast.Assign):
            for target in statement.targets:  # x[...] = ... changes x, it does not rebind it
                if not isinstance(target, (ast.Name, ast.Tuple, ast.List)):
                    names -= cn.statement_binds(statement)
    return names


def _mutated_by_statement(tree: ast.Module, name: str) -> bool:
    """``name[...] = ...``, ``name.attr = ...`` or ``name.method(...)`` at top level."""
    for statement in tree.body:
        if isinstance(statement, (ast.Assign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) \
                else [statement.target]
            for target in targets:
                base = target
                while isinstance(base, (ast.Attribute, ast.Subscript)):
                    base = base.value
                if base is not target and isinstance(base, ast.Name) and base.id == name:
                    return True
        if (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
                and isinstance(statement.value.func, ast.Attribute)
                and isinstance(statement.value.func.value, ast.Name)
                and statement.value.func.value.id == name):
            return True
    return False


@dataclasses.dataclass
class CheckResult:
    """What one ★/★★ exercise's check cell said on the empty and on the filled answer."""

    notebook: str
    exercise: str
    empty_output: str
    filled_output: str
    empty_error: str | None
    filled_error: str | None

    @property
    def fails_on_empty(self) -> bool:
        return (self.empty_error is None and bool(self.empty_output.strip())
                and not CORRECT.match(self.empty_output))

    @property
    def passes_on_filled(self) -> bool:
        return self.filled_error is None and bool(CORRECT.match(self.filled_output))


def cell_output(cell) -> tuple[str, str | None]:
    """What a cell printed (stdout and displayed text) and its error, from its outputs."""
    text, error = [], None
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stdout":
            text.append(output.text)
        elif output.output_type == "error":
            error = f"{output.ename}: {output.evalue}"
        elif output.output_type in ("execute_result", "display_data"):
            text.append(output.get("data", {}).get("text/plain", ""))
    return "".join(text), error


def check_notebook(student_path: Path, *, timeout_s: int = 600,
                   full_prefix: bool = False) -> tuple[list[CheckResult], dict]:
    """Runs the check cells of one student-edition notebook on empty and filled answers.

    Returns:
        The results, and facts about the run (``cells_run``, ``prefix_cells``, ``mode``,
        ``seconds``).
    """
    import nbclient

    source_path = cn.NOTEBOOKS_DIR / student_path.name
    nb = cn.read(student_path)
    answers = answers_for(source_path, nb)
    if not answers:
        return [], {"cells_run": 0, "prefix_cells": 0, "mode": "none", "seconds": 0.0}
    exercise_code = []
    for answer in answers:
        exercise = answer.exercise
        exercise_code += [nb.cells[i].source for i in exercise.answer_cells]
        exercise_code += [nb.cells[exercise.check_cell].source, answer.source]
    section = exercises_section(nb)
    if full_prefix:
        prefix = [i for i in range(section[0]) if nb.cells[i].cell_type == "code"
                  and nb.cells[i].source.strip()
                  and "colab-install" not in nb.cells[i].metadata.get("tags", [])]
    else:
        prefix = needed_cells(nb, exercise_code)
    program = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    program.metadata.pop("widgets", None)
    roles = []
    for index in prefix:
        program.cells.append(nbformat.v4.new_code_cell(nb.cells[index].source))
        roles.append(("prefix", None))
    for number, answer in enumerate(answers):
        exercise = answer.exercise
        for index in exercise.answer_cells:
            program.cells.append(nbformat.v4.new_code_cell(nb.cells[index].source))
            roles.append(("empty-answer", number))
        program.cells.append(nbformat.v4.new_code_cell(nb.cells[exercise.check_cell].source))
        roles.append(("empty-check", number))
        program.cells.append(nbformat.v4.new_code_cell(answer.source))
        roles.append(("filled-answer", number))
        program.cells.append(nbformat.v4.new_code_cell(nb.cells[exercise.check_cell].source))
        roles.append(("filled-check", number))
    env = dict(os.environ, MPLBACKEND="agg", TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    client = nbclient.NotebookClient(program, timeout=timeout_s, kernel_name="python3",
                                     allow_errors=True,
                                     resources={"metadata": {"path": str(student_path.parent)}})
    client.execute(env=env)
    seconds = time.perf_counter() - start
    prefix_errors = [(cell_output(cell)[1], cell.source.splitlines()[0])
                     for cell, (role, _) in zip(program.cells, roles, strict=True)
                     if role == "prefix" and cell_output(cell)[1]]
    if prefix_errors and not full_prefix:
        results, facts = check_notebook(student_path, timeout_s=timeout_s, full_prefix=True)
        facts["slice_errors"] = prefix_errors
        return results, facts
    results = []
    for number, answer in enumerate(answers):
        outputs = {role: cell_output(cell) for cell, (role, n) in
                   zip(program.cells, roles, strict=True) if n == number}
        empty, empty_error = outputs["empty-check"]
        filled, filled_error = outputs["filled-check"]
        for role in ("empty-answer", "filled-answer"):
            if role in outputs and outputs[role][1]:
                error = f"the {role.split('-')[0]} answer cell raised {outputs[role][1]}"
                if role == "empty-answer":
                    empty_error = empty_error or error
                else:
                    filled_error = filled_error or error
        results.append(CheckResult(notebook=student_path.name, exercise=answer.exercise.title,
                                   empty_output=empty, filled_output=filled,
                                   empty_error=empty_error, filled_error=filled_error))
    return results, {"cells_run": len(program.cells), "prefix_cells": len(prefix),
                     "mode": "full prefix" if full_prefix else "slice",
                     "seconds": round(seconds, 1), "prefix_errors": prefix_errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="after building, run every ★/★★ check cell on the empty and on "
                             "the filled answer")
    parser.add_argument("--out", type=Path, default=BUILD,
                        help="folder for student/ and answer_key/ (default: build/; the "
                             "Chinese edition goes into its zh-CN/ subfolder)")
    parser.add_argument("--language", choices=LANGUAGES, default="en",
                        help="which edition to build (default: en)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    student_dir, key_dir = edition_dirs(args.language, args.out)
    notebooks = build_student_edition(student_dir, args.language)
    key, problems = build_answer_key(key_dir, args.language)
    print(f"student edition ({args.language}): {len(notebooks)} notebooks in {student_dir}; "
          f"answer key: {len(key)} notebooks in {key_dir} "
          f"({time.perf_counter() - start:.1f} s)")
    for problem in problems:
        print(f"answer key: {problem}", file=sys.stderr)
    if not args.check:
        return 1 if problems else 0
    failures = len(problems)
    for path in notebooks:
        try:
            results, facts = check_notebook(path)
        except AnswerNotFound:
            continue  # reported above
        print(f"{path.name}: {json.dumps(facts)}")
        for result in results:
            ok = result.fails_on_empty and result.passes_on_filled
            failures += not ok
            print(f"  {'ok  ' if ok else 'FAIL'} {result.exercise}\n"
                  f"       empty:  {(result.empty_error or result.empty_output).strip()[:110]}\n"
                  f"       filled: {(result.filled_error or result.filled_output).strip()[:110]}")
    print(f"{failures} exercise(s) failed the check ({time.perf_counter() - start:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
