"""Sphinx configuration for the dryneedle documentation.

Built offline with warnings as errors (CI runs exactly these):

    python -m sphinx -n -W --keep-going -b html docs docs/_build/html
    python -m sphinx -b doctest docs docs/_build/doctest

Everything that could drift from the code is generated at build time from the code itself:
the rule catalog, policy limits, bibliography, anatomy table, JSON Schema, CLI reference
(``_ext/dn_catalog.py``) and the diagrams (``_ext/dn_diagrams.py``, SVG written to
``docs/_generated/``, which is not committed).
"""

from __future__ import annotations

import doctest
import inspect
import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT / "src"))

from dryneedle import __version__  # noqa: E402 - after the path set-up above

# -- Project ---------------------------------------------------------------------------------

project = "dryneedle"
author = "dryneedle developers"
copyright = "dryneedle developers"
version = release = __version__

# -- General ---------------------------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "dn_catalog",  # rule catalog, limits, bibliography, catalogs, schema, CLI
    "dn_diagrams",  # SVG diagrams drawn from the registry and the anatomy catalog
    "dn_screening",  # the screening guide's tables
    "dn_tables",  # the protocol guide's tables
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

# Nitpicky (-n): every reference into dryneedle must resolve. The only references ignored are
# those into the standard library and into the optional third-party packages, whose
# inventories cannot be fetched offline (no intersphinx). Builtins and ``typing`` names
# resolve without an inventory.
_STDLIB = "|".join(sorted(n for n in sys.stdlib_module_names if not n.startswith("_")))
_THIRD_PARTY = ("attrs|attr|cattrs|hypothesis|starlette|uvicorn|dask|distributed|fsspec|orjson|"
                "rich|pyspark")
nitpicky = True
nitpick_ignore_regex = [
    (r"py:mod", rf"({_STDLIB}|{_THIRD_PARTY})(\..*)?"),
    (r"py:(class|obj|data|exc|func|meth|attr)", rf"({_STDLIB})\..+"),
    (r"py:(class|obj|data|exc|func|meth|attr)", rf"({_THIRD_PARTY})(\..*)?"),
    # Names Sphinx leaves unqualified in some annotations (all standard library or attrs).
    (r"py:class", r"(date|Mapping|Iterable|Iterator|Sequence|Callable|MappingProxyType|"
     r"Path|TextIO|ArgumentParser|Converter|StrEnum|Enum|Starlette)"),
]

# -- autodoc / napoleon ----------------------------------------------------------------------

autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": False,
}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = False  # Attributes: sections become link targets
napoleon_use_rtype = False
napoleon_attr_annotations = True

# -- doctest ---------------------------------------------------------------------------------

# Tutorials read the example files relative to the repository root, as a reader would.
# ``_missing(name)`` lets an example that needs an optional extra say ``:skipif:``.
doctest_global_setup = f"""
import os as _os
from importlib.util import find_spec as _find_spec
_os.chdir({str(ROOT)!r})
def _missing(name):
    return _find_spec(name) is None
"""
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)

# -- HTML ------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"dryneedle {release}"
html_static_path = ["_static"]
html_css_files = ["dryneedle.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
}


# -- Data docstrings -------------------------------------------------------------------------

# Google style reads "Type: text" on the first line of an attribute's docstring as its type.
# Our module constants document themselves in prose ("Exit code: no errors found."), so a
# "type" that is plain words is put back as prose (their real types come from annotations).
_TYPE_WORDS = re.compile(r"^\w+( or \w+)*$")
_before_napoleon: dict[str, Any] = {}


def _keep_original(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    _before_napoleon["last"] = (what, name, list(lines))


def _restore_prose(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    saved = _before_napoleon.get("last")
    if what not in {"data", "attribute"} or saved is None or saved[:2] != (what, name):
        return
    for line in lines:
        if line.startswith(":type: "):
            kind = line[len(":type: "):].strip()
            if " " in kind and not _TYPE_WORDS.match(kind) and not set(kind) & set("[|`"):
                lines[:] = saved[2]
            break


# A class's ``Attributes:`` section may list a property, which autodoc also documents from its
# own docstring: keep the property's entry only (else "duplicate object description").
_ENTRY = re.compile(r"^    (\w+)\b")


def _drop_documented_properties(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what != "class" or "Attributes:" not in lines:
        return
    start = lines.index("Attributes:") + 1
    end = next((i for i in range(start, len(lines)) if lines[i][:1] not in ("", " ")), len(lines))
    keep: list[str] = []
    dropping = False
    for line in lines[start:end]:
        m = _ENTRY.match(line)
        if m:
            attr = inspect.getattr_static(obj, m.group(1), None)
            dropping = isinstance(attr, property)
        if not dropping:
            keep.append(line)
    lines[start:end] = keep


# Type hints are cross-referenced by a fuzzy search, so a bare ``date`` (Sphinx leaves the
# arguments of ``Callable[[...], date]`` unqualified) would match ``Session.date`` and
# ``SiteFinding.date``. Qualify such bare standard-library names before references resolve.
_BARE_TYPES = {"date": "datetime.date", "datetime": "datetime.datetime"}


def _qualify_bare_types(app: Any, doctree: Any) -> None:
    from sphinx import addnodes  # noqa: PLC0415

    for node in doctree.findall(addnodes.pending_xref):
        target = node.get("reftarget")
        if node.get("refdomain") == "py" and "refspecific" in node and target in _BARE_TYPES:
            node["reftarget"] = _BARE_TYPES[target]


# Named-tuple fields come with generated "Alias for field number N" docstrings; the class's
# ``Attributes:`` section documents them, so autodoc skips the generated ones.
def _skip_tuple_fields(
    app: Any, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True
    return None


def setup(app: Any) -> None:
    """Adjust napoleon and autodoc to our docstrings (see the comments above)."""
    app.connect("autodoc-skip-member", _skip_tuple_fields)
    app.connect("autodoc-process-docstring", _drop_documented_properties, priority=498)
    app.connect("autodoc-process-docstring", _keep_original, priority=499)
    app.connect("autodoc-process-docstring", _restore_prose, priority=501)
    app.connect("doctree-read", _qualify_bare_types)
