"""Sphinx configuration. Built with ``nox -s docs`` (nitpicky, warnings as errors)."""

from __future__ import annotations

import anysgi

project = "anysgi"
author = "The anysgi developers"
copyright = "2026, The anysgi developers"
release = anysgi.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
nitpicky = True
# Names from the typing world that autodoc cannot link anywhere.
nitpick_ignore_regex = [
    (r"py:.*", r"anysgi\._types\..*"),
    (r"py:class", r"_io\..*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_type_aliases: dict[str, str] = {}

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anyio": ("https://anyio.readthedocs.io/en/stable", None),
    "httpx": ("https://www.python-httpx.org", None),
}
# The build machine may be offline: intersphinx then links nothing, which must not fail -W.
intersphinx_timeout = 5
suppress_warnings = ["intersphinx.external"]

html_theme = "furo"
html_title = f"anysgi {release}"
