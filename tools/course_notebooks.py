"""What the classroom tools know about the course's notebooks: where they are, their exercises,
and the header (Open in Colab / launch Binder links and the Colab install cell) the builds add.

The notebooks are read, never written: the student edition and the website are built from copies.
Everything is discovered by globbing ``notebooks/NN_*.ipynb`` (or ``NNx_*``: two digits and at most
one lower-case letter, e.g. ``04b_``, a second part of notebook 04), so notebooks added later are
picked up without changing this file. Sorted by name, ``04_`` comes before ``04b_`` (``_`` sorts
before the letters) and ``04b_`` before ``05_``: teaching order.

Exercises follow the house style (``/work/shared/STYLE.md``, "A notebook", item 7): under the
``## Exercises`` heading, each exercise starts with a heading of any level below it whose text
holds one to three stars (★ predict, ★★ modify, ★★★ design). A ★ or ★★ exercise has one or more
*answer cells* (code the student completes) followed by one *check cell* (code that prints
whether the answer is right). The check cell is the code cell whose first line is
``# Check cell`` or, when no cell says so, the exercise's last code cell.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"
DOCS_DIR = REPO / "docs"
CONFIG_PATH = DOCS_DIR / "_config.yml"

#: Tags of the Colab install cell. ``nbval-skip`` makes nbval (and so CI) skip it; the
#: classroom tools skip ``colab-install`` cells when they execute notebooks.
INSTALL_CELL_TAGS = ["colab-install", "nbval-skip"]
#: Cells tagged so are dropped from the student edition (for notebooks that keep a worked answer
#: inline; the course's notebooks keep theirs in notebooks/solutions/).
SOLUTION_TAGS = {"solution", "remove-student"}

_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_STAR = "★"


#: A course notebook's file name starts with its number: two digits and at most one lower-case
#: letter (``04_``, ``04b_``), then ``_``.
NUMBERED = re.compile(r"^\d\d[a-z]?_")


def numbered(folder: Path, pattern: str = "*.ipynb") -> list[Path]:
    """The files of ``folder`` matching ``pattern`` whose name starts with a notebook number
    (``NN_`` or ``NNx_``), sorted by name, which is teaching order."""
    return sorted(path for path in folder.glob(pattern) if NUMBERED.match(path.name))


def main_notebooks() -> list[Path]:
    """The course's notebooks, in teaching order (``notebooks/NN_*.ipynb``, ``NNx_*.ipynb``)."""
    return numbered(NOTEBOOKS_DIR)


def solutions_notebook(notebook: Path) -> Path | None:
    """The solutions notebook of ``notebook`` (``notebooks/solutions/NN_..._solutions.ipynb``)."""
    path = SOLUTIONS_DIR / f"{notebook.stem}_solutions.ipynb"
    return path if path.is_file() else None


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def repository() -> dict[str, str]:
    """The GitHub repository the links point to, from ``docs/_config.yml`` (``repository:``).

    Returns:
        ``{"url": "https://github.com/OWNER/NAME", "owner_name": "OWNER/NAME", "branch": ...}``.
    """
    config = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    repo = config["repository"]
    url = repo["url"].rstrip("/")
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", url)
    if not match:
        raise ValueError(f"repository.url in {CONFIG_PATH} must be https://github.com/OWNER/NAME, "
                         f"got {url!r}.")
    return {"url": url, "owner_name": match.group(1), "branch": repo.get("branch", "main")}


# --------------------------------------------------------------------------------------------
# The header: Open in Colab / launch Binder, and the Colab install cell


def launch_links(notebook_relpath: str) -> str:
    """The markdown line of badges for one notebook, e.g. ``notebooks/00_x.ipynb``."""
    repo = repository()
    colab = (f"https://colab.research.google.com/github/{repo['owner_name']}/blob/"
             f"{repo['branch']}/{notebook_relpath}")
    binder = (f"https://mybinder.org/v2/gh/{repo['owner_name']}/{repo['branch']}"
              f"?labpath={notebook_relpath.replace('/', '%2F')}")
    return (f"[Open in Colab]({colab}) · [Launch Binder]({binder}) · "
            f"[View on GitHub]({repo['url']}/blob/{repo['branch']}/{notebook_relpath})")


def install_cell_source() -> str:
    """The Colab install cell: does nothing outside Colab; on Colab fetches the course once.

    It clones the repository (which ships the MNIST files in ``data/``, so nothing else is
    downloaded), installs the one library Colab lacks at the version the course pins, puts
    ``fl_helpers`` on the path, points it at the data and turns on Colab's widget manager.
    """
    repo = repository()
    return f'''\
# Set-up for Google Colab only: run this cell first there. Anywhere else it does nothing.
import os, subprocess, sys
if "google.colab" in sys.modules:
    COURSE = "/content/fl-privacy-course"
    if not os.path.isdir(COURSE):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{repo['branch']}",
                        "{repo['url']}.git", COURSE],
                       check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "dp-accounting==0.6.0"],
                       check=True)
    sys.path.insert(0, COURSE)  # import fl_helpers from the clone
    os.environ["FL_DATA_DIR"] = os.path.join(COURSE, "data")  # the MNIST files it ships
    os.chdir(os.path.join(COURSE, "notebooks"))  # relative paths work as at home
    from google.colab import output
    output.enable_custom_widget_manager()  # the Try it widgets'''


def has_header(nb: nbformat.NotebookNode) -> bool:
    """Whether the notebook already carries the links and the install cell (then keep them)."""
    tagged = any("colab-install" in cell.metadata.get("tags", []) for cell in nb.cells)
    linked = any(cell.cell_type == "markdown" and "colab.research.google.com/github" in cell.source
                 for cell in nb.cells[:4])
    return tagged and linked


def with_header(nb: nbformat.NotebookNode, notebook_relpath: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the launch links and the install cell after its title cell."""
    nb = copy.deepcopy(nb)
    if has_header(nb):
        return nb
    links = nbformat.v4.new_markdown_cell(
        launch_links(notebook_relpath)
        + "\n\n*On Colab, run the set-up cell below first (about a minute); on Binder and on "
          "your own machine it does nothing.*")
    links.metadata["tags"] = ["launch-links"]
    install = nbformat.v4.new_code_cell(install_cell_source())
    install.metadata["tags"] = list(INSTALL_CELL_TAGS)
    title = next((i for i, cell in enumerate(nb.cells)
                  if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# ")), -1)
    nb.cells[title + 1:title + 1] = [links, install]
    for cell in nb.cells:  # new cells need ids in nbformat >= 4.5
        cell.setdefault("id", nbformat.v4.new_code_cell().id)
    return nb


# --------------------------------------------------------------------------------------------
# Exercises


@dataclasses.dataclass
class Exercise:
    """One exercise of a notebook, as cell indices into that notebook.

    Attributes:
        title: The heading's text, e.g. ``"★ Predict: how many steps?"``.
        stars: 1 (predict), 2 (modify) or 3 (design).
        heading_cell: Index of the markdown cell with the heading.
        end_cell: Index one past the exercise's last cell.
        answer_cells: Code cells the student completes (★/★★ only).
        check_cell: The code cell that tells whether the answer is right (★/★★ only).
        code_cells: Every code cell of the exercise (★★★ exercises may give code too).
    """

    title: str
    stars: int
    heading_cell: int
    end_cell: int
    answer_cells: list[int]
    check_cell: int | None
    code_cells: list[int]


def _first_heading(source: str) -> tuple[int, str] | None:
    fenced = False
    for line in source.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            return len(match.group(1)), match.group(2)
    return None


def _all_headings(source: str) -> list[tuple[int, str]]:
    found, fenced = [], False
    for line in source.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def exercise_statement(nb: nbformat.NotebookNode, exercise: Exercise) -> str:
    """The markdown of the exercise's first cell, from its starred heading on."""
    lines = nb.cells[exercise.heading_cell].source.splitlines()
    for number, line in enumerate(lines):
        match = _HEADING.match(line)
        if match and match.group(2) == exercise.title:
            return "\n".join(lines[number:])
    return nb.cells[exercise.heading_cell].source


def exercises_section(nb: nbformat.NotebookNode) -> tuple[int, int] | None:
    """``(first, end)`` cell indices of the ``## Exercises`` section, or None."""
    start = level = None
    for index, cell in enumerate(nb.cells):
        heading = _first_heading(cell.source) if cell.cell_type == "markdown" else None
        if heading is None:
            continue
        if start is None and heading[1].strip().lower() == "exercises":
            start, level = index, heading[0]
        elif start is not None and heading[0] <= level:
            return start, index
    return (start, len(nb.cells)) if start is not None else None


def find_exercises(nb: nbformat.NotebookNode) -> list[Exercise]:
    """The exercises of a notebook, in order (empty if it has no Exercises section)."""
    section = exercises_section(nb)
    if section is None:
        return []
    first, end = section
    starts = []
    for index in range(first, end):
        cell = nb.cells[index]
        if cell.cell_type != "markdown":
            continue
        starred = [title for _, title in _all_headings(cell.source) if _STAR in title]
        if starred:
            starts.append((index, starred[0]))
    found = []
    for number, (start, title) in enumerate(starts):
        stop = starts[number + 1][0] if number + 1 < len(starts) else end
        stars = min(title.count(_STAR), 3)
        code = [i for i in range(start + 1, stop)
                if nb.cells[i].cell_type == "code" and nb.cells[i].source.strip()
                and "colab-install" not in nb.cells[i].metadata.get("tags", [])]
        answers, check = [], None
        if stars <= 2 and code:
            marked = [i for i in code
                      if nb.cells[i].source.lstrip().lower().startswith("# check cell")]
            check = marked[0] if marked else code[-1]
            answers = [i for i in code if i < check]
        found.append(Exercise(title=title, stars=stars, heading_cell=start, end_cell=stop,
                              answer_cells=answers, check_cell=check, code_cells=code))
    return found


def solution_sections(nb: nbformat.NotebookNode) -> list[tuple[str, int, int]]:
    """``(title, first, end)`` of each starred section of a solutions notebook, in order."""
    starts = []
    for index, cell in enumerate(nb.cells):
        heading = _first_heading(cell.source) if cell.cell_type == "markdown" else None
        if heading and _STAR in heading[1]:
            starts.append((index, heading[0], heading[1]))
    sections = []
    for number, (start, level, title) in enumerate(starts):
        stop = len(nb.cells)
        if number + 1 < len(starts):
            stop = starts[number + 1][0]
        for index in range(start + 1, stop):  # a later heading of the same level ends it too
            heading = (_first_heading(nb.cells[index].source)
                       if nb.cells[index].cell_type == "markdown" else None)
            if heading and heading[0] <= level:
                stop = index
                break
        sections.append((title, start, stop))
    return sections


# --------------------------------------------------------------------------------------------
# Names: what a piece of code binds and what it reads (for slicing and for answer cells)


def _targets(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
    return names


def bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds at top level (assignments, defs, classes, imports, loops, with)."""
    names: set[str] = set()
    for statement in tree.body:
        names |= statement_binds(statement)
    return names


def statement_binds(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        names = set()
        for target in targets:
            names |= _targets(target)
        return names
    names = set()
    for sub in ast.walk(statement):  # for/with/try/if blocks and walrus
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in sub.names}
    return names


def used_names(node: ast.AST) -> set[str]:
    """Every name read anywhere in ``node`` (a superset of its free names; good enough here)."""
    return {sub.id for sub in ast.walk(node)
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}


def _local_names(node: ast.AST) -> set[str]:
    """Names stored anywhere inside ``node`` (locals of a function, comprehension targets)."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in sub.names}
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names


def _reads(node: ast.AST) -> set[str]:
    """Names ``node`` reads from the scope it runs in (not its own locals or parameters)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        outer = set()
        for default in [*node.args.defaults, *filter(None, node.args.kw_defaults)]:
            outer |= _reads(default)
        for decorator in getattr(node, "decorator_list", []):
            outer |= _reads(decorator)
        body = node.body if isinstance(node.body, list) else [node.body]
        inner = set()
        for statement in body:
            inner |= _reads(statement)
        return outer | (inner - _local_names(node))
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        targets = set()
        for generator in node.generators:
            targets |= _targets(generator.target)
        reads = set()
        for child in ast.iter_child_nodes(node):
            reads |= _reads(child)
        return reads - targets
    if isinstance(node, ast.Name):
        return {node.id} if isinstance(node.ctx, ast.Load) else set()
    reads = set()
    for child in ast.iter_child_nodes(node):
        reads |= _reads(child)
    return reads


def free_names(tree: ast.Module) -> set[str]:
    """Names a cell reads before (or without) binding them itself: what it needs from earlier
    cells. Statement by statement, so ``x = 1; print(x)`` needs nothing."""
    return _free_in(tree.body, set())


def _free_in(statements: list[ast.stmt], bound: set[str]) -> set[str]:
    """Free names of a statement list run in order; ``bound`` grows as names get bound. Blocks
    (if/for/while/with/try) are read statement by statement too."""
    free = set()
    for statement in statements:
        blocks = [getattr(statement, name) for name in ("body", "orelse", "finalbody")
                  if isinstance(getattr(statement, name, None), list)]
        if isinstance(statement, ast.Try) or (hasattr(ast, "TryStar")
                                              and isinstance(statement, ast.TryStar)):
            blocks += [handler.body for handler in statement.handlers]
            for handler in statement.handlers:
                if handler.type is not None:
                    free |= _reads(handler.type) - bound
                if handler.name:
                    bound.add(handler.name)
        if blocks and not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.ClassDef)):
            for header in ("test", "iter", "items"):  # evaluated before the block
                value = getattr(statement, header, None)
                for part in value if isinstance(value, list) else [value]:
                    if isinstance(part, ast.withitem):
                        free |= _reads(part.context_expr) - bound
                        if part.optional_vars is not None:
                            bound |= _targets(part.optional_vars)
                    elif part is not None:
                        free |= _reads(part) - bound
            if isinstance(statement, (ast.For, ast.AsyncFor)):
                bound |= _targets(statement.target)
            for block in blocks:
                free |= _free_in(block, bound)
        else:
            free |= _reads(statement) - bound
        bound |= statement_binds(statement)
    return free


def touched_names(node: ast.AST) -> set[str]:
    """Names whose object ``node`` may change in place: ``x.attr = ...``, ``x[...] = ...``,
    ``x += ...``, ``x.method(...)``, and every name passed to a call as an argument."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Attribute, ast.Subscript)) and isinstance(sub.ctx, ast.Store):
            base = sub.value
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if isinstance(base, ast.Name):
                names.add(base.id)
        elif isinstance(sub, ast.Call):
            if isinstance(sub.func, ast.Attribute) and isinstance(sub.func.value, ast.Name):
                names.add(sub.func.value.id)
            for arg in [*sub.args, *(keyword.value for keyword in sub.keywords)]:
                if isinstance(arg, ast.Name):
                    names.add(arg.id)
    return names


def parse(source: str) -> ast.Module | None:
    """Parses a code cell; None for cells that are not plain Python (magics, shell escapes)."""
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def is_placeholder(source: str) -> bool:
    """Whether an answer cell is still empty: every value it binds is ``None``, and every
    function it defines only has a docstring and ``return None``, ``pass``, ``...`` or
    ``raise NotImplementedError(...)``."""
    tree = parse(source)
    if tree is None:
        return False
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            if not (isinstance(statement.value, ast.Constant) and statement.value.value is None):
                return False
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = statement.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            if len(body) != 1 or not _is_stub(body[0]):
                return False
        elif not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
            return False
    return True


def _is_stub(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return statement.value.value is Ellipsis
    if isinstance(statement, ast.Return):
        return statement.value is None or (isinstance(statement.value, ast.Constant)
                                           and statement.value.value is None)
    if isinstance(statement, ast.Raise) and statement.exc is not None:
        exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def placeholder_for(source: str) -> str:
    """An emptied answer cell: assignments become ``= None``, function bodies a stub that keeps
    the signature and docstring. Used only for answer cells that are not placeholders already."""
    tree = parse(source)
    if tree is None:
        return "# Your answer here\n"
    lines = source.splitlines()
    pieces = []
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = statement.body[0]
            keep_to = statement.body[0].lineno - 1
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                keep_to = first.end_lineno
            header = "\n".join(lines[statement.lineno - 1 - len(statement.decorator_list):keep_to])
            indent = " " * (first.col_offset)
            pieces.append(f'{header}\n{indent}raise NotImplementedError("Exercise: write this '
                          'function.")\n')
        elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
            for name in sorted(statement_binds(statement)):
                pieces.append(f"{name} = None  # your answer\n")
    return "\n\n".join(pieces) if pieces else "# Your answer here\n"
