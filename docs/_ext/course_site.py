"""Sphinx tweaks for the course website (loaded by docs/_config.yml as a local extension).

* Drops sphinx-thebe's scripts from every page. Jupyter Book always loads sphinx-thebe; the course
  does not use Thebe (``launch_buttons.thebe: false``; the Colab and Binder links need no script),
  and sphinx-thebe 0.3.1 adds its configuration script twice here, which the browser reports as
  an error ("Identifier 'THEBE_JS_URL' has already been declared"). Its configuration also names
  a CDN.
"""

from __future__ import annotations


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


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
