"""Builds the course website (Jupyter Book 1) from the notebooks' stored outputs, offline.

    .venv/bin/python -m tools.build_website              # -> build/website/html/index.html
    .venv/bin/python -m tools.build_website --out DIR    # -> DIR/html/index.html

Two editions, one site: English at the root, Simplified Chinese under ``zh-CN/``
(``zh-CN/index.html``). English pages: the README as the landing page, every notebook in
``notebooks/`` and ``notebooks/solutions/`` (picked up by glob, in teaching order),
``docs/applications.md`` and ``docs/instructor_guide.md``. Chinese pages:
``docs/zh-CN/index.md`` as the landing page (the build writes its course map) and every notebook
that ``tools/make_zh_edition.py`` has generated in ``notebooks/zh-CN/`` and
``notebooks/zh-CN/solutions/``, at the same paths as their English pages
(``zh-CN/notebooks/01_....html``), plus ``docs/zh-CN/applications.md`` and
``docs/zh-CN/instructor_guide.md`` once they exist. A notebook not yet translated is not in the
Chinese navigation; the Chinese course map and the Chinese pages' links name it with its English
page, labelled （英文）. Every page carries a language switch to the same page in the other
edition, or to the other edition's landing page where there is none (``docs/_ext/course_site.py``).
The two editions are two Jupyter Book projects, built at the same time (one process each) from
the same ``docs/_config.yml`` (the Chinese one with :data:`ZH_CONFIG`'s settings) and
``docs/_toc.yml`` (the Chinese one generated, with Chinese captions).

Nothing is executed (``execute_notebooks: off``): the pages show the outputs CI checked, and the
widgets' stored state is embedded, rendered by the vendored ``@jupyter-widgets/html-manager``
(a static snapshot: sliders move but nothing is recomputed without a kernel). The pages load
nothing from outside the site: MathJax, RequireJS and the widget manager are local copies
(``docs/web_assets/vendor/``), and ``tests/browser/test_website.py`` checks that in Chromium.

The build stages a copy of the sources first (``build/website-src/`` and
``build/website-src-zh-CN/``, replaced each time), because the pages need small changes the
repository's files must not carry: the README becomes ``index.md``, every notebook gets the
"Open in Colab / launch Binder" line under its title (in Chinese on Chinese pages), and relative
links to files that are not pages (``fl_helpers/engine.py``, ``LICENSE``, a folder) point
to the file on GitHub instead (``repository:`` in ``docs/_config.yml``).

Publishing: upload ``build/website/html/`` to any static host. On GitHub Pages, build it in a
workflow and publish it with the Pages actions, or push the folder's contents to a ``gh-pages``
branch (with an empty ``.nojekyll`` file, which this build writes); see the README.
"""

from __future__ import annotations

import argparse
import functools
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python tools/build_website.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat
import yaml

from tools import course_notebooks as cn

BUILD = cn.REPO / "build"
SITE_DIR = BUILD / "website"
STAGE_DIR = BUILD / "website-src"

ZH = "zh-CN"
ZH_NOTEBOOKS_DIR = cn.NOTEBOOKS_DIR / ZH
ZH_DOCS_DIR = cn.DOCS_DIR / ZH
#: Where the course map goes in ``docs/zh-CN/index.md``.
COURSE_MAP_MARKER = "<!-- course-map -->"

#: The settings of ``docs/_config.yml`` that the Chinese edition replaces (dotted keys).
ZH_CONFIG = {
    "title": "联邦学习与差分隐私：动手实践课程",
    "author": "fl-privacy-course 课程作者",
    "html.extra_footer": ("代码和笔记本：MIT 许可证。MNIST：Yann LeCun、Corinna Cortes 和 "
                          "Christopher J.C. Burges，CC BY-SA 3.0。"),
    "sphinx.config.language": "zh_CN",  # <html lang="zh-CN">, the theme's Chinese labels
}

#: The two editions: where each is in the site, and how the other edition's switch names it.
EDITIONS = {
    "en": {"prefix": "", "lang": "en", "label": "English",
           "title": "Read this page in English",
           "fallback_title": "This page has no English version: the English edition's home page",
           "toc": None},
    ZH: {"prefix": f"{ZH}/", "lang": ZH, "label": "简体中文",
         "title": "阅读本页的简体中文版",
         "fallback_title": "本页尚无简体中文版：前往简体中文版首页",
         "toc": {"course": "课程", "beyond": "课程之外", "solutions": "参考答案",
                 "instructors": "教师指南"}},
}

#: What the build writes into the Chinese pages.
ZH_TEXT = {
    "launch": {"Open in Colab": "在 Colab 中打开", "Launch Binder": "启动 Binder",
               "View on GitHub": "在 GitHub 上查看"},
    "widgets": ("*本页的控件显示的是笔记本保存时的状态；要拖动它们并看到结果随之变化，请运行笔记本"
                "（Colab、Binder 或你自己的 JupyterLab）。*"),
    # After a link from a Chinese page to a page that exists only in English.
    "english": "（英文）",
}

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
#: Links to files that are not in the checkout, found by the last :func:`stage` (reported).
MISSING: list[str] = []


def pages() -> dict[str, str]:
    """Repository path of every English page source -> its path in the staged book."""
    mapping = {"README.md": "index.md", "docs/instructor_guide.md": "instructor_guide.md",
               "docs/applications.md": "applications.md"}
    for path in [*cn.main_notebooks(), *cn.numbered(cn.SOLUTIONS_DIR)]:
        relative = path.relative_to(cn.REPO).as_posix()
        mapping[relative] = relative
    return mapping


def zh_pages() -> dict[str, str]:
    """Repository path of every Chinese page source -> its path in the staged Chinese book.

    A Chinese page is staged at the path of its English counterpart, so that the two editions'
    pages have the same names (``notebooks/01_x``) and the language switch finds its way.
    """
    mapping = {f"docs/{ZH}/index.md": "index.md"}
    for path in [*cn.numbered(ZH_NOTEBOOKS_DIR), *cn.numbered(ZH_NOTEBOOKS_DIR / "solutions")]:
        mapping[path.relative_to(cn.REPO).as_posix()] = (
            "notebooks/" + path.relative_to(ZH_NOTEBOOKS_DIR).as_posix())
    for name in ("applications.md", "instructor_guide.md"):
        if (ZH_DOCS_DIR / name).is_file():
            mapping[f"docs/{ZH}/{name}"] = name
    return mapping


def edition_pages(edition: str) -> dict[str, str]:
    """The page mapping of ``edition`` ("en" or "zh-CN")."""
    return pages() if edition == "en" else zh_pages()


def page_names(edition: str) -> list[str]:
    """Every HTML page of ``edition``, as Sphinx names it (``notebooks/01_x``), sorted."""
    names = [posixpath.splitext(target)[0] for target in edition_pages(edition).values()]
    return sorted([*names, "genindex", "search"])


def _other(edition: str) -> str:
    return ZH if edition == "en" else "en"


@functools.lru_cache(maxsize=2)
def _edition_pages(edition: str) -> dict[str, str]:
    """:func:`edition_pages`, globbed once per :func:`stage`."""
    return edition_pages(edition)


@functools.lru_cache(maxsize=1)
def _repository() -> dict[str, str]:
    """:func:`course_notebooks.repository`, read once per :func:`stage` (parsing
    ``docs/_config.yml`` for each of the 500-odd markdown cells took most of the staging time)."""
    return cn.repository()


def rewrite_links(markdown: str, source: str, mapping: dict[str, str],
                  edition: str = "en") -> str:
    """Relative links of the page ``source`` (a repository path), made right for the site.

    A link to another page of the same edition stays a relative link (to where that page is
    staged); a link to a page of the other edition becomes a ``course-site:`` link to it (made
    relative by ``docs/_ext/course_site.py``; on a Chinese page followed by （英文）); a link to
    any other file or folder of the repository becomes its GitHub URL; external links and anchors
    are left alone.
    """
    other = _other(edition)
    other_pages = _edition_pages(other)
    repo = _repository()
    here = posixpath.dirname(mapping[source])

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if resolved in mapping:
            new = posixpath.relpath(mapping[resolved], here or ".")
        elif resolved in other_pages and not match.group(1).startswith("!"):
            page = posixpath.splitext(other_pages[resolved])[0] + ".html"
            opening = match.group(1)
            if edition == ZH:  # "[text](" -> "[text（英文）]("
                opening = opening[:-2] + ZH_TEXT["english"] + opening[-2:]
            return (f"{opening}course-site:{EDITIONS[other]['prefix']}{page}"
                    f"{'#' + anchor if anchor else ''}{match.group(3)}")
        elif resolved.startswith(".."):
            return match.group(0)  # outside the repository: Sphinx warns, the build fails
        elif not (cn.REPO / resolved).exists():
            # Not in this checkout (yet): link to where it will be on GitHub, and say so.
            MISSING.append(f"{source}: link to {resolved}, which does not exist")
            new = f"{repo['url']}/blob/{repo['branch']}/{resolved}"
        else:
            kind = "tree" if (cn.REPO / resolved).is_dir() else "blob"
            new = f"{repo['url']}/{kind}/{repo['branch']}/{resolved}"
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return _LINK.sub(fix, markdown)


_FENCE = re.compile(r"(^```.*?^```[^\n]*$)", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+[^`]*`+)")
_INLINE_MATH = re.compile(r"(?<![$\\])\$(?!\$)([^$]+?)(?<![$\\])\$(?!\$)", re.S)


def join_inline_math(markdown: str) -> str:
    """Puts every ``$...$`` formula of a markdown cell on one line.

    JupyterLab takes the formulas out before it parses the markdown, so a formula may be wrapped
    anywhere; MyST parses the markdown first, and a wrapped line that starts with ``- `` or
    ``1. `` inside a formula would begin a list and break the formula in two. Code (fenced or
    in backticks) is left alone.
    """
    def in_text(text: str) -> str:
        pieces = _CODE_SPAN.split(text)
        return "".join(piece if index % 2 else _INLINE_MATH.sub(
            lambda m: "$" + " ".join(m.group(1).split("\n")) + "$", piece)
            for index, piece in enumerate(pieces))

    parts = _FENCE.split(markdown)
    return "".join(part if index % 2 else in_text(part) for index, part in enumerate(parts))


def site_notebook(path: Path, mapping: dict[str, str],
                  edition: str = "en") -> nbformat.NotebookNode:
    """A notebook as the site shows it: launch links under the title, links fixed."""
    relative = path.relative_to(cn.REPO).as_posix()
    zh = edition == ZH
    nb = cn.read(path)
    # A notebook saved before its first run has no language_info; its code is Python all the same.
    nb.metadata.setdefault("language_info", {"name": "python"})
    if not any(cell.cell_type == "markdown" and "colab.research.google.com/github" in cell.source
               for cell in nb.cells[:4]):
        title = next((i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
                      and cell.source.lstrip().startswith("# ")), -1)
        text = cn.launch_links(relative)
        if zh:
            for english, chinese in ZH_TEXT["launch"].items():
                text = text.replace(f"[{english}](", f"[{chinese}](")
        if nb.metadata.get("widgets"):
            text += "\n\n" + (ZH_TEXT["widgets"] if zh else (
                "*The widgets on this page show the state they were saved in; to move "
                "them and see the results change, run the notebook (Colab, Binder or your own "
                "JupyterLab).*"))
        links = nbformat.v4.new_markdown_cell(text)
        links.metadata["tags"] = ["launch-links"]
        nb.cells.insert(title + 1, links)
    for cell in nb.cells:
        if "colab-install" in cell.metadata.get("tags", []):
            tags = cell.metadata["tags"]
            if "remove-cell" not in tags:
                tags.append("remove-cell")  # a set-up step for Colab, not reading matter
        if cell.cell_type == "markdown":
            cell.source = join_inline_math(rewrite_links(cell.source, relative, mapping,
                                                         edition))
    return nb


def _title(path: Path) -> str:
    """The text of a notebook's first H1 heading (its file name if it has none)."""
    for cell in cn.read(path).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def zh_course_map() -> str:
    """The Chinese landing page's course map: every English notebook and solutions notebook in
    teaching order, linked to its Chinese page, or to its English page (（英文）) while it is not
    translated. Links are written from ``docs/zh-CN/`` (:func:`rewrite_links` fixes them)."""
    def line(english: Path, chinese: Path) -> str:
        number = english.name.split("_")[0]
        shown = chinese if chinese.is_file() else english
        target = posixpath.relpath(shown.relative_to(cn.REPO).as_posix(), f"docs/{ZH}")
        return f"- [{number} {_title(shown)}]({target})"

    main = [line(path, ZH_NOTEBOOKS_DIR / path.name) for path in cn.main_notebooks()]
    solutions = [line(path, ZH_NOTEBOOKS_DIR / "solutions" / path.name)
                 for path in cn.numbered(cn.SOLUTIONS_DIR)]
    return "\n".join(["### 笔记本", "", *main, "", "### 参考答案", "", *solutions])


def _check_commands(text: str, source: str) -> None:
    """Every ``bash`` block of the Chinese landing page must be one of the README's, word for
    word (the page repeats the README's set-up and test commands)."""
    readme = (cn.REPO / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S):
        if f"```bash\n{block}```" not in readme:
            raise RuntimeError(f"{source}: this command block is not in README.md (the Chinese "
                               f"pages give the README's commands): {block.strip()!r}")


def _set(config: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for key in path:
        config = config.setdefault(key, {})
    config[last] = value


def site_config(edition: str) -> dict:
    """``docs/_config.yml`` as ``edition``'s project uses it: the Chinese settings
    (:data:`ZH_CONFIG`) and where the other edition is, for the language switch."""
    config = yaml.safe_load((cn.DOCS_DIR / "_config.yml").read_text(encoding="utf-8"))
    if edition == ZH:
        for dotted, value in ZH_CONFIG.items():
            _set(config, dotted, value)
    other = _other(edition)
    _set(config, "sphinx.config.course_edition_prefix", EDITIONS[edition]["prefix"])
    _set(config, "sphinx.config.course_other_edition", {
        **{key: EDITIONS[other][key] for key in ("prefix", "lang", "label", "title",
                                                  "fallback_title")},
        "pages": page_names(other)})
    return config


def zh_toc(mapping: dict[str, str]) -> dict:
    """The Chinese table of contents: the English one's parts, with only the pages that exist
    in Chinese, under Chinese captions."""
    captions = EDITIONS[ZH]["toc"]
    staged = sorted(posixpath.splitext(target)[0] for target in mapping.values())
    notebooks = [name for name in staged if name.startswith("notebooks/")
                 and not name.startswith("notebooks/solutions/")]
    parts = [(captions["course"], notebooks),
             (captions["beyond"], [name for name in staged if name == "applications"]),
             (captions["solutions"], [n for n in staged if n.startswith("notebooks/solutions/")]),
             (captions["instructors"], [name for name in staged if name == "instructor_guide"])]
    toc = {"format": "jb-book", "root": "index",
           "parts": [{"caption": caption, "chapters": [{"file": name} for name in names]}
                     for caption, names in parts if names]}
    if not toc["parts"]:  # nothing translated yet: the landing page alone
        del toc["parts"]
    return toc


def stage(stage_dir: Path = STAGE_DIR, edition: str = "en") -> Path:
    """Copies the sources of ``edition``'s book into ``stage_dir`` (replacing it); returns it."""
    if edition == "en":
        MISSING.clear()
    _repository.cache_clear()
    _edition_pages.cache_clear()
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    mapping = edition_pages(edition)
    dump = functools.partial(yaml.safe_dump, allow_unicode=True, sort_keys=False, width=100)
    (stage_dir / "_config.yml").write_text(dump(site_config(edition)), encoding="utf-8")
    if edition == "en":
        shutil.copyfile(cn.DOCS_DIR / "_toc.yml", stage_dir / "_toc.yml")
    else:
        (stage_dir / "_toc.yml").write_text(dump(zh_toc(mapping)), encoding="utf-8")
    for folder in ("web_assets", "_ext"):
        shutil.copytree(cn.DOCS_DIR / folder, stage_dir / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for source, target in mapping.items():
        destination = stage_dir / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.endswith(".ipynb"):
            nbformat.write(site_notebook(cn.REPO / source, mapping, edition), destination)
        elif (cn.REPO / source).is_file():
            text = (cn.REPO / source).read_text(encoding="utf-8")
            if source == f"docs/{ZH}/index.md":
                if COURSE_MAP_MARKER not in text:
                    raise RuntimeError(f"{source} has no {COURSE_MAP_MARKER} line for the "
                                       "course map.")
                text = text.replace(COURSE_MAP_MARKER, zh_course_map())
                _check_commands(text, source)
            destination.write_text(rewrite_links(text, source, mapping, edition),
                                   encoding="utf-8")
    return stage_dir


def build(out: Path = SITE_DIR, *, stage_dir: Path | None = None, quiet: bool = True) -> Path:
    """Stages both editions and builds the site into ``out``; returns the folder of the HTML
    (English at its root, Chinese in its ``zh-CN/``).

    The two Jupyter Book projects build at the same time, one process each.

    Raises:
        RuntimeError: If Jupyter Book fails or reports a warning (each is listed), or the Chinese
            landing page gives a command the README does not.
    """
    stage_dir = stage_dir or out.parent / f"{out.name}-src"
    stages = {"en": stage(stage_dir, "en"),
              ZH: stage(stage_dir.parent / f"{stage_dir.name}-{ZH}", ZH)}
    if out.exists():
        shutil.rmtree(out)
    outputs = {"en": out, ZH: out / f"_{ZH}"}
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    running = {}
    for edition, source in stages.items():
        command = [str(jupyter_book), "build", str(source), "--path-output",
                   str(outputs[edition]), "--builder", "html", "--all"]
        if quiet:
            command.append("-q")
        running[edition] = subprocess.Popen(command, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True, cwd=source)
    problems = []
    for edition, process in running.items():
        log = process.communicate()[0]
        out.mkdir(parents=True, exist_ok=True)
        (out / ("build.log" if edition == "en" else f"build-{ZH}.log")).write_text(
            log, encoding="utf-8")
        warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
        if process.returncode != 0 or warnings:
            problems.append(f"jupyter-book build of the {edition} edition failed (exit code "
                            f"{process.returncode}) with {len(warnings)} warning(s)/error(s):\n"
                            + "\n".join(warnings[:40]) + ("" if warnings else "\n" + log[-3000:]))
    if problems:
        raise RuntimeError("\n".join(problems))
    html = out / "_build" / "html"
    (html / ".nojekyll").write_text("", encoding="utf-8")  # GitHub Pages: serve _static/ too
    final = out / "html"
    html.rename(final)
    (outputs[ZH] / "_build" / "html").rename(final / ZH)
    shutil.rmtree(out / "_build", ignore_errors=True)
    shutil.rmtree(outputs[ZH], ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SITE_DIR,
                        help="output folder; the site goes to OUT/html (default: build/website)")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        html = build(args.out, quiet=not args.verbose)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    for missing in MISSING:
        print(f"note: {missing} (linked to GitHub instead)", file=sys.stderr)
    count = len(list(html.rglob("*.html")))
    chinese = len(list((html / ZH).rglob("*.html")))
    print(f"website: {count} HTML files ({chinese} of them Chinese, in {ZH}/) in {html} "
          f"({time.perf_counter() - start:.0f} s); open {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
