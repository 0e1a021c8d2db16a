"""Docutils helpers shared by the ``dn_*`` Sphinx extensions (not an extension itself).

``dn_catalog``, ``dn_screening`` and ``dn_tables`` build their tables, field lists and
cross-references with these, so every generated page is rendered the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, TypeAlias

from docutils import nodes
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

import dryneedle
from dryneedle.policy import POLICIES, Policy

#: What a table cell or a field body is made of: a string, an inline node, a body element
#: (used as it is) or a list of inline nodes.
Content: TypeAlias = str | nodes.Node | Sequence[nodes.Node]


def code(text: str) -> nodes.literal:
    """Inline code."""
    return nodes.literal(text, text)


def para(*children: nodes.Node | str) -> nodes.paragraph:
    """A paragraph of strings and inline nodes."""
    p = nodes.paragraph()
    for c in children:
        p += nodes.Text(c) if isinstance(c, str) else c
    return p


def xref(docname: str, reftype: str, target: str, label: str | None = None) -> nodes.Node:
    """A checked (``-n``) cross-reference to a ``rule``, ``source`` or ``limit`` target.

    The targets are defined by ``dn_catalog`` on the rule catalog and bibliography pages; the
    link shows ``label`` (default: the target's name) as code.
    """
    ref = addnodes.pending_xref(
        "", refdomain="std", reftype=reftype, reftarget=target, refdoc=docname,
        refexplicit=True, refwarn=True,
    )
    ref += code(label or target)
    return ref


def joined(items: Sequence[nodes.Node], sep: str = ", ") -> list[nodes.Node]:
    """``items`` with the text ``sep`` between each two."""
    out: list[nodes.Node] = []
    for i, item in enumerate(items):
        if i:
            out.append(nodes.Text(sep))
        out.append(item)
    return out


def block(content: Content) -> nodes.Node:
    """``content`` as a body element: a body element as it is, anything else in a paragraph."""
    if isinstance(content, str):
        return para(content)
    if isinstance(content, nodes.Body):
        return content
    if isinstance(content, nodes.Node):
        return para(content)
    return para(*content)


def cell(content: Content) -> nodes.entry:
    """A table cell (see :data:`Content`)."""
    entry = nodes.entry()
    entry += block(content)
    return entry


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Content]],
    widths: Sequence[int],
    classes: Sequence[str] = (),
) -> nodes.table:
    """A table with a header row; each row is a sequence of cell contents."""
    tab = nodes.table(classes=["dn-table", *classes])
    group = nodes.tgroup(cols=len(headers))
    tab += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    row = nodes.row()
    for h in headers:
        row += cell(h)
    head += row
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        for c in cells:
            row += cell(c)
        body += row
    group += body
    return tab


def field_list(fields: Sequence[tuple[str, Content]]) -> nodes.field_list:
    """A field list (class ``dn-fields``) of ``(name, body content)`` pairs."""
    fl = nodes.field_list(classes=["dn-fields"])
    for name, body in fields:
        field = nodes.field()
        field += nodes.field_name(name, name)
        fb = nodes.field_body()
        fb += block(body)
        field += fb
        fl += field
    return fl


def fmt_number(value: float) -> str:
    """A limit's value as the docs show it (``40``, not ``40.0``)."""
    return f"{value:g}"


def builtin_policies() -> tuple[Policy, ...]:
    """The built-in policies, in registry order (``default`` first)."""
    return tuple(POLICIES.values())


class GeneratedDirective(SphinxDirective):
    """A directive whose output is generated from the library (rebuilt when it changes).

    Subclasses implement :meth:`generate`. With ``verbatim`` set, the output's text is shown
    as the registry has it: no typographic quotes.
    """

    has_content = False
    verbatim: ClassVar[bool] = False

    def run(self) -> list[nodes.Node]:
        package = Path(dryneedle.__file__).parent
        for path in sorted(package.rglob("*.py")):
            self.env.note_dependency(str(path))
        out = self.generate()
        if self.verbatim:
            for node in out:
                if isinstance(node, nodes.Element):
                    node["support_smartquotes"] = False
        return out

    def generate(self) -> list[nodes.Node]:
        """The directive's nodes."""
        raise NotImplementedError
