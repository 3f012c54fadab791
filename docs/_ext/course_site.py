"""Sphinx tweaks for the course website (loaded by docs/_config.yml as a local extension).

* Drops sphinx-thebe's scripts from every page. Jupyter Book always loads sphinx-thebe; the course
  does not use Thebe (``launch_buttons.thebe: false``; the Colab and Binder links need no script),
  and sphinx-thebe 0.3.1 adds its configuration script twice here, which the browser reports as
  an error ("Identifier 'THEBE_JS_URL' has already been declared"). Its configuration also names
  a CDN.
* The language switch (``templates/language-switch.html``, in the article header of every page):
  a link to the same page in the other edition of the site, or to the other edition's landing
  page when this page has no counterpart there, plus a ``<link rel="alternate" hreflang>`` where
  it has one.
  ``tools/build_website.py`` builds the English edition at the site's root and the Chinese one
  under ``zh-CN/``, one Sphinx project each, and tells each project where the other is
  (``course_edition_prefix``, ``course_other_edition``).
* Links between the editions: a link written ``course-site:PATH`` (``PATH`` from the root of the
  whole site, e.g. ``course-site:notebooks/03_federated_averaging.html``) becomes a relative link
  from the page it is on, so the site works from any folder and any static host.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from docutils import nodes

SITE_SCHEME = "course-site:"


def _drop_thebe(app, pagename, templatename, context, doctree):
    def is_thebe(script) -> bool:
        filename = getattr(script, "filename", script) or ""
        body = getattr(script, "attributes", {}).get("body", "") or ""
        return str(filename).endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body

    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not is_thebe(s)]
    if "css_files" in context:
        context["css_files"] = [c for c in context["css_files"]
                                if not str(getattr(c, "filename", c)).endswith("sphinx-thebe.css")]


def _site_path(app, pagename: str) -> str:
    """Where the page ``pagename`` of this project is, from the root of the whole site."""
    return app.config.course_edition_prefix + pagename + ".html"


def _relative(app, pagename: str, site_path: str) -> str:
    """A link from the page ``pagename`` to ``site_path`` (a path from the site's root)."""
    here = posixpath.dirname(_site_path(app, pagename))
    path, hash_, anchor = site_path.partition("#")
    return posixpath.relpath(path, here or ".") + hash_ + anchor


def _resolve_site_links(app, doctree, docname) -> None:
    for node in doctree.findall(nodes.reference):
        uri = node.get("refuri", "")
        if uri.startswith(SITE_SCHEME):
            node["refuri"] = _relative(app, docname, uri[len(SITE_SCHEME):])
            node["classes"] = [c for c in node.get("classes", []) if c != "external"]
            node["classes"].append("course-other-edition")


def _language_switch(app, pagename, templatename, context, doctree):
    other = app.config.course_other_edition
    if not other:
        return
    counterpart = pagename if pagename in other["pages"] else "index"
    href = _relative(app, pagename, other["prefix"] + counterpart + ".html")
    context["course_language_switch"] = {
        "href": href, "lang": other["lang"], "label": other["label"],
        "title": other["title" if counterpart == pagename else "fallback_title"],
        "counterpart": counterpart == pagename}
    if counterpart == pagename:  # an alternate is the same page in another language
        context["metatags"] = context.get("metatags", "") + (
            f'\n<link rel="alternate" hreflang="{other["lang"]}" href="{href}" />')


def _add_templates(app, config) -> None:
    config.templates_path.append(str(Path(__file__).resolve().parent / "templates"))


def setup(app):
    app.add_config_value("course_edition_prefix", "", "html")
    app.add_config_value("course_other_edition", {}, "html")
    app.connect("config-inited", _add_templates)
    app.connect("doctree-resolved", _resolve_site_links)
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("html-page-context", _language_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
