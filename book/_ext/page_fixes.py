"""Fixes for a book that works offline with a clean browser console on every page.

1. Duplicated <script> entries are dropped. With jupyter-book 1.0.4 and sphinx-thebe
   0.3.1, sphinx-thebe's set-up runs on each ``env-before-read-docs`` event and can
   register its inline ``const THEBE_JS_URL = ...`` script twice; the browser then stops
   with "Identifier 'THEBE_JS_URL' has already been declared". The book uses no
   live-code (thebe) buttons, so keeping the first copy of each script is enough.

2. On a reader's first visit (empty localStorage) sphinx-book-theme sets
   ``document.documentElement.dataset.mode`` to ``""`` and pydata-sphinx-theme then logs
   "Got invalid theme mode: . Resetting to auto." as a console error. An inline script
   that runs before the theme's deferred bundle sets the empty mode to ``"auto"``, which
   is what the theme falls back to anyway.

3. MathJax is served from the book itself, not from a CDN, when the PyPI package
   ``django-static-mathjax`` (MathJax 3's files, no dependencies) is installed: the
   ``tex-svg.js`` bundle (fonts included) is copied to ``_static/mathjax/`` together
   with MathJax's TeX extensions, ``input/tex/extensions/*.js`` (about 0.5 MB), laid
   out as MathJax expects them beside the bundle. The bundle holds only the base, ams,
   newcommand, noundefined, require, configmacros and autoload packages; autoload
   fetches any other package the first time a page uses one of its macros (e.g.
   ``\boldsymbol`` -> ``input/tex/extensions/boldsymbol.js``). Without that file the
   request is a 404 and MathJax stops typesetting the whole page, leaving raw TeX in
   every formula (chapters 4 and 6). Serving the extensions keeps the bundle's default
   set of packages and lets any macro work offline. Without the package Sphinx's
   default CDN is used (and the book is no longer offline).
"""

import shutil
from pathlib import Path

_MATHJAX_BUNDLE = "tex-svg.js"
_TEX_EXTENSIONS = Path(
    "input", "tex", "extensions"
)  # loaded on demand, relative to the bundle


def _mathjax_files():
    try:
        import mathjax  # the django-static-mathjax distribution
    except ImportError:
        return None
    for folder in getattr(mathjax, "__path__", []):
        es5 = Path(folder) / "static" / "mathjax" / "es5"
        if (es5 / _MATHJAX_BUNDLE).exists() and (es5 / _TEX_EXTENSIONS).is_dir():
            return es5
    return None


def _use_local_mathjax(app, config):
    if _mathjax_files() is not None:
        config.mathjax_path = f"mathjax/{_MATHJAX_BUNDLE}"


def _copy_mathjax(app, exception):
    es5 = _mathjax_files()
    if exception is not None or es5 is None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / _MATHJAX_BUNDLE, target / _MATHJAX_BUNDLE)
    shutil.copytree(es5 / _TEX_EXTENSIONS, target / _TEX_EXTENSIONS, dirs_exist_ok=True)
    licence = es5.parent / "LICENSE"
    if licence.exists():
        shutil.copy2(licence, target / "LICENSE")


_MODE_FIX = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def _key(script):
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    app.add_js_file(None, body=_MODE_FIX, priority=900)
    app.connect(
        "html-page-context", _dedupe, priority=100
    )  # early: emit_firstresult stops at the first handler returning a value
    return {"parallel_read_safe": True, "parallel_write_safe": True}
