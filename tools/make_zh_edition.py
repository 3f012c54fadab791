"""Generates the Simplified Chinese edition (简体中文版) of the course from the English notebooks.

    .venv/bin/python -m tools.make_zh_edition            # write notebooks/zh-CN/ from the stores
    .venv/bin/python -m tools.make_zh_edition --check    # report what is stale, missing or differs
    .venv/bin/python -m tools.make_zh_edition --sync 01  # add/refresh store entries for 01's cells

The English notebooks are the source; nothing in ``notebooks/zh-CN/`` is edited by hand.

``translations/zh-CN/NN_topic.yml`` (one *translation store* per translated notebook; a notebook
is translated exactly when it has a store) lists, in the notebook's order, one entry per English
markdown cell::

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

Two kinds of cells are added that the English notebook does not have (markdown only, so the code
cells stay those of the English notebook, in the same order): after the title cell of every
Chinese notebook, a note that the notebook is generated and what stays English (cell id
``zh-edition-note``, text in ``translations/zh-CN/edition.yml``); and, in notebook 00, after the
cell named by ``glossary_after`` in that file, the glossary table (cell id ``zh-glossary``,
rendered from ``translations/zh-CN/glossary.yml``).

Links: a translation writes a link exactly as the English cell does (``01_x.ipynb``,
``../docs/applications.md``, ``solutions/01_x_solutions.ipynb``). The generator points it from
``notebooks/zh-CN/``: to the Chinese notebook when ``01_x`` is translated, otherwise to the English
file one folder up. So a link switches to Chinese by itself when its target gets translated.

First edition: code comments, printed tables, widget labels and plot labels stay English (the
code cells and their outputs are the English ones, byte for byte).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import sys
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
EXTRA_IDS = (NOTE_ID, GLOSSARY_ID)

# --------------------------------------------------------------------------------------------
# The store


def cell_hash(source: str) -> str:
    """The key of an English markdown cell: the first 16 hex digits of SHA-256 of its source."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def store_path(notebook: Path) -> Path:
    return STORE_DIR / f"{notebook.stem}.yml"


def translated_notebooks() -> list[Path]:
    """The English notebooks that have a translation store, in teaching order."""
    return [path for path in cn.main_notebooks() if store_path(path).is_file()]


def output_path(notebook: Path) -> Path:
    return OUT_DIR / notebook.name


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


def load_store(path: Path) -> list[dict]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{path}: expected a mapping with a list 'cells', got {type(data)}.")
    return data["cells"]


def write_store(path: Path, notebook: Path, entries: list[dict]) -> None:
    text = yaml.dump({"source": f"notebooks/{notebook.name}", "cells": entries}, Dumper=_Dumper,
                     allow_unicode=True, sort_keys=False, width=1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_STORE_HEADER.format(name=notebook.name) + text, encoding="utf-8")


def translations(entries: list[dict]) -> dict[str, str]:
    """hash -> Chinese text, for the entries that are complete (a ``zh`` and no ``stale_*``)."""
    return {entry["hash"]: entry["zh"] for entry in entries
            if entry.get("zh") and not any(key.startswith("stale_") for key in entry)}


def _rel(path: Path) -> str:
    return path.relative_to(cn.REPO).as_posix() if path.is_relative_to(cn.REPO) else str(path)


def markdown_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "markdown"]


def sync_store(notebook: Path) -> list[str]:
    """Brings the store of ``notebook`` in step with its English markdown cells.

    Entries whose hash matches a cell are kept; every other cell gets an entry with an empty
    ``zh`` (and, when the store held a translation of a cell with the same id, that translation as
    ``stale_zh`` beside its old English ``stale_en``). Entries of cells that no longer exist are
    dropped. Returns one line per cell that needs a translator.
    """
    path = store_path(notebook)
    old = load_store(path) if path.is_file() else []
    by_hash = {entry["hash"]: entry for entry in old}
    by_id = {entry.get("cell"): entry for entry in old}
    entries, todo = [], []
    for cell in markdown_cells(cn.read(notebook)):
        key = cell_hash(cell.source)
        if key in by_hash:
            entry = dict(by_hash[key], cell=cell.get("id"))
        else:
            entry = {"cell": cell.get("id"), "hash": key, "en": cell.source, "zh": ""}
            previous = by_id.get(cell.get("id"))
            if previous is not None and previous.get("zh"):
                entry["stale_en"] = previous.get("stale_en", previous["en"])
                entry["stale_zh"] = previous.get("stale_zh", previous["zh"])
        entries.append({key: entry[key] for key in ("cell", "hash", "en", "zh", "stale_en",
                                                    "stale_zh") if key in entry})
        if entry["hash"] not in translations([entry]):
            todo.append(f"{_rel(path)}: cell {cell.get('id')} needs a translation"
                        + (" (its English changed: see stale_en)" if "stale_en" in entry else ""))
    write_store(path, notebook, entries)
    return todo


# --------------------------------------------------------------------------------------------
# Generating a Chinese notebook

_LINK = re.compile(r"(\]\(|<a\s+href=\"|src=\")([^)\"\s]+)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


def relink(text: str, translated: set[str]) -> str:
    """Points the relative links of a translation (written as in ``notebooks/``) from
    ``notebooks/zh-CN/``: a translated notebook in the same folder, anything else one up."""
    def point(match: re.Match) -> str:
        target = match.group(2)
        if _EXTERNAL.match(target):
            return match.group(0)
        file = target.split("#", 1)[0]
        if file in translated:
            return match.group(0)
        return f"{match.group(1)}../{target}"
    return _LINK.sub(point, text)


def link_targets(text: str) -> list[str]:
    """The link targets of a markdown text (external ones included), in order."""
    return [match.group(2) for match in _LINK.finditer(text)]


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


def generate(notebook: Path, entries: list[dict] | None = None) -> nbformat.NotebookNode:
    """The Chinese notebook of ``notebook`` as the store says it now.

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
                         f"{notebook.name[:3].rstrip('_')}` and translate them:\n  "
                         + "\n  ".join(problems))
    translated = {path.name for path in translated_notebooks()} | {notebook.name}
    nb = copy.deepcopy(english)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = relink(zh[cell_hash(cell.source)], translated)
    texts = edition_texts()
    title = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown")
    nb.cells.insert(title + 1, _extra_cell(NOTE_ID, relink(texts["note"].rstrip(), translated)))
    if notebook.name == texts["glossary_notebook"]:
        at = next((i for i, cell in enumerate(nb.cells)
                   if cell.get("id") == texts["glossary_after"]), None)
        if at is None:
            raise ValueError(f"{EDITION_FILE.name}: glossary_after names cell "
                             f"{texts['glossary_after']!r}, which {notebook.name} does not have.")
        nb.cells.insert(at + 1, _extra_cell(GLOSSARY_ID, glossary_markdown()))
    return nb


def _first_line(source: str) -> str:
    return source.strip().splitlines()[0][:60] if source.strip() else ""


def render(nb: nbformat.NotebookNode) -> str:
    """The file text, written as ``nbformat.write`` writes it (the English notebooks' format)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def build(notebooks: list[Path] | None = None) -> list[Path]:
    """Writes ``notebooks/zh-CN/NN_topic.ipynb`` for every translated notebook; returns them.
    Files in ``notebooks/zh-CN/`` of notebooks without a store are deleted."""
    notebooks = translated_notebooks() if notebooks is None else notebooks
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in notebooks:
        path = output_path(notebook)
        path.write_text(render(generate(notebook)), encoding="utf-8")
        written.append(path)
    keep = {path.name for path in translated_notebooks()}
    for path in OUT_DIR.glob("*.ipynb"):
        if path.name not in keep:
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
    translations, entries whose hash is not their English, numbers or links that differ from the
    English cell's, and a Chinese notebook on disk that is not the generated one."""
    if entries is None:
        entries = load_store(store_path(notebook))
    found = []
    english = cn.read(notebook)
    hashes = {cell_hash(cell.source) for cell in markdown_cells(english)}
    complete = translations(entries)
    for entry in entries:
        where = f"{notebook.name}, cell {entry.get('cell')}"
        if cell_hash(entry.get("en", "")) != entry.get("hash"):
            found.append(f"{where}: the entry's hash is not the hash of its 'en' text")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="report problems (stale, missing, numbers, links, out of date)")
    parser.add_argument("--sync", nargs="+", metavar="NN",
                        help="create or refresh the stores of these notebooks (e.g. 02 04b)")
    args = parser.parse_args(argv)
    if args.sync:
        todo = []
        for number in args.sync:
            matches = [p for p in cn.main_notebooks() if p.name.split("_")[0] == number]
            if not matches:
                parser.error(f"--sync: no notebook numbered {number!r}")
            todo += sync_store(matches[0])
        print("\n".join(todo) or "every cell has a current translation")
        return 0
    if args.check:
        found = [line for path in translated_notebooks() for line in problems(path)]
        count = len(translated_notebooks())
        print("\n".join(found) or f"{count} translated notebooks, all in step")
        return 1 if found else 0
    for path in build():
        print(f"wrote {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
