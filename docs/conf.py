"""Sphinx configuration of the reference manual (docs/).

Built by CI with warnings as errors (`make docs`): `sphinx-build -W -n -b
html docs docs/_build/html`. The API pages are autodoc of the *installed*
package, so the text is the docstrings compiled into it (both backends'
classes included), and the narrative pages include README.md's sections,
so nothing is written twice. Offline: no intersphinx, no remote theme.

Sphinx rather than MkDocs: autodoc imports the compiled extensions and reads
the docstrings Cython and cffi put in them, which a static reader of the
source (mkdocstrings' griffe) cannot see inside a .so; MyST lets README's
Markdown sections be included as they are; both come from PyPI alone.
"""

from __future__ import annotations

import spread

project = "spread-client"
author = "the spread-client authors"
copyright = "the spread-client authors, MIT License"
release = spread.__version__
version = release

extensions = ["sphinx.ext.autodoc", "myst_parser"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

# README.md's sections are included as they are, under each page's own
# title: their headings start a level down, and their in-page links
# (#backends, ...) point at sections that other pages hold.
suppress_warnings = ["myst.header", "myst.xref_missing"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Cython's and cffi's methods carry their signature as the docstring's first
# line; the stubs (.pyi) carry the types for checkers.
autodoc_docstring_signature = True
autodoc_typehints = "none"
# The public names are re-exported from private modules: documented where
# the user imports them.
add_module_names = True
nitpicky = False

# spread.aio's docstrings are plain text (indented examples, `*_nowait`),
# not reStructuredText: shown as written, in a literal block.
PLAIN_TEXT_DOCSTRINGS = ("spread.aio",)


def _plain_text(app, what, name, obj, options, lines):
    if name.startswith(PLAIN_TEXT_DOCSTRINGS) and lines:
        lines[:] = ["::", "", *(f"    {line}" for line in lines), ""]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_text)
