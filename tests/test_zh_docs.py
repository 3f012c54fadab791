"""The Chinese edition of the course's documents (``docs/zh-CN/``) is in step with the English.

``tools/make_zh_docs.py`` cuts each English document into blocks and replaces every block but
the fenced code by its translation from ``translations/zh-CN/docs/<name>.yml``. These tests fail
when an English block changed and its translation was not updated (stale), when a block has no
translation, when a translation's numbers or links differ from its English block's, when a code
block or a command differs, when a link of the Chinese document leads nowhere, or when the
Chinese document on disk is not what the generator writes (run
``.venv/bin/python -m tools.make_zh_docs``; ``--sync`` adds entries for new or changed blocks).
They only read files. The instructor guide's runtimes are tied to the measurement by
``tests/test_runtimes.py`` for the English guide; here the Chinese guide must give the same
figures (the numbers rule) and the same Runtimes table cells.
"""

from __future__ import annotations

import posixpath
import re
import shutil
from pathlib import Path

import pytest

from tools import make_zh_docs as zd
from tools.make_zh_edition import link_targets, numbers

ROOT = Path(__file__).resolve().parents[1]
#: The documents translated now (a document without a store is not yet part of the edition).
DOCUMENTS = [doc for doc in zd.DOCUMENTS if zd.store_path(doc).is_file()]
GUIDE = "docs/instructor_guide.md"

pytestmark = pytest.mark.skipif(not DOCUMENTS, reason="no document is translated yet")


def _english(document: str) -> str:
    return (ROOT / document).read_text(encoding="utf-8")


def _chinese(document: str) -> str:
    return zd.output_path(document).read_text(encoding="utf-8")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_block_has_a_current_translation_and_the_file_is_generated(document: str) -> None:
    found = zd.problems(document)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_numbers_and_links_equal_the_english_blocks(document: str) -> None:
    entries = zd.load_store(zd.store_path(document))
    complete = zd.translations(entries)
    for entry in entries:
        assert entry["hash"] in complete, f"block {entry['block']} has no current translation"
        assert numbers(entry["en"]) == numbers(entry["zh"]), (
            f"{document}, block {entry['block']}: English {numbers(entry['en'])}, Chinese "
            f"{numbers(entry['zh'])}")
        assert sorted(link_targets(entry["en"])) == sorted(link_targets(entry["zh"])), (
            f"{document}, block {entry['block']}: links differ")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_code_blocks_are_the_english_ones_byte_for_byte(document: str) -> None:
    english = [text for kind, text in zd.blocks(_english(document)) if kind == "code"]
    chinese = [text for kind, text in zd.blocks(_chinese(document)) if kind == "code"]
    assert chinese == english


def _commands(text: str) -> list[str]:
    """The shell commands of a markdown text: every line of a fenced code block and every inline
    code span that runs something (``.venv/bin/...``, ``python``, ``pip``, ``jupyter``)."""
    found = [line for kind, block in zd.blocks(text) if kind == "code"
             for line in block.split("\n")[1:-1] if line.strip()]
    found += [span for span in re.findall(r"`([^`\n]+)`", text)
              if re.match(r"(?:\.venv/bin/|python3? |pip |jupyter )", span)]
    return found


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_chinese_document_names_every_english_command(document: str) -> None:
    commands = _commands(_english(document))
    assert commands or document != GUIDE, "found no command in the English guide"
    chinese = _chinese(document)
    missing = [command for command in commands if command not in chinese]
    assert not missing, f"{zd.chinese_relpath(document)} lacks the commands {missing}"


def _runtime_rows(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table after ``heading``, without the header and rule rows."""
    table = next(block for kind, block in zd.blocks(text[text.index(heading):])
                 if kind == "table")
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table.split("\n")[2:]]


def test_the_chinese_guide_gives_the_same_runtimes() -> None:
    if GUIDE not in DOCUMENTS:
        pytest.skip("the instructor guide is not translated")
    english = _runtime_rows(_english(GUIDE), "## Runtimes")
    chinese = _runtime_rows(_chinese(GUIDE), "## 运行时间")
    assert len(english) == len(chinese) > 0
    for en, zh in zip(english, chinese, strict=True):
        assert zh[0].split()[0] == en[0].split()[0], f"row {en[0]!r} is {zh[0]!r} in Chinese"
        assert zh[1:4] == en[1:4], f"row {en[0]!r}: English {en[1:4]}, Chinese {zh[1:4]}"
        assert numbers(zh[4]) == numbers(en[4]), f"row {en[0]!r}: budget {en[4]!r} -> {zh[4]!r}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_links_of_the_chinese_document_resolve(document: str) -> None:
    chinese = zd.chinese_relpath(document)
    for target in link_targets(_chinese(document)):
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:|#)", target, re.IGNORECASE):
            continue
        path = posixpath.normpath(posixpath.join(posixpath.dirname(chinese),
                                                 target.partition("#")[0]))
        assert (ROOT / path).exists(), f"{chinese} links to {target!r}, which does not exist"


def test_links_point_to_chinese_editions_where_they_exist() -> None:
    targets = {"notebooks/01_x.ipynb": "notebooks/zh-CN/01_x.ipynb",
               "docs/instructor_guide.md": "docs/zh-CN/instructor_guide.md"}
    text = ("[a](../notebooks/01_x.ipynb#top) [b](../notebooks/02_y.ipynb) "
            "[c](instructor_guide.md) [d](../README.md) [e](https://example.org/x.md) [f](#here)")
    assert zd.relink(text, "docs/applications.md", targets) == (
        "[a](../../notebooks/zh-CN/01_x.ipynb#top) [b](../../notebooks/02_y.ipynb) "
        "[c](instructor_guide.md) [d](../../README.md) [e](https://example.org/x.md) [f](#here)")


def test_paragraphs_and_list_items_are_one_line_each() -> None:
    for document in DOCUMENTS:
        for entry in zd.load_store(zd.store_path(document)):
            assert not zd.block_problems(entry), zd.block_problems(entry)
    entry = {"block": "x/1", "en": "A paragraph\nin two lines.", "zh": "一个段落\n分成两行。"}
    assert any("one line" in line for line in zd.block_problems(entry))
    entry = {"block": "x/2", "en": "- one\n  item", "zh": "- 一个\n  条目"}
    assert any("list item" in line for line in zd.block_problems(entry))
    entry = {"block": "x/3", "en": ":::{note}\nA note\nin two lines.\n:::",
             "zh": ":::{note}\n一个\n注释\n:::"}
    assert any("directive" in line for line in zd.block_problems(entry))
    entry["zh"] = ":::{note}\n一个注释\n:::"
    assert not zd.block_problems(entry)


def test_blocks_keep_code_fences_whole() -> None:
    text = ("# T\nIntro\nline.\n\n```bash\na\n\nb\n```\n- x\n- y\n\n| a |\n|---|\n\n> q"
            "\n\n:::{note}\nn\n:::")
    assert zd.blocks(text) == [("heading", "# T"), ("paragraph", "Intro\nline."),
                               ("code", "```bash\na\n\nb\n```"), ("list", "- x\n- y"),
                               ("table", "| a |\n|---|"), ("quote", "> q"),
                               ("directive", ":::{note}\nn\n:::")]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_a_changed_english_block_is_caught_as_stale(document: str, tmp_path: Path) -> None:
    """On a copy: change one word of one English paragraph; the check, the build and --sync
    must all see it, and --sync must keep the old translation as stale_zh."""
    english = tmp_path / "english.md"
    text = _english(document)
    parts = zd.blocks(text)
    index = next(i for i in zd.translatable(parts) if parts[i][0] == "paragraph")
    changed = parts[index][1].replace(" the ", " a ", 1)
    assert changed != parts[index][1]
    english.write_text(text.replace(parts[index][1], changed, 1), encoding="utf-8")
    found = zd.problems(document, english=english)
    assert any("no current translation" in line for line in found), found
    assert any("stale" in line for line in found), found
    with pytest.raises(ValueError, match="stale"):
        zd.generate(document, english=english)
    store = tmp_path / "store.yml"
    shutil.copy(zd.store_path(document), store)
    todo = zd.sync_store(document, english=english, store=store)
    assert len(todo) == 1 and "stale_en" in todo[0], todo
    entry = next(e for e in zd.load_store(store) if e["en"] == changed)
    assert entry["zh"] == "" and entry["stale_zh"] and entry["stale_en"] == parts[index][1]
    # The unchanged English passes on the same copy of the store before the sync.
    assert not zd.problems(document, english=ROOT / document)
