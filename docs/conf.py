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
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
nitpicky = True
# Names from the typing world that autodoc cannot link anywhere.
nitpick_ignore_regex = [
    (r"py:.*", r"anysgi\._types\..*"),
    # The same aliases where autodoc keeps their bare name (a class's __init__ signature).
    (r"py:class", r"(ASGIApp|WSGIApp|Environ|StartResponse|Scope|Message)"),
    (r"py:class", r"_io\..*"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_type_aliases: dict[str, str] = {
    # Typing aliases used in public signatures: shown by name, left unlinked (see above).
    "ASGIApp": "anysgi._types.ASGIApp",
    "Environ": "anysgi._types.Environ",
    "StartResponse": "anysgi._types.StartResponse",
}

# No intersphinx: builds must work offline (CI has no internet beyond package
# registries), so names from the standard library, anyio and httpx are not linked.
_EXTERNAL = (
    r"(builtins|collections|collections\.abc|typing|typing_extensions|types|socket|ssl|os|io|"
    r"logging|enum|pathlib|concurrent\.futures|anyio|anyio\..*|httpx|trio)"
)
_BUILTINS = (
    r"(bytes|bytearray|memoryview|str|int|float|bool|dict|list|tuple|set|frozenset|object|None|"
    r"type|callable|BaseException|Exception|ValueError|TypeError|RuntimeError|OSError|"
    r"ImportError|KeyError|TimeoutError|EOFError|ExceptionGroup|BaseExceptionGroup|"
    r"NotImplemented|Ellipsis|IntEnum|Enum|Any|Callable|Awaitable|Iterable|Iterator|Mapping|"
    r"MutableMapping|Sequence|Literal|TypeAlias|Protocol|Optional|Union)"
)
nitpick_ignore_regex += [
    (r"py:.*", _EXTERNAL + r"\..*"),
    (r"py:.*", _BUILTINS),
]

html_theme = "furo"
html_title = f"anysgi {release}"
