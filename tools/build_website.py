"""Builds the course website (Jupyter Book 1) from the notebooks' stored outputs, offline.

    .venv/bin/python -m tools.build_website              # -> build/website/html/index.html
    .venv/bin/python -m tools.build_website --out DIR    # -> DIR/html/index.html

Pages: the README as the landing page, every notebook in ``notebooks/`` and
``notebooks/solutions/`` (picked up by glob, in teaching order), ``docs/applications.md`` and
``docs/instructor_guide.md``.
Nothing is executed (``execute_notebooks: off``): the pages show the outputs CI checked, and the
widgets' stored state is embedded, rendered by the vendored ``@jupyter-widgets/html-manager``
(a static snapshot: sliders move but nothing is recomputed without a kernel). The pages load
nothing from outside the site: MathJax, RequireJS and the widget manager are local copies
(``docs/web_assets/vendor/``), and ``tests/browser/test_website.py`` checks that in Chromium.

The build stages a copy of the sources first (``build/website-src/``, replaced each time), because
the pages need small changes the repository's files must not carry: the README becomes
``index.md``, every notebook gets the "Open in Colab / launch Binder" line under its title, and
relative links to files that are not pages (``fl_helpers/engine.py``, ``LICENSE``, a folder) point
to the file on GitHub instead (``repository:`` in ``docs/_config.yml``).

Publishing: upload ``build/website/html/`` to any static host. On GitHub Pages, build it in a
workflow and publish it with the Pages actions, or push the folder's contents to a ``gh-pages``
branch (with an empty ``.nojekyll`` file, which this build writes); see the README.
"""

from __future__ import annotations

import argparse
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

from tools import course_notebooks as cn

BUILD = cn.REPO / "build"
SITE_DIR = BUILD / "website"
STAGE_DIR = BUILD / "website-src"

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
#: Links to files that are not in the checkout, found by the last :func:`stage` (reported).
MISSING: list[str] = []


def pages() -> dict[str, str]:
    """Repository path of every page source -> its path in the staged book."""
    mapping = {"README.md": "index.md", "docs/instructor_guide.md": "instructor_guide.md",
               "docs/applications.md": "applications.md"}
    for path in [*cn.main_notebooks(), *cn.numbered(cn.SOLUTIONS_DIR)]:
        relative = path.relative_to(cn.REPO).as_posix()
        mapping[relative] = relative
    return mapping


def rewrite_links(markdown: str, source: str, mapping: dict[str, str]) -> str:
    """Relative links of the page ``source`` (a repository path), made right for the site.

    A link to another page stays a relative link (to where that page is staged); a link to any
    other file or folder of the repository becomes its GitHub URL; external links and anchors
    are left alone.
    """
    repo = cn.repository()
    here = posixpath.dirname(mapping[source])

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if resolved in mapping:
            new = posixpath.relpath(mapping[resolved], here or ".")
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


def site_notebook(path: Path, mapping: dict[str, str]) -> nbformat.NotebookNode:
    """A notebook as the site shows it: launch links under the title, links fixed."""
    relative = path.relative_to(cn.REPO).as_posix()
    nb = cn.read(path)
    # A notebook saved before its first run has no language_info; its code is Python all the same.
    nb.metadata.setdefault("language_info", {"name": "python"})
    if not any(cell.cell_type == "markdown" and "colab.research.google.com/github" in cell.source
               for cell in nb.cells[:4]):
        title = next((i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
                      and cell.source.lstrip().startswith("# ")), -1)
        text = cn.launch_links(relative)
        if nb.metadata.get("widgets"):
            text += ("\n\n*The widgets on this page show the state they were saved in; to move "
                     "them and see the results change, run the notebook (Colab, Binder or your own "
                     "JupyterLab).*")
        links = nbformat.v4.new_markdown_cell(text)
        links.metadata["tags"] = ["launch-links"]
        nb.cells.insert(title + 1, links)
    for cell in nb.cells:
        if "colab-install" in cell.metadata.get("tags", []):
            tags = cell.metadata["tags"]
            if "remove-cell" not in tags:
                tags.append("remove-cell")  # a set-up step for Colab, not reading matter
        if cell.cell_type == "markdown":
            cell.source = join_inline_math(rewrite_links(cell.source, relative, mapping))
    return nb


def stage(stage_dir: Path = STAGE_DIR) -> Path:
    """Copies the book's sources into ``stage_dir`` (replacing it); returns it."""
    MISSING.clear()
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copyfile(cn.DOCS_DIR / name, stage_dir / name)
    for folder in ("web_assets", "_ext"):
        shutil.copytree(cn.DOCS_DIR / folder, stage_dir / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    mapping = pages()
    for source, target in mapping.items():
        destination = stage_dir / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.endswith(".ipynb"):
            nbformat.write(site_notebook(cn.REPO / source, mapping), destination)
        elif (cn.REPO / source).is_file():
            text = (cn.REPO / source).read_text(encoding="utf-8")
            destination.write_text(rewrite_links(text, source, mapping), encoding="utf-8")
    return stage_dir


def build(out: Path = SITE_DIR, *, stage_dir: Path | None = None, quiet: bool = True) -> Path:
    """Stages the sources and builds the site into ``out``; returns the folder of the HTML.

    Raises:
        RuntimeError: If Jupyter Book fails or reports a warning (each is listed).
    """
    stage_dir = stage(stage_dir or out.parent / f"{out.name}-src")
    if out.exists():
        shutil.rmtree(out)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(stage_dir), "--path-output", str(out),
               "--builder", "html", "--all"]
    if quiet:
        command.append("-q")
    result = subprocess.run(command, capture_output=True, text=True, cwd=stage_dir)
    log = result.stdout + result.stderr
    (out.mkdir(parents=True, exist_ok=True))
    (out / "build.log").write_text(log, encoding="utf-8")
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    if result.returncode != 0 or warnings:
        raise RuntimeError(f"jupyter-book build failed (exit code {result.returncode}) with "
                           f"{len(warnings)} warning(s)/error(s):\n" + "\n".join(warnings[:40])
                           + ("" if warnings else "\n" + log[-3000:]))
    html = out / "_build" / "html"
    (html / ".nojekyll").write_text("", encoding="utf-8")  # GitHub Pages: serve _static/ too
    final = out / "html"
    html.rename(final)
    shutil.rmtree(out / "_build", ignore_errors=True)
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
    print(f"website: {count} HTML files in {html} ({time.perf_counter() - start:.0f} s); open "
          f"{html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
