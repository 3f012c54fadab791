"""The course website, as a reader's browser sees it: every page, offline, in headless Chromium.

The module builds the site once from the stored notebook outputs (``tools/build_website.py``,
into a temporary folder; both editions, English at the root and Simplified Chinese under
``zh-CN/``), serves it from a loopback HTTP server that the fixture starts and always stops, and
opens every page of both editions in Debian's Chromium (the ``browser`` fixture of
``conftest.py``). For each page it checks that

* no request goes anywhere but the test's own server on 127.0.0.1 (requests elsewhere are
  blocked and reported: a page that needs a CDN, a web font or an analytics script fails);
* no request fails and no response is an HTTP error (a missing vendored file, a 404);
* the browser console shows no error and no uncaught exception;
* every image has loaded and has a size (no broken image);
* every link to a page of the site leads to a file that exists, and every ``#anchor`` to an
  element with that id;
* formulas were typeset by the local MathJax, without TeX errors, and the widgets' stored state
  was rendered by the local widget manager (a slider, no "Error displaying widget");
* the page says its language (``<html lang="en">`` or ``"zh-CN"``), and its visible language
  switch leads to the same page in the other edition, or to the other edition's landing page
  when that page has no counterpart there;
* a Chinese page has the Chinese site title, Chinese navigation captions and the Chinese font
  stack (system fonts; none is bundled), and each of its links to a page that exists only in
  English says so (（英文）).

``test_language_switch_round_trip`` clicks the switch: Chinese notebook 01 -> English -> back,
and an English page without a Chinese counterpart -> the Chinese landing page.

Screenshots of every page go to ``test-artifacts/website/<page>.png`` (``zh-CN__<page>.png`` for
Chinese pages; full page for the landing pages, notebook 04 and the instructor guide;
``<page>_widget.png`` for each page's first widget), and the build and test times to
``test-artifacts/website/timings.json``. Chinese text in the screenshots is drawn with the
machine's own CJK font; ``test-artifacts/website/cjk_fonts.txt`` names those fontconfig found
(on a machine with none, such as a bare Debian with only Chromium installed, Chinese characters
show as boxes: install ``fonts-wqy-microhei`` or ``fonts-noto-cjk`` to read them). Run only
these tests with ``.venv/bin/python -m pytest tests/browser/test_website.py``.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO / "test-artifacts" / "website"
sys.path.insert(0, str(REPO))

from tools import build_website  # noqa: E402
from tools import course_notebooks as cn  # noqa: E402

FULL_PAGE = {"index", "notebooks/04_multi_client_experiment", "instructor_guide", "zh-CN/index"}
ZH = build_website.ZH
WAIT_MS = 120_000  # generous: on a loaded 2-core machine MathJax alone can take many seconds
pytestmark = pytest.mark.browser


EN_PAGES = build_website.page_names("en")
ZH_PAGES = build_website.page_names(ZH)
PAGES = sorted([*EN_PAGES, *(f"{ZH}/{name}" for name in ZH_PAGES)])


def _switch_target(name: str) -> str:
    """Where the language switch of page ``name`` must lead (a page name of the whole site)."""
    if name.startswith(f"{ZH}/"):
        name = name[len(ZH) + 1:]
        return name if name in EN_PAGES else "index"
    return f"{ZH}/{name}" if name in ZH_PAGES else f"{ZH}/index"

_timings: dict[str, float] = {}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A fresh build of the website; its HTML folder."""
    start = time.perf_counter()
    html = build_website.build(tmp_path_factory.mktemp("website") / "website")
    _timings["build_s"] = round(time.perf_counter() - start, 1)
    return html


def _cjk_fonts() -> str:
    """The fonts with Chinese glyphs that fontconfig (and so Chromium) finds on this machine."""
    if not shutil.which("fc-list"):
        return "fc-list not found: cannot tell which CJK fonts are installed.\n"
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True,
                           check=False).stdout
    return found or ("No font with Chinese glyphs: the Chinese screenshots show boxes "
                     "(apt-get install fonts-wqy-microhei, or fonts-noto-cjk).\n")


@pytest.fixture(scope="module")
def server(site):
    """Serves ``site`` on a free loopback port; yields the base URL; always stops."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
        _timings["pages_s"] = round(time.perf_counter() - start, 1)
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS_DIR / "timings.json").write_text(json.dumps(_timings, indent=2) + "\n")
        (ARTIFACTS_DIR / "cjk_fonts.txt").write_text(_cjk_fonts(), encoding="utf-8")


def test_every_page_is_built(site):
    built = sorted(p.relative_to(site).with_suffix("").as_posix() for p in site.rglob("*.html")
                   if "_static" not in p.parts and "_sources" not in p.parts)
    assert built == PAGES, f"pages built {built}, expected {PAGES}"


def _settle(page, in_flight: set) -> None:
    """Waits until no request of the page is in flight (``in_flight`` holds the requests that
    have started and neither finished nor failed). Requests are recorded as they happen, and
    MathJax and the widgets are waited for by what they draw, so this only makes sure that a
    late request (a font, an image) has its answer before the checks read them. Polls every
    50 ms for up to 30 s; a request still open then fails the page's test."""
    deadline = time.monotonic() + 30
    while in_flight and time.monotonic() < deadline:
        page.wait_for_timeout(50)


@functools.cache
def _anchor_ids(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", PAGES)
def test_page(name, site, server, browser):
    base = urllib.parse.urlsplit(server)
    url = f"{server}/{name}.html"
    outside, failed, http_errors, console_errors = [], [], [], []
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  service_workers="block")

    def gate(route):
        target = urllib.parse.urlsplit(route.request.url)
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("console", lambda message: console_errors.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
    in_flight: set = set()
    page.on("request", lambda request: in_flight.add(request))
    page.on("requestfinished", lambda request: in_flight.discard(request))

    def request_failed(request):
        in_flight.discard(request)
        failed.append(f"{request.url} ({request.failure})")

    page.on("requestfailed", request_failed)
    page.on("response", lambda response: http_errors.append(
        f"{response.status} {response.url}") if response.status >= 400 else None)
    start = time.perf_counter()
    try:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.ok, f"{url}: {response and response.status}"
        # What there is to wait for is in the HTML already (formulas, widget states); the one
        # wait for quiet comes after both are drawn.
        has_math = page.locator(".math").count() > 0
        if has_math:  # MathJax typesets after load
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise"
                                   " && document.querySelector('mjx-container')")
            page.evaluate("MathJax.startup.promise")
        widget_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
        if widget_views.count():
            page.wait_for_selector(".widget-slider")
        _settle(page, in_flight)
        open_requests = sorted(request.url for request in in_flight)
        assert not open_requests, f"{name}: requests unanswered after 30 s: {open_requests}"

        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS_DIR / f"{name.replace('/', '__')}.png"),
                        full_page=name in FULL_PAGE)

        assert not outside, f"{name}: requests left the machine (blocked): {outside}"
        assert not failed, f"{name}: requests failed: {failed}"
        assert not http_errors, f"{name}: HTTP errors: {http_errors}"
        assert not console_errors, f"{name}: console errors: {console_errors}"

        broken = page.evaluate("""() => Array.from(document.images)
            .filter(img => !img.complete || img.naturalWidth === 0)
            .map(img => img.currentSrc || img.src)""")
        assert not broken, f"{name}: broken images: {broken}"

        if has_math:
            assert page.locator("mjx-container").count() > 0, f"{name}: no formula typeset"
            assert page.locator("mjx-merror").count() == 0, f"{name}: TeX errors in formulas"
        if widget_views.count():
            assert page.locator(".widget-slider").count() > 0, f"{name}: widget not rendered"
            assert "Error displaying widget" not in page.inner_text("body"), name
            widget = page.locator(".cell_output:has(.widget-slider)").first
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=str(ARTIFACTS_DIR / f"{name.replace('/', '__')}_widget.png"))

        chinese = name.startswith(f"{ZH}/")
        lang = page.evaluate("document.documentElement.lang")
        assert lang == (ZH if chinese else "en"), f"{name}: <html lang={lang!r}>"
        switch = page.locator("a.course-language-switch")
        assert switch.count() == 1, f"{name}: {switch.count()} language switches"
        assert switch.is_visible(), f"{name}: the language switch is not visible"
        expected = f"{server}/{_switch_target(name)}.html"
        href = switch.evaluate("a => a.href")
        assert href == expected, f"{name}: the language switch leads to {href}, not {expected}"
        if chinese:
            title = page.title()
            assert build_website.ZH_CONFIG["title"] in title, f"{name}: title {title!r}"
            captions = page.locator("nav.bd-docs-nav .caption-text").all_inner_texts()
            chinese_captions = set(build_website.EDITIONS[ZH]["toc"].values())
            assert captions and set(captions) <= chinese_captions, (
                f"{name}: navigation captions {captions}, expected some of {chinese_captions}")
            english_only = page.evaluate("""() => Array.from(document.querySelectorAll(
                'a.course-other-edition')).map(a => [a.innerText, a.getAttribute('href')])""")
            unlabelled = [link for link in english_only
                          if build_website.ZH_TEXT["english"] not in link[0]]
            assert not unlabelled, f"{name}: links to English pages without （英文）: {unlabelled}"
            # The Chinese font stack of docs/web_assets/course-site.css applies (system fonts only).
            font = page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "Noto Sans CJK SC" in font, f"{name}: body font {font!r}"

        links = page.evaluate("""() => Array.from(document.querySelectorAll('a[href]'))
            .map(a => a.href)""")
        bad = []
        for href in sorted(set(links)):
            target = urllib.parse.urlsplit(href)
            if (target.scheme, target.netloc) != (base.scheme, base.netloc):
                continue
            path = urllib.parse.unquote(target.path).lstrip("/")
            file = site / path
            if file.is_dir():
                file = file / "index.html"
            if not file.is_file():
                bad.append(f"{href} (no such file)")
            elif target.fragment and file.suffix == ".html" and (
                    urllib.parse.unquote(target.fragment) not in _anchor_ids(file)):
                bad.append(f"{href} (no element with that id)")
        assert not bad, f"{name}: broken internal links: {bad}"
    finally:
        _timings[name] = round(time.perf_counter() - start, 1)
        context.close()


def test_chinese_course_map_names_every_notebook():
    """The Chinese landing page's course map has one line per English notebook and solutions
    notebook: to the Chinese notebook where there is one, else to the English one."""
    lines = [line for line in build_website.zh_course_map().splitlines() if line.startswith("- ")]
    english = [*cn.main_notebooks(), *cn.numbered(cn.SOLUTIONS_DIR)]
    assert len(lines) == len(english), lines
    for line, path in zip(lines, english, strict=True):
        chinese = build_website.ZH_NOTEBOOKS_DIR / path.relative_to(cn.NOTEBOOKS_DIR)
        target = (chinese if chinese.is_file() else path).relative_to(REPO).as_posix()
        assert line.endswith(f"(../../{target})"), (line, target)


def test_chinese_landing_page_gives_the_readmes_commands():
    text = (build_website.ZH_DOCS_DIR / "index.md").read_text(encoding="utf-8")
    assert "```bash" in text
    build_website._check_commands(text, "docs/zh-CN/index.md")
    changed = text.replace("pytest --nbval-lax", "pytest --nbval", 1)
    with pytest.raises(RuntimeError, match="not in README.md"):
        build_website._check_commands(changed, "docs/zh-CN/index.md")


def _first_english_only_page() -> str | None:
    return next((name for name in EN_PAGES if name not in ZH_PAGES), None)


def test_language_switch_round_trip(site, server, browser):
    """A reader's clicks: Chinese notebook 01 -> its English page -> back to the Chinese page;
    an English page that has no Chinese edition -> the Chinese landing page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  service_workers="block")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    chinese = next((name for name in ZH_PAGES if name.startswith("notebooks/01_")), "index")
    try:
        page.goto(f"{server}/{ZH}/{chinese}.html", wait_until="load")
        for url, lang in ((f"{server}/{chinese}.html", "en"),
                          (f"{server}/{ZH}/{chinese}.html", ZH)):
            page.locator("a.course-language-switch").click()
            page.wait_for_url(url)
            assert page.evaluate("document.documentElement.lang") == lang, page.url
        english_only = _first_english_only_page()
        if english_only is not None:  # none once every notebook is translated
            page.goto(f"{server}/{english_only}.html", wait_until="load")
            page.locator("a.course-language-switch").click()
            page.wait_for_url(f"{server}/{ZH}/index.html")
            assert page.evaluate("document.documentElement.lang") == ZH
    finally:
        context.close()
