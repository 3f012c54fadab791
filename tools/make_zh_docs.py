"""Generates the Simplified Chinese edition (简体中文版) of the course's markdown documents.

    .venv/bin/python -m tools.make_zh_docs            # write docs/zh-CN/<name>.md from the stores
    .venv/bin/python -m tools.make_zh_docs --check    # report what is stale, missing or differs
    .venv/bin/python -m tools.make_zh_docs --sync     # add/refresh store entries (empty zh)

The notebooks' edition (``tools/make_zh_edition.py``) does the same for notebooks; this tool
reuses its key (:func:`tools.make_zh_edition.cell_hash`), its number rule
(:func:`~tools.make_zh_edition.numbers`) and its link pattern, so that both editions are checked
by one rule. The English document is the source; nothing in ``docs/zh-CN/<name>.md`` is edited by
hand. Documents covered (:data:`DOCUMENTS`)::

    English document           docs/instructor_guide.md       docs/applications.md
      its store                translations/zh-CN/docs/instructor_guide.yml  .../applications.yml
      its Chinese edition      docs/zh-CN/instructor_guide.md  docs/zh-CN/applications.md

Blocks. The English document is cut into blocks at blank lines: a heading, a paragraph, a whole
list, a whole table, a blockquote, a MyST directive written with colons (``:::{note}`` to
``:::``, no blank line inside: its text is translated on one line, its two fence lines are
kept), and a fenced code block (```` ``` ```` to ```` ``` ````, blank lines inside it included).
Code blocks are not translated: the Chinese document has the English code block, byte for byte.
Every other block has one store entry, in the document's order (a text that occurs more than
once, such as ``**Where students get stuck**``, has one entry)::

    - block: <section>/<n>     # where it is: the slug of the heading above it and its ordinal
      hash: <first 16 hex digits of the SHA-256 of the English block>
      en: |-                   # the English text it translates, for review
        ...
      zh: |-                   # the translation
        ...

The Chinese document is the Chinese blocks joined by blank lines, with one more line right after
the title: a note (in Chinese) that the file is generated, linking to the English source. The
English document's own pointer to its Chinese edition (a block that starts with
``简体中文版：``) is not translated: the note takes its place.

Stale and missing work as in the notebooks' edition: when an English block changes, no entry has
its hash any more, the build refuses, ``--check`` lists it, and ``--sync`` adds an entry with an
empty ``zh``, keeping the old translation of the same ``block`` position under ``stale_zh`` and
its English under ``stale_en``; the entry counts as missing until ``zh`` is filled in and the
``stale_*`` keys are deleted.

Writing a translation: each paragraph on one line and each list item on one line (a line break
between two Chinese characters renders as a stray space in a browser); the numbers of the English
block, and no others (:func:`tools.make_zh_edition.numbers`); links written exactly as the
English block writes them (from ``docs/``): the generator points them from ``docs/zh-CN/``, to
the Chinese edition of a notebook that has one (``notebooks/zh-CN/``) or of a document in
:data:`DOCUMENTS`, otherwise to the English file.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python tools/make_zh_docs.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import course_notebooks as cn
from tools import make_zh_edition as zh_edition
from tools.make_zh_edition import cell_hash, link_targets, numbers

LANGUAGE = zh_edition.LANGUAGE
#: The English documents that have a Chinese edition, as repository paths.
DOCUMENTS = ("docs/instructor_guide.md", "docs/applications.md")
STORE_DIR = zh_edition.STORE_DIR / "docs"
#: The English document's pointer to its Chinese edition starts with this; it is not translated.
POINTER = "简体中文版："
NOTE = ("*本文件由 `tools/make_zh_docs.py` 根据英文原文 [{name}]({link}) 自动生成，请勿直接编辑；"
        "译文保存在 `translations/zh-CN/docs/{stem}.yml`。*")

_STORE_HEADER = """\
# Translation store of {source} (简体中文). Generated entries, hand-written "zh" texts.
# Key: "hash" is the SHA-256 (16 hex digits) of the English block "en". Write each paragraph
# and each list item on one line. After changing "zh", run: .venv/bin/python -m tools.make_zh_docs
"""

# --------------------------------------------------------------------------------------------
# Blocks


def _kind(lines: list[str]) -> str:
    first = lines[0]
    if first.startswith("```"):
        return "code"
    if first.startswith("#"):
        return "heading"
    if first.startswith("|"):
        return "table"
    if first.startswith(">"):
        return "quote"
    if first.startswith(":::"):
        return "directive"
    if re.match(r"(?:[-*+]|\d+\.)\s", first):
        return "list"
    return "paragraph"


def blocks(text: str) -> list[tuple[str, str]]:
    """The blocks of a markdown text, in order, as ``(kind, text)``; kind is ``code``,
    ``heading``, ``table``, ``quote``, ``directive``, ``list`` or ``paragraph``. A heading is a
    block of its own even without a blank line after it; a fenced code block keeps its blank
    lines."""
    found: list[tuple[str, str]] = []
    current: list[str] = []
    fence = False

    def flush() -> None:
        if current:
            found.append((_kind(current), "\n".join(current)))
            current.clear()

    for line in text.split("\n"):
        if fence:
            current.append(line)
            if line.startswith("```"):
                fence = False
                flush()
        elif line.startswith("```"):
            flush()
            current.append(line)
            fence = True
        elif not line.strip():
            flush()
        elif line.startswith("#"):
            flush()
            current.append(line)
            flush()
        else:
            current.append(line)
    if fence:
        raise ValueError("the document ends inside a fenced code block (no closing ```).")
    flush()
    return found


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lstrip("#").strip().lower()).strip("-")[:40]


def positions(parts: list[tuple[str, str]]) -> list[str]:
    """A readable position for each block: ``<slug of the heading above>/<n>``, where n counts
    the translated blocks of that section from 0 at the heading itself (code blocks and the
    pointer do not count), so that an edit elsewhere in the document leaves it unchanged."""
    section, count, found = "top", 0, []
    counted = set(translatable(parts))
    for i, (kind, text) in enumerate(parts):
        if kind == "heading":
            section, count = _slug(text) or "top", 0
        found.append(f"{section}/{count}")
        count += i in counted
    return found


def translatable(parts: list[tuple[str, str]]) -> list[int]:
    """Indexes of the blocks that are translated: not code, not the English pointer."""
    return [i for i, (kind, text) in enumerate(parts)
            if kind != "code" and not text.startswith(POINTER)]


# --------------------------------------------------------------------------------------------
# Paths and the store


def store_path(document: str) -> Path:
    """``translations/zh-CN/docs/<stem>.yml`` for ``docs/<stem>.md``."""
    return STORE_DIR / f"{posixpath.splitext(posixpath.basename(document))[0]}.yml"


def output_path(document: str) -> Path:
    """``docs/zh-CN/<name>`` for ``docs/<name>``."""
    return cn.REPO / chinese_relpath(document)


def chinese_relpath(document: str) -> str:
    if not document.startswith("docs/"):
        raise ValueError(f"document must be a path under docs/, got {document!r}.")
    return f"docs/{LANGUAGE}/{document[len('docs/'):]}"


def load_store(path: Path) -> list[dict]:
    return zh_edition.read_entries(path, "blocks")


def write_store(path: Path, document: str, entries: list[dict]) -> None:
    zh_edition.write_entries(path, _STORE_HEADER.format(source=document), document, "blocks",
                             entries)


def translations(entries: list[dict]) -> dict[str, str]:
    """hash -> Chinese text, for the complete entries (a ``zh`` and no ``stale_*``)."""
    return {entry["hash"]: entry["zh"] for entry in entries
            if entry.get("zh") and not any(key.startswith("stale_") for key in entry)}


def _english(document: str, english: Path | None) -> str:
    return (english or cn.REPO / document).read_text(encoding="utf-8")


def sync_store(document: str, english: Path | None = None, store: Path | None = None) -> list[str]:
    """Brings the store of ``document`` in step with its English blocks (see the module
    docstring); returns one line per block that needs a translator."""
    path = store or store_path(document)
    old = load_store(path) if path.is_file() else []
    by_hash = {entry["hash"]: entry for entry in old}
    by_position = {entry.get("block"): entry for entry in old}
    parts = blocks(_english(document, english))
    where = positions(parts)
    entries, todo, seen = [], [], set()
    for i in translatable(parts):
        text, key = parts[i][1], cell_hash(parts[i][1])
        if key in seen:  # the same English twice (e.g. "**Where students get stuck**"): one entry
            continue
        seen.add(key)
        if key in by_hash:
            entry = dict(by_hash[key], block=where[i])
        else:
            entry = {"block": where[i], "hash": key, "en": text, "zh": ""}
            previous = by_position.get(where[i])
            if previous is not None and previous.get("zh"):
                entry["stale_en"] = previous.get("stale_en", previous["en"])
                entry["stale_zh"] = previous.get("stale_zh", previous["zh"])
        entries.append({k: entry[k] for k in ("block", "hash", "en", "zh", "stale_en",
                                              "stale_zh") if k in entry})
        if key not in translations([entry]):
            todo.append(f"{_rel(path)}: block {where[i]} needs a translation"
                        + (" (its English changed: see stale_en)" if "stale_en" in entry else ""))
    write_store(path, document, entries)
    return todo


def _rel(path: Path) -> str:
    return path.relative_to(cn.REPO).as_posix() if path.is_relative_to(cn.REPO) else str(path)


# --------------------------------------------------------------------------------------------
# Generating


def translated_targets() -> dict[str, str]:
    """English repository path -> its Chinese edition, for every notebook and document that has
    one now."""
    found = {zh_edition.english_relpath(path): zh_edition.chinese_relpath(
        zh_edition.english_relpath(path)) for path in zh_edition.all_translated()}
    found.update({document: chinese_relpath(document) for document in DOCUMENTS
                  if store_path(document).is_file()})
    return found


def relink(text: str, document: str, targets: dict[str, str] | None = None) -> str:
    """Points the relative links of a translation of ``document`` (written as in the English
    document) from the Chinese document's folder: to the Chinese edition of a target in
    ``targets`` (:func:`translated_targets`), to the English file for anything else."""
    targets = translated_targets() if targets is None else targets
    source = posixpath.dirname(document)
    here = posixpath.dirname(chinese_relpath(document))

    def point(match: re.Match) -> str:
        link = match.group(2)
        if zh_edition._EXTERNAL.match(link):
            return match.group(0)
        file, hash_, fragment = link.partition("#")
        resolved = posixpath.normpath(posixpath.join(source, file))
        resolved = targets.get(resolved, resolved)
        pointed = posixpath.relpath(resolved, here) + ("/" if file.endswith("/") else "")
        return f"{match.group(1)}{pointed}{hash_}{fragment}"
    return zh_edition._LINK.sub(point, text)


def generate(document: str, entries: list[dict] | None = None, *,
             english: Path | None = None) -> str:
    """The Chinese document of ``document`` as the store says it now.

    Raises:
        ValueError: naming every block without a current translation.
    """
    if entries is None:
        entries = load_store(store_path(document))
    parts = blocks(_english(document, english))
    where = positions(parts)
    zh = translations(entries)
    wanted = translatable(parts)
    known = {entry.get("block") for entry in entries}
    missing = [f"block {where[i]} ({parts[i][1].splitlines()[0][:60]!r}): "
               + ("its English changed since it was translated (stale)" if where[i] in known
                  else "no translation")
               for i in wanted if cell_hash(parts[i][1]) not in zh]
    if missing:
        raise ValueError(f"{document}: {len(missing)} block(s) lack a current translation; run "
                         "`.venv/bin/python -m tools.make_zh_docs --sync` and translate them:\n  "
                         + "\n  ".join(missing))
    name = posixpath.basename(document)
    stem = posixpath.splitext(name)[0]
    note = NOTE.format(name=name, link=posixpath.relpath(
        document, posixpath.dirname(chinese_relpath(document))), stem=stem)
    out: list[str] = []
    for i, (kind, text) in enumerate(parts):
        if kind == "code":
            out.append(text)
        elif i in wanted:
            out.append(relink(zh[cell_hash(text)], document))
        if not any(kind == "heading" for kind, _ in parts[:i]) and kind == "heading":
            out.append(note)
    if not any(kind == "heading" for kind, _ in parts):
        out.insert(0, note)
    return "\n\n".join(out) + "\n"


def build() -> list[Path]:
    """Writes the Chinese edition of every document in :data:`DOCUMENTS` that has a store."""
    written = []
    for document in DOCUMENTS:
        if not store_path(document).is_file():
            continue
        path = output_path(document)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate(document), encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# Checks (the tests call these; --check prints them)

_CJK = r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]"


def block_problems(entry: dict) -> list[str]:
    """What is wrong with one complete entry: numbers or links that differ from the English
    block's, or a line break that a browser would render as a space between Chinese text."""
    where = f"block {entry.get('block')}"
    found = []
    en, zh = entry["en"], entry["zh"]
    if numbers(en) != numbers(zh):
        found.append(f"{where}: numbers differ: English {numbers(en)}, Chinese {numbers(zh)}")
    if sorted(link_targets(en)) != sorted(link_targets(zh)):
        found.append(f"{where}: links differ: English {link_targets(en)}, "
                     f"Chinese {link_targets(zh)}")
    kind = _kind(en.split("\n"))
    if kind != _kind(zh.split("\n")):
        found.append(f"{where}: the English is a {kind}, the Chinese is not")
    lines = zh.split("\n")
    if kind in ("paragraph", "heading") and len(lines) > 1:
        found.append(f"{where}: write the paragraph on one line (a line break renders as a space)")
    if kind == "list":
        broken = [line for line in lines if not re.match(r"\s*(?:[-*+]|\d+\.)\s", line)]
        if broken:
            found.append(f"{where}: write each list item on one line; continued: {broken[0]!r}")
    if kind == "directive" and (len(lines) != 3 or lines[0] != en.split("\n")[0]
                                or lines[-1] != en.split("\n")[-1]):
        found.append(f"{where}: keep the directive's fence lines as in English and write its "
                     "text on one line between them")
    if kind == "table" and any(not line.startswith("|") for line in lines):
        found.append(f"{where}: every table line must start with '|'")
    return found


def problems(document: str, entries: list[dict] | None = None, *,
             english: Path | None = None, chinese: Path | None = None) -> list[str]:
    """Everything wrong with the translation of ``document``: stale or missing translations,
    entries whose hash is not their English, the problems of :func:`block_problems`, and a
    Chinese document on disk that is not the generated one."""
    if entries is None:
        entries = load_store(store_path(document))
    parts = blocks(_english(document, english))
    where = positions(parts)
    hashes = {cell_hash(parts[i][1]) for i in translatable(parts)}
    complete = translations(entries)
    found = []
    for entry in entries:
        if cell_hash(entry.get("en", "")) != entry.get("hash"):
            found.append(f"{document}, block {entry.get('block')}: the entry's hash is not the "
                         "hash of its 'en' text")
        if entry.get("hash") not in hashes:
            found.append(f"{document}, block {entry.get('block')}: stale, no English block has "
                         "this text any more (run --sync, then revise the translation)")
        if entry.get("hash") in complete:
            found += [f"{document}, {line}" for line in block_problems(entry)]
    for i in translatable(parts):
        if cell_hash(parts[i][1]) not in complete:
            found.append(f"{document}, block {where[i]}: no current translation of "
                         f"{parts[i][1].splitlines()[0][:60]!r}")
    if found:
        return found
    chinese = output_path(document) if chinese is None else chinese
    if not chinese.is_file():
        return [f"{_rel(chinese)}: not generated; run .venv/bin/python -m tools.make_zh_docs"]
    if chinese.read_text(encoding="utf-8") != generate(document, entries, english=english):
        found.append(f"{_rel(chinese)}: differs from what the generator writes now; run "
                     ".venv/bin/python -m tools.make_zh_docs")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="report problems (stale, missing, numbers, links, out of date)")
    parser.add_argument("--sync", action="store_true",
                        help="create or refresh the stores (new or changed blocks get an empty zh)")
    args = parser.parse_args(argv)
    if args.sync:
        todo = [line for document in DOCUMENTS for line in sync_store(document)]
        print("\n".join(todo) or "every block has a current translation")
        return 0
    if args.check:
        found = [line for document in DOCUMENTS if store_path(document).is_file()
                 for line in problems(document)]
        print("\n".join(found) or f"{len(DOCUMENTS)} document(s), all in step")
        return 1 if found else 0
    for path in build():
        print(f"wrote {_rel(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
