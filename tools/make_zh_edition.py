"""Generates the Simplified Chinese edition (简体中文版) of the course from the English notebooks.

    .venv/bin/python -m tools.make_zh_edition            # write notebooks/zh-CN/ from the stores
    .venv/bin/python -m tools.make_zh_edition --check    # report what is stale, missing or differs
    .venv/bin/python -m tools.make_zh_edition --sync 01  # add/refresh store entries for 01's cells
    .venv/bin/python -m tools.make_zh_edition --sync solutions/01  # the same for its solutions

The English notebooks are the source; nothing in ``notebooks/zh-CN/`` is edited by hand.

Where things are (``NN_topic`` is the notebook's name, e.g. ``04b_dp_fedavg_at_scale``)::

    English notebook           notebooks/NN_topic.ipynb
      its store                translations/zh-CN/NN_topic.yml
      its Chinese edition      notebooks/zh-CN/NN_topic.ipynb
    English solutions          notebooks/solutions/NN_topic_solutions.ipynb
      its store                translations/zh-CN/solutions/NN_topic_solutions.yml
      its Chinese edition      notebooks/zh-CN/solutions/NN_topic_solutions.ipynb

A notebook (main or solutions) is translated exactly when it has a store; ``--sync NN`` or
``--sync solutions/NN`` creates it. ``--check`` and the build cover both kinds; everything below
holds for both.

A *translation store* lists, in the notebook's order, one entry per English markdown cell::

    - cell: <the English cell's id>        # where it is, for the reader of the store
      hash: <first 16 hex digits of the SHA-256 of the English source>
      en: |-                                # the English text it translates, for review
        ...
      zh: |-                                # the translation
        ...

The generator copies the English notebook (code cells, outputs, cell ids and metadata, notebook
metadata) and replaces each markdown cell's source by the ``zh`` of the entry whose ``hash`` is the
hash of that cell's English source. It refuses when an English cell has no such entry: its English
text changed since it was translated (the entry is *stale*) or it was never translated (*missing*).
``--sync`` then adds an entry with an empty ``zh`` for each such cell, keeping an old translation of
the same cell id under ``stale_zh`` and its old English under ``stale_en``, so that the translator
sees what changed; the entry counts as missing until its ``zh`` is filled in and the ``stale_*``
keys are deleted.

Cells are added that the English notebook does not have (markdown only, so the code cells stay
those of the English notebook, in the same order): after the title cell of every Chinese
notebook, a note that the notebook is generated and what stays English (cell id
``zh-edition-note``, text in ``translations/zh-CN/edition.yml``); in notebook 00, after the cell
named by ``glossary_after`` in that file, the glossary table (cell id ``zh-glossary``, rendered
from ``translations/zh-CN/glossary.yml``); and the *extra cells* that ``edition.yml`` lists
under ``extra_cells``, for what teaches only in the Chinese edition (e.g. a contrast with a
Chinese textbook)::

    extra_cells:
    - notebook: 04_multi_client_experiment.ipynb   # or solutions/NN_topic_solutions.ipynb
      after: 7d516a4b                    # the English cell (markdown or code) it follows
      id: zh-contrast-clipping           # its own cell id: starts with "zh-", unique
      zh: |-                             # the cell's markdown, links written as in English
        ...

The generator refuses (ValueError naming it) an extra cell whose ``after`` is not a cell of
that notebook or whose ``id`` does not start with ``zh-`` or repeats. An extra cell has no
English text to be stale against; the tests check its links and glossary terms like any other
translated cell's. Solutions notebooks get the note too.

Links: a translation writes a link exactly as the English cell does (``01_x.ipynb``,
``../docs/applications.md``, ``solutions/01_x_solutions.ipynb`` in a notebook;
``../01_x.ipynb`` in a solutions notebook). The generator resolves it from the English notebook's
folder and points it from the Chinese notebook's folder (``notebooks/zh-CN/`` or
``notebooks/zh-CN/solutions/``): to the Chinese edition when the target notebook or solutions
notebook is translated, otherwise to the English file. So a link switches to Chinese by itself
when its target gets translated, in both directions (notebook → solutions, solutions →
notebook). Paths in backticks (```notebooks/solutions/01_x_solutions.ipynb```) are text, not
links, and are left as written.

Code comments (optional): a store may also hold an entry for a code cell that has ``#``
comments; ``--sync`` adds one, with an empty ``zh``, for every such cell (and none for cells
without comments)::

    - cell: <the English code cell's id>
      kind: code                            # markdown entries have no kind
      hash: <SHA-256 of the English code, 16 hex digits>
      en: |-                                # the English code
        ...
      zh: |-                                # the SAME code, only the # comments translated
        ...

To translate, copy ``en`` into ``zh`` and translate the text after each ``#``; nothing else may
change: the code with its comments cut out (and the blanks before them; a comment-only line may be
added or removed) must be the English code character for character, so what executes and the
stored outputs stay the English ones (``tests/test_zh_edition.py`` also compares the ``tokenize``
tokens without comments). Keep the comments tools read: a first line ``# Check cell`` (write
``# Check cell：检查你的答案``), ``# noqa``, ``# type:``, ``# pragma``, ``# fmt:``; keep the
comments' numbers. Docstrings and strings are code: they stay English. A translation that breaks
these rules makes ``--check``, the tests and the build fail, naming the cell.

A code entry with an empty ``zh`` is not an error: the cell keeps its English comments. When the
English code changes, its entry no longer matches any cell (it is *stale*): the generator ignores
it and the cell keeps its new English code and comments, so the usual regeneration
(``.venv/bin/python -m tools.make_zh_edition``) is all an edit of English code needs and the tests
stay green. ``--check`` prints such entries as ``note:`` lines (they do not fail it), and
``--sync`` turns each into a fresh entry with the old translation under ``stale_zh`` (or drops it
when the cell is gone or lost its comments).

First edition: printed tables, widget labels and plot labels stay English (the outputs are the
English ones, byte for byte; see the README's 简体中文版 section).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import posixpath
import re
import sys
import tokenize
import unicodedata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python tools/make_zh_edition.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat
import yaml

from tools import course_notebooks as cn

LANGUAGE = "zh-CN"
STORE_DIR = cn.REPO / "translations" / LANGUAGE
OUT_DIR = cn.NOTEBOOKS_DIR / LANGUAGE
EDITION_FILE = STORE_DIR / "edition.yml"
GLOSSARY_FILE = STORE_DIR / "glossary.yml"
NOTE_ID = "zh-edition-note"
GLOSSARY_ID = "zh-glossary"
EXTRA_IDS = (NOTE_ID, GLOSSARY_ID)  # and the ids of edition.yml's extra_cells: extra_ids()

# --------------------------------------------------------------------------------------------
# The store


def cell_hash(source: str) -> str:
    """The key of an English markdown cell: the first 16 hex digits of SHA-256 of its source."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def is_solutions(notebook: Path) -> bool:
    """Whether ``notebook`` is a solutions notebook (``NN_topic_solutions.ipynb``)."""
    return notebook.stem.endswith("_solutions")


def _subfolder(notebook: Path) -> str:
    return "solutions/" if is_solutions(notebook) else ""


def store_path(notebook: Path) -> Path:
    """``translations/zh-CN/NN_topic.yml``; for a solutions notebook
    ``translations/zh-CN/solutions/NN_topic_solutions.yml``."""
    return STORE_DIR / f"{_subfolder(notebook)}{notebook.stem}.yml"


def translated_notebooks() -> list[Path]:
    """The English main notebooks that have a translation store, in teaching order."""
    return [path for path in cn.main_notebooks() if store_path(path).is_file()]


def translated_solutions() -> list[Path]:
    """The English solutions notebooks that have a translation store, in teaching order."""
    return [path for path in cn.numbered(cn.SOLUTIONS_DIR) if store_path(path).is_file()]


def all_translated() -> list[Path]:
    """Every English notebook with a store: the main notebooks, then the solutions."""
    return translated_notebooks() + translated_solutions()


def output_path(notebook: Path) -> Path:
    """``notebooks/zh-CN/NN_topic.ipynb``; for a solutions notebook
    ``notebooks/zh-CN/solutions/NN_topic_solutions.ipynb``."""
    return OUT_DIR / f"{_subfolder(notebook)}{notebook.name}"


def english_relpath(notebook: Path) -> str:
    """Where the English notebook lives, relative to the repository (also for a copy elsewhere):
    ``notebooks/NN_topic.ipynb`` or ``notebooks/solutions/NN_topic_solutions.ipynb``."""
    return f"notebooks/{_subfolder(notebook)}{notebook.name}"


def sync_name(notebook: Path) -> str:
    """The spelling of ``notebook`` for ``--sync``: ``04b`` or ``solutions/04b``."""
    return _subfolder(notebook) + notebook.name.split("_")[0]


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks, so that the store reads like the text."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)

_STORE_HEADER = """\
# Translation store of {name} (简体中文). Generated entries, hand-written "zh" texts.
# Key: "hash" is the SHA-256 (16 hex digits) of the English markdown cell "en". After changing
# "zh", run: .venv/bin/python -m tools.make_zh_edition   (see tools/make_zh_edition.py)
"""


def read_entries(path: Path, key: str) -> list[dict]:
    """The list ``key`` (``"cells"``, or ``"blocks"`` for a document) of a translation store."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ValueError(f"{path}: expected a mapping with a list {key!r}, got {type(data)}.")
    return data[key]


def write_entries(path: Path, header: str, source: str, key: str, entries: list[dict]) -> None:
    """Writes a translation store: ``header`` (comment lines), then ``source`` and ``key``'s
    entries, multi-line texts as literal blocks."""
    text = yaml.dump({"source": source, key: entries}, Dumper=_Dumper,
                     allow_unicode=True, sort_keys=False, width=1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + text, encoding="utf-8")


def load_store(path: Path) -> list[dict]:
    return read_entries(path, "cells")


def write_store(path: Path, notebook: Path, entries: list[dict]) -> None:
    write_entries(path, _STORE_HEADER.format(name=notebook.name), english_relpath(notebook),
                  "cells", entries)


def kind(entry: dict) -> str:
    """``"markdown"`` (entries without ``kind``, as in the first stores) or ``"code"``."""
    return entry.get("kind", "markdown")


def translations(entries: list[dict], of: str = "markdown") -> dict[str, str]:
    """hash -> Chinese text, for the entries of kind ``of`` (``"markdown"`` or ``"code"``) that
    are complete (a ``zh`` and no ``stale_*``)."""
    return {entry["hash"]: entry["zh"] for entry in entries
            if kind(entry) == of and entry.get("zh")
            and not any(key.startswith("stale_") for key in entry)}


# --------------------------------------------------------------------------------------------
# Code comments

#: Comments that tools read: the student edition finds a check cell by its first line
#: ``# Check cell``; linters and type checkers read ``noqa``, ``type:``, ``pragma``, ``fmt:``. A
#: translation keeps them (it may add Chinese after them: ``# Check cell：检查你的答案``).
_MARKER = re.compile(r"#\s*(check cell|noqa|type:|pragma|fmt:)", re.IGNORECASE)


def comments(source: str) -> list[str] | None:
    """The ``#`` comments of a code cell, in order; None when ``tokenize`` cannot read the cell
    (IPython magics or shell escapes that are not Python)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    return [token.string for token in tokens if token.type == tokenize.COMMENT]


def code_without_comments(source: str) -> str | None:
    """A code cell's text with its ``#`` comments cut out: each comment and the blanks before it
    are removed, and a line that held only a comment goes. Two cells that are equal after this
    differ in comments only (same code, same layout); None when ``tokenize`` cannot read it."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    cut = {token.start[0]: token.start[1] for token in tokens if token.type == tokenize.COMMENT}
    kept = []
    for number, line in enumerate(source.split("\n"), start=1):
        if number in cut:
            line = line[:cut[number]].rstrip()
            if not line:
                continue
        kept.append(line)
    return "\n".join(kept)


def code_problem(english: str, chinese: str) -> str | None:
    """Why ``chinese`` is not a translation of the comments of the code cell ``english``, or None.

    It must be the same code with the same layout once comments are cut out
    (:func:`code_without_comments`), keep the comments that tools read (``# Check cell`` first,
    ``noqa``, ``type:``, ...) and keep the comments' numbers."""
    ours, theirs = code_without_comments(chinese), code_without_comments(english)
    if theirs is None:
        return "the English cell is not plain Python; its comments cannot be translated"
    if ours != theirs:
        return "code differs: only the # comments may change (same code, same layout)"
    markers = [[m.group(1).lower() for m in map(_MARKER.match, found or []) if m]
               for found in (comments(english), comments(chinese))]
    if markers[0] != markers[1]:
        return f"comments that tools read differ: English {markers[0]}, Chinese {markers[1]}"
    first = [text.lstrip().lower().startswith("# check cell") for text in (english, chinese)]
    if first[0] != first[1]:
        return "the first line must stay '# Check cell' (the student edition looks for it)"
    if numbers(english) != numbers(chinese):
        return f"numbers differ: English {numbers(english)}, Chinese {numbers(chinese)}"
    return None


def _rel(path: Path) -> str:
    return path.relative_to(cn.REPO).as_posix() if path.is_relative_to(cn.REPO) else str(path)


def markdown_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "markdown"]


def sync_store(notebook: Path) -> list[str]:
    """Brings the store of ``notebook`` in step with its English markdown cells and its code
    cells that have ``#`` comments.

    Entries whose hash matches a cell are kept; every other such cell gets an entry with an empty
    ``zh`` (and, when the store held a translation of a cell with the same id, that translation as
    ``stale_zh`` beside its old English ``stale_en``). Entries of cells that no longer exist are
    dropped. Returns one line per markdown cell that needs a translator, and one line counting
    the code cells whose comments are still English (optional).
    """
    path = store_path(notebook)
    old = load_store(path) if path.is_file() else []
    by_hash = {(kind(entry), entry["hash"]): entry for entry in old}
    by_id = {entry.get("cell"): entry for entry in old}
    entries, todo, code_todo = [], [], 0
    for cell in cn.read(notebook).cells:
        if cell.cell_type == "code" and not comments(cell.source):
            continue
        if cell.cell_type not in ("markdown", "code"):
            continue
        of, key = cell.cell_type, cell_hash(cell.source)
        if (of, key) in by_hash:
            entry = dict(by_hash[of, key], cell=cell.get("id"))
        else:
            entry = {"cell": cell.get("id"), "hash": key, "en": cell.source, "zh": ""}
            if of == "code":
                entry["kind"] = "code"
            previous = by_id.get(cell.get("id"))
            if previous is not None and previous.get("zh") and kind(previous) == of:
                entry["stale_en"] = previous.get("stale_en", previous["en"])
                entry["stale_zh"] = previous.get("stale_zh", previous["zh"])
        entries.append({key: entry[key] for key in ("cell", "kind", "hash", "en", "zh",
                                                    "stale_en", "stale_zh") if key in entry})
        if entry["hash"] in translations([entry], of):
            continue
        if of == "code":
            code_todo += 1
        else:
            todo.append(f"{_rel(path)}: cell {cell.get('id')} needs a translation"
                        + (" (its English changed: see stale_en)" if "stale_en" in entry else ""))
    write_store(path, notebook, entries)
    if code_todo:
        todo.append(f"{_rel(path)}: {code_todo} code cell(s) keep English comments (optional: "
                    "copy 'en' into 'zh' and translate the # comments only)")
    return todo


# --------------------------------------------------------------------------------------------
# Generating a Chinese notebook

_LINK = re.compile(r"(\]\(|<a\s+href=\"|src=\")([^)\"\s]+)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


def relink(text: str, translated: set[str], notebook: str = "notebooks/x.ipynb") -> str:
    """Points the relative links of a translation of ``notebook`` (written as in the English
    notebook, e.g. ``notebooks/solutions/01_x_solutions.ipynb``) from where its Chinese edition
    lives (``notebooks/zh-CN/`` or ``notebooks/zh-CN/solutions/``): to the Chinese edition of an
    English notebook in ``translated`` (repository-relative paths, e.g. ``notebooks/01_x.ipynb``),
    to the English file for anything else."""
    source = posixpath.dirname(notebook)
    target = posixpath.dirname(chinese_relpath(notebook))

    def point(match: re.Match) -> str:
        link = match.group(2)
        if _EXTERNAL.match(link):
            return match.group(0)
        file, hash_, fragment = link.partition("#")
        resolved = posixpath.normpath(posixpath.join(source, file))
        if resolved in translated:
            resolved = chinese_relpath(resolved)
        pointed = posixpath.relpath(resolved, target) + ("/" if file.endswith("/") else "")
        return f"{match.group(1)}{pointed}{hash_}{fragment}"
    return _LINK.sub(point, text)


def chinese_relpath(english: str) -> str:
    """``notebooks/X`` -> ``notebooks/zh-CN/X`` (repository-relative, posix)."""
    if not english.startswith("notebooks/"):
        raise ValueError(f"english must be a path under notebooks/, got {english!r}.")
    return f"notebooks/{LANGUAGE}/{english[len('notebooks/'):]}"


_CODE_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")


def code_spans(text: str) -> list[str]:
    """The inline code of a markdown text that sits on one line (```x```; a span that wraps,
    and fenced blocks, are left out), in order."""
    return [span for span in _CODE_SPAN.findall(text) if "\n" not in span]


def link_targets(text: str) -> list[str]:
    """The link targets of a markdown text (external ones included), in order."""
    return [match.group(2) for match in _LINK.finditer(text)]


def extra_cells(notebook: Path | None = None) -> list[dict]:
    """``edition.yml``'s ``extra_cells`` (all, or those of ``notebook``), checked."""
    cells = edition_texts().get("extra_cells") or []
    seen = set(EXTRA_IDS)
    for cell in cells:
        if not isinstance(cell, dict) or not {"notebook", "after", "id", "zh"} <= set(cell):
            raise ValueError(f"{EDITION_FILE.name}: each of extra_cells needs notebook, after, "
                             f"id and zh, got {cell!r}.")
        if not str(cell["id"]).startswith("zh-") or cell["id"] in seen:
            raise ValueError(f"{EDITION_FILE.name}: extra cell id must start with 'zh-' and be "
                             f"unique, got {cell['id']!r}.")
        seen.add(cell["id"])
    if notebook is None:
        return cells
    return [cell for cell in cells
            if f"notebooks/{cell['notebook']}" == english_relpath(notebook)]


def extra_ids() -> tuple[str, ...]:
    """The ids of every cell the generator adds (the note, the glossary, the extra cells)."""
    return EXTRA_IDS + tuple(cell["id"] for cell in extra_cells())


def edition_texts() -> dict:
    return yaml.safe_load(EDITION_FILE.read_text(encoding="utf-8"))


def glossary_markdown() -> str:
    """The glossary cell of notebook 00, rendered from ``translations/zh-CN/glossary.yml``."""
    data = yaml.safe_load(GLOSSARY_FILE.read_text(encoding="utf-8"))
    lines = [data["intro"].rstrip(), "", "| English | 中文术语 | 符号 | 说明 |",
             "|---|---|---|---|"]
    for term in data["terms"]:
        also = "”、“".join(term.get("also", []))
        note = "；".join(filter(None, [f"也作“{also}”" if also else "", term.get("note", "")]))
        symbol = term.get("symbol", "")
        lines.append(f"| {term['en']} | {term['zh']} | {symbol} | {note} |")
    return "\n".join(lines)


def _extra_cell(cell_id: str, source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    cell["id"] = cell_id
    return cell


def generate(notebook: Path, entries: list[dict] | None = None, *,
             relinked: bool = True) -> nbformat.NotebookNode:
    """The Chinese notebook of ``notebook`` as the store says it now.

    With ``relinked=False`` the links stay as the English notebook writes them, for a copy that
    sits where the English notebook sits (the Chinese student edition's ``notebooks/``).

    Raises:
        ValueError: naming every markdown cell without a current translation.
    """
    if entries is None:
        entries = load_store(store_path(notebook))
    english = cn.read(notebook)
    zh = translations(entries)
    problems = [f"cell {cell.get('id')} ({_first_line(cell.source)!r}): "
                + ("its English changed since it was translated (stale)"
                   if cell.get("id") in {e.get("cell") for e in entries} else "no translation")
                for cell in markdown_cells(english) if cell_hash(cell.source) not in zh]
    if problems:
        raise ValueError(f"{notebook.name}: {len(problems)} markdown cell(s) lack a current "
                         "translation; run `.venv/bin/python -m tools.make_zh_edition --sync "
                         f"{sync_name(notebook)}` and translate them:\n  "
                         + "\n  ".join(problems))
    here = english_relpath(notebook)
    translated = {english_relpath(path) for path in all_translated()} | {here}

    def point(text: str) -> str:
        return relink(text, translated, here) if relinked else text

    code = translations(entries, "code")
    wrong = [f"cell {cell.get('id')}: {code_problem(cell.source, code[cell_hash(cell.source)])}"
             for cell in english.cells if cell.cell_type == "code"
             and cell_hash(cell.source) in code
             and code_problem(cell.source, code[cell_hash(cell.source)])]
    if wrong:
        raise ValueError(f"{notebook.name}: {len(wrong)} code cell translation(s) change more "
                         "than comments:\n  " + "\n  ".join(wrong))
    nb = copy.deepcopy(english)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = point(zh[cell_hash(cell.source)])
        elif cell.cell_type == "code" and cell_hash(cell.source) in code:
            cell.source = code[cell_hash(cell.source)]
    texts = edition_texts()
    title = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown")
    nb.cells.insert(title + 1, _extra_cell(NOTE_ID, point(texts["note"].rstrip())))
    if here == f"notebooks/{texts['glossary_notebook']}":
        at = next((i for i, cell in enumerate(nb.cells)
                   if cell.get("id") == texts["glossary_after"]), None)
        if at is None:
            raise ValueError(f"{EDITION_FILE.name}: glossary_after names cell "
                             f"{texts['glossary_after']!r}, which {notebook.name} does not have.")
        nb.cells.insert(at + 1, _extra_cell(GLOSSARY_ID, glossary_markdown()))
    english_ids = {cell.get("id") for cell in english.cells}
    for extra in extra_cells(notebook):
        if extra["id"] in english_ids:
            raise ValueError(f"{EDITION_FILE.name}: extra cell id {extra['id']!r} is a cell id "
                             f"of {notebook.name} already.")
        at = next((i for i, cell in enumerate(nb.cells) if cell.get("id") == extra["after"]),
                  None)
        if at is None:
            raise ValueError(f"{EDITION_FILE.name}: extra cell {extra['id']!r} comes after cell "
                             f"{extra['after']!r}, which {notebook.name} does not have.")
        nb.cells.insert(at + 1, _extra_cell(extra["id"], point(extra["zh"].rstrip())))
    return nb


def _first_line(source: str) -> str:
    return source.strip().splitlines()[0][:60] if source.strip() else ""


def render(nb: nbformat.NotebookNode) -> str:
    """The file text, written as ``nbformat.write`` writes it (the English notebooks' format)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def build(notebooks: list[Path] | None = None) -> list[Path]:
    """Writes the Chinese edition of every translated notebook and solutions notebook
    (``notebooks/zh-CN/NN_topic.ipynb``, ``notebooks/zh-CN/solutions/NN_topic_solutions.ipynb``);
    returns them. Notebooks there without a store are deleted."""
    notebooks = all_translated() if notebooks is None else notebooks
    written = []
    for notebook in notebooks:
        path = output_path(notebook)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(generate(notebook)), encoding="utf-8")
        written.append(path)
    keep = {output_path(path) for path in all_translated()}
    for path in [*OUT_DIR.glob("*.ipynb"), *(OUT_DIR / "solutions").glob("*.ipynb")]:
        if path not in keep:
            path.unlink()
    return written


# --------------------------------------------------------------------------------------------
# Checks (the tests call these; --check prints them)

# A number: digits, optionally grouped by thousands (comma, thin or narrow no-break space), and
# optionally a decimal part.
_NUMBER = re.compile(r"\d{1,3}(?:[,\u2009\u202f]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def numbers(text: str) -> list[str]:
    """The numbers of a text, sorted, with thousands separators removed (``60,000`` -> ``60000``;
    full-width digits count as digits)."""
    text = unicodedata.normalize("NFKC", text)
    return sorted(re.sub(r"[,\u2009\u202f]", "", found) for found in _NUMBER.findall(text))


def problems(notebook: Path, entries: list[dict] | None = None,
             chinese: Path | None = None) -> list[str]:
    """Everything that is wrong with the translation of ``notebook``: stale or missing
    translations of markdown cells, entries whose hash is not their English, numbers, links or
    one-line inline code (names, paths, commands in backticks) that differ from the English
    cell's, code translations that change more than comments, and a
    Chinese notebook on disk that is not the generated one.

    A code entry that is missing or stale (its English code changed, so its hash matches no cell)
    is not a problem: the cell keeps its English comments. :func:`notes` lists the stale ones."""
    if entries is None:
        entries = load_store(store_path(notebook))
    found = []
    english = cn.read(notebook)
    hashes = {cell_hash(cell.source) for cell in markdown_cells(english)}
    complete = translations(entries)
    code = translations(entries, "code")
    for entry in entries:
        where = f"{notebook.name}, cell {entry.get('cell')}"
        if cell_hash(entry.get("en", "")) != entry.get("hash"):
            found.append(f"{where}: the entry's hash is not the hash of its 'en' text")
        if kind(entry) not in ("markdown", "code"):
            found.append(f"{where}: kind must be 'markdown' or 'code', got {kind(entry)!r}")
        if kind(entry) == "code":
            problem = code_problem(entry["en"], entry["zh"]) if entry["hash"] in code else None
            if problem:
                found.append(f"{where}: code translation: {problem}")
            continue
        if entry.get("hash") not in hashes:
            found.append(f"{where}: stale, no English cell has this text any more "
                         "(run --sync, then revise the translation)")
        if entry.get("hash") not in complete:
            continue
        if numbers(entry["en"]) != numbers(entry["zh"]):
            found.append(f"{where}: numbers differ: English {numbers(entry['en'])}, "
                         f"Chinese {numbers(entry['zh'])}")
        if sorted(link_targets(entry["en"])) != sorted(link_targets(entry["zh"])):
            found.append(f"{where}: links differ: English {link_targets(entry['en'])}, "
                         f"Chinese {link_targets(entry['zh'])}")
        lost = [span for span in code_spans(entry["en"]) if span not in code_spans(entry["zh"])]
        if lost:
            found.append(f"{where}: code spans differ: the translation lacks {lost} (names, "
                         "paths and commands in backticks stay as in English)")
    for cell in markdown_cells(english):
        if cell_hash(cell.source) not in complete:
            found.append(f"{notebook.name}, cell {cell.get('id')}: no current translation of "
                         f"{_first_line(cell.source)!r}")
    if found:
        return found
    chinese = output_path(notebook) if chinese is None else chinese
    if not chinese.is_file():
        return [f"{chinese.name}: not generated; run .venv/bin/python -m tools.make_zh_edition"]
    if chinese.read_text(encoding="utf-8") != render(generate(notebook, entries)):
        found.append(f"{_rel(chinese)}: differs from what the "
                     "generator writes now; run .venv/bin/python -m tools.make_zh_edition")
    return found


def notes(notebook: Path, entries: list[dict] | None = None) -> list[str]:
    """What ``--check`` mentions without failing: code entries that are stale (their English
    code changed or went, so the generator ignores them and the cell keeps its English comments;
    ``--sync`` turns them into a ``stale_zh`` for the translator or drops them)."""
    if entries is None:
        entries = load_store(store_path(notebook))
    hashes = {cell_hash(cell.source) for cell in cn.read(notebook).cells
              if cell.cell_type == "code"}
    return [f"{notebook.name}, cell {entry.get('cell')}: comment translation of code that "
            "changed; ignored (the cell keeps its English comments); run --sync to revise it"
            for entry in entries if kind(entry) == "code" and entry.get("zh")
            and entry.get("hash") not in hashes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="report problems (stale, missing, numbers, links, out of date)")
    parser.add_argument("--sync", nargs="+", metavar="NN",
                        help="create or refresh the stores of these notebooks (e.g. 02 04b "
                             "solutions/02)")
    args = parser.parse_args(argv)
    if args.sync:
        todo = []
        for number in args.sync:
            candidates = [*cn.main_notebooks(), *cn.numbered(cn.SOLUTIONS_DIR)]
            matches = [p for p in candidates if sync_name(p) == number.strip("/")]
            if not matches:
                parser.error(f"--sync: no notebook numbered {number!r} (expected NN or "
                             "solutions/NN, e.g. 04b or solutions/04b)")
            todo += sync_store(matches[0])
        print("\n".join(todo) or "every cell has a current translation")
        return 0
    if args.check:
        found = [line for path in all_translated() for line in problems(path)]
        for line in [line for path in all_translated() for line in notes(path)]:
            print(f"note: {line}")
        print("\n".join(found) or f"{len(translated_notebooks())} translated notebooks and "
              f"{len(translated_solutions())} translated solutions notebooks, all in step")
        return 1 if found else 0
    for path in build():
        print(f"wrote {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
