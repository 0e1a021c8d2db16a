"""Source generation for the walkers of :mod:`._structure` (the code is ``exec``-ed there).

For each model class, :func:`walker_source` writes the Python source of its strict walker
``_w_<Class>(d, p, out)`` (every structural problem appended to ``out``, the instance returned,
or ``BAD`` when any error was found below it) or of its readable walker ``_r_<Class>`` (the
same findings in the same order, and always the instance: wrapped in ``_Failed`` when it has
errors, with each unreadable value unknown, each unreadable object a placeholder). The names
the source uses (``_type``, ``_MISSING``, ``_P_<Class>``, ...) are supplied by
:mod:`._structure`; the per-class constants (enum tables, defaults, slot setters) are added to
the namespace ``ns`` here.

May import: :mod:`._fields` (and attrs).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import attrs

from dryneedle.records._fields import FieldSpec, field_specs

__all__ = ["check_lines", "fill_expression", "readable_lines", "slot_setter", "walker_source"]


def fill_expression(cls: type, spec: FieldSpec, ns: dict[str, Any]) -> str:
    """Return the expression of an optional field's value when it is absent or ``null``.

    Args:
        cls: The model class.
        spec: The field's specification.
        ns: The walkers' namespace (a factory default is made once and added to it).
    """
    default: Any = attrs.fields_dict(cls)[spec.name].default
    if spec.nullable and spec.kind == "array":
        return "None"  # an absent or null list is unknown, never "none" (SPEC 1.1)
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        name = f"_D_{cls.__name__}_{spec.name}"
        if name not in ns:  # one default object for every set of walkers
            ns[name] = default.factory()
        return name
    return repr(default)


def check_lines(cls: type, spec: FieldSpec, ns: dict[str, Any]) -> list[str]:
    """Return the strict walker's lines checking one field into local ``v_<name>``.

    Args:
        cls: The model class.
        spec: The field's specification.
        ns: The walkers' namespace (enum tables and defaults are added to it).
    """
    n = spec.name
    v = f"v_{n}"
    path = f"(p + {'.' + n!r})"
    lines = [f"{v} = d.get({n!r}, _MISSING)"]
    if spec.required:
        absent = [f"    ok = False; out.append(_type({path}, {v}, EXP))"]
    else:
        absent = [f"    {v} = {fill_expression(cls, spec, ns)}"]
    null_test = f"{v} is None or {v} is _MISSING"

    def block(ok_test: str, on_ok: list[str], expected: str) -> list[str]:
        out = [f"if {ok_test}:"]
        out += ["    " + line for line in (on_ok or ["pass"])]
        out.append(f"elif {null_test}:")
        out += [line.replace("EXP", repr(expected)) for line in absent]
        out.append("else:")
        out.append(f"    ok = False; out.append(_type({path}, {v}, {expected!r}))")
        return out

    if spec.kind == "bool":
        return lines + block(f"{v} is True or {v} is False", [], "true, false or null"
                             if not spec.required else "true or false")
    if spec.kind == "str":
        on_ok = [f"if not {v}.isascii() and _has_surrogate({v}):",
                 f"    ok = False; out.append(_not_text({path}))"]
        return lines + block(f"{v}.__class__ is str and {v}", on_ok, "a non-empty string")
    if spec.kind == "int":
        # JSON Schema semantics: an integral float (1.0, 1e2) is an integer.
        check = [
            f"if {v}.__class__ is float:",
            f"    if {v} - {v} != 0.0: {v} = None",
            f"    elif {v}.is_integer(): {v} = int({v})",
            f"if {v}.__class__ is float:",
            f"    ok = False; out.append(_type({path}, {v}, 'an integer'))",
            f"elif {v} is None or not _INT_MIN <= {v} <= _INT_MAX:",
            f"    ok = False; out.append(_range({path}, 'integer is out of range (64 bits)'))",
        ]
        if spec.minimum is not None:
            check += [
                f"elif {v} < {spec.minimum!r}:",
                f"    ok = False; out.append(_range({path}, 'must be at least {spec.minimum}'))",
            ]
        return lines + block(f"{v}.__class__ is int or {v}.__class__ is float", check,
                             "an integer")
    if spec.kind == "float":
        on_ok = [
            f"if {v}.__class__ is int:",
            f"    if -_MAX_DOUBLE <= {v} <= _MAX_DOUBLE: {v} = float({v})",
            f"    else: ok = False; out.append(_range({path}, 'number is out of range'))",
            f"elif {v} - {v} != 0.0:",
            f"    ok = False; out.append(_range({path}, 'number must be finite'))",
        ]
        return lines + block(f"{v}.__class__ is float or {v}.__class__ is int", on_ok, "a number")
    if spec.kind == "date":
        on_ok = [
            f"_dv = _DATE_CACHE.get({v})",
            "if _dv is None: _dv = _parse_date(" + v + ")",
            "if _dv is None:",
            f"    ok = False; out.append(_date_err({path}))",
            f"else: {v} = _dv",
        ]
        return lines + block(f"{v}.__class__ is str", on_ok, "an ISO date string")
    if spec.kind in ("enum", "muscle"):
        if spec.kind == "enum":
            table = f"_E_{spec.target.__name__}"
            ns[table] = {m.value: m for m in spec.target}
            allowed = "one of: " + ", ".join(m.value for m in spec.target)
        else:
            table = "_MUSCLES"
            allowed = "a muscle id of the anatomy catalog"
        on_ok = [
            f"_ev = {table}.get({v})",
            "if _ev is None:",
            f"    ok = False; out.append(_enum({path}, {allowed!r}))",
            f"else: {v} = _ev",
        ]
        if spec.kind == "muscle":
            on_ok[-1] = "else: pass"
        return lines + block(f"{v}.__class__ is str", on_ok, "a string")
    if spec.kind == "object":
        walker = f"_w_{spec.target.__name__}"
        on_ok = [f"{v} = {walker}({v}, {path}, out)", f"if {v} is BAD: ok = False"]
        return lines + block(f"{v}.__class__ is dict", on_ok, "an object")
    if spec.kind == "array":
        if spec.target == "condition":
            on_ok = [
                f"for _i, _x in enumerate({v}):",
                "    if _x.__class__ is not str:",
                f"        ok = False; out.append(_type(f'{{p}}.{n}[{{_i}}]', _x, 'a string'))",
                "    elif _x not in _CONDITIONS:",
                f"        ok = False; out.append(_enum(f'{{p}}.{n}[{{_i}}]', "
                "'a condition id of the condition catalog'))",
                f"{v} = tuple({v})",
            ]
        else:
            walker = f"_w_{spec.target.__name__}"
            on_ok = [
                "_items = []",
                f"_ip = {path}",
                f"for _i, _x in enumerate({v}):",
                f"    _r = {walker}(_x, f'{{_ip}}[{{_i}}]', out)",
                "    if _r is BAD: ok = False",
                "    else: _items.append(_r)",
                f"{v} = tuple(_items)",
            ]
        return lines + block(f"{v}.__class__ is list", on_ok, "an array")
    msg = f"no generator for kind {spec.kind!r}"  # pragma: no cover
    raise AssertionError(msg)


def readable_lines(
    cls: type, spec: FieldSpec, ns: dict[str, Any], prefix: str = "_r_"
) -> list[str]:
    """Return the readable walker's lines for one field: the strict findings, a lenient value.

    Every finding is the strict walker's, in the same order; an unreadable value becomes
    unknown (``None``), an unreadable object a placeholder, an unreadable item of an array a
    placeholder at its position, an unreadable array unknown, and the object is failed
    (``ok = False``) but still built.

    Args:
        cls: The model class.
        spec: The field's specification.
        ns: The walkers' namespace (enum tables and defaults are added to it).
        prefix: The prefix of the nested walkers called (``_r_``, or ``_q_`` for the quick
            readable walkers of :func:`walker_source`).
    """
    n = spec.name
    v = f"v_{n}"
    path = f"(p + {'.' + n!r})"
    if spec.kind not in ("object", "array"):  # a leaf: unknown where the strict check fails
        return [f"{line}; {v} = None" if "ok = False; out.append(" in line else line
                for line in check_lines(cls, spec, ns)]
    expected = "an object" if spec.kind == "object" else "an array"
    if spec.kind == "object":
        unreadable = f"_P_{spec.target.__name__}"
        on_ok = [f"{v} = {prefix}{spec.target.__name__}({v}, {path}, out)",
                 f"if {v}.__class__ is _Failed: ok = False; {v} = {v}.value"]
    elif spec.target == "condition":
        unreadable = "None"
        on_ok = [
            "_cb = False",
            f"for _i, _x in enumerate({v}):",
            "    if _x.__class__ is not str:",
            f"        ok = False; _cb = True; out.append(_type(f'{{p}}.{n}[{{_i}}]', _x, "
            "'a string'))",
            "    elif _x not in _CONDITIONS:",
            f"        ok = False; _cb = True; out.append(_enum(f'{{p}}.{n}[{{_i}}]', "
            "'a condition id of the condition catalog'))",
            f"if _cb: {v} = tuple([_x if _x.__class__ is str and _x in _CONDITIONS else None "
            f"for _x in {v}])",
            f"else: {v} = tuple({v})",
        ]
    else:
        unreadable = "None"
        on_ok = [
            "_items = []",
            f"_ip = {path}",
            f"for _i, _x in enumerate({v}):",
            f"    _r = {prefix}{spec.target.__name__}(_x, f'{{_ip}}[{{_i}}]', out)",
            "    if _r.__class__ is _Failed: ok = False; _r = _r.value",
            "    _items.append(_r)",
            f"{v} = tuple(_items)",
        ]
    container = "dict" if spec.kind == "object" else "list"
    lines = [f"{v} = d.get({n!r}, _MISSING)", f"if {v}.__class__ is {container}:"]
    lines += ["    " + line for line in on_ok]
    lines.append(f"elif {v} is None or {v} is _MISSING:")
    if spec.required:
        fill = unreadable if spec.kind == "object" else ("None" if spec.nullable else "()")
        lines.append(f"    ok = False; out.append(_type({path}, {v}, {expected!r})); {v} = {fill}")
    else:
        lines.append(f"    {v} = {fill_expression(cls, spec, ns)}")
    lines.append("else:")
    lines.append(f"    ok = False; out.append(_type({path}, {v}, {expected!r})); "
                 f"{v} = {unreadable}")
    return lines


def walker_source(
    cls: type, ns: dict[str, Any], *, readable: bool = False, quick: bool = False
) -> str:
    """Return the source of the strict (or, with ``readable``, the readable) walker of ``cls``.

    With ``quick`` (and ``readable``), the *quick* readable walker ``_q_<Class>``: the
    readable walker that first asks msgspec to convert the object into its mirror
    (``_cv(d, _T_<Class>)``, the namespace supplies both and the error ``_CVE``) and returns
    the mirror when it converts (a clean object: no finding), else walks the object's own
    fields as ``_r_<Class>`` does, its nested objects by their quick walkers. Only for values
    whose conversion means what the walker means (see :func:`._structure.walk_readable`).

    Args:
        cls: A model class (its nested classes' walkers are called by name).
        ns: The namespace the source will run in; per-class constants are added to it.
        readable: Write ``_r_<Class>`` instead of ``_w_<Class>``.
        quick: Write ``_q_<Class>`` (with ``readable``).
    """
    name = cls.__name__
    specs = field_specs(cls)
    ns[f"_C_{name}"] = cls
    ns[f"_K_{name}"] = frozenset(s.name for s in specs)
    for spec in specs:  # each slot's setter, bound once (cheaper than object.__setattr__)
        ns[f"_S_{name}_{spec.name}"] = slot_setter(cls, spec.name)
    body = [
        "if d.__class__ is not dict:",
        "    out.append(_type(p, d, 'an object'))",
        f"    return _F_{name}" if readable else "    return BAD",
        *((f"try: return _cv(d, _T_{name})", "except _CVE: pass") if quick else ()),
        f"if _DUPS in d: d = _dedupe(d, _C_{name}, p, out)",
        "ok = True",
    ]
    prefix = "_q_" if quick else "_r_" if readable else "_w_"
    for spec in specs:
        body += (readable_lines(cls, spec, ns, prefix) if readable
                 else check_lines(cls, spec, ns))
    body += [
        f"if not d.keys() <= _K_{name}: _unknown(d, _K_{name}, p, out)",
        *(() if readable else ("if not ok: return BAD",)),
        # Every value was checked above: build the instance without re-running the model's
        # type guards, setting each slot through its descriptor (as object.__setattr__, the
        # way attrs itself sets frozen slots, ends up doing, without the name lookup).
        f"_o = _new(_C_{name})",
        *(f"_S_{name}_{s.name}(_o, v_{s.name})" for s in specs),
        "return _o if ok else _Failed(_o)" if readable else "return _o",
    ]
    return f"def {prefix}{name}(d, p, out):\n" + "\n".join("    " + line for line in body) + "\n"


def slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """Return the ``__set__`` of a slotted class's own slot (what ``object.__setattr__`` calls).

    Args:
        cls: A slotted (attrs) class.
        name: One of its fields.

    Raises:
        TypeError: When ``name`` is not a slot of ``cls`` itself.
    """
    slot = vars(cls)[name]
    if not isinstance(slot, types.MemberDescriptorType):  # pragma: no cover - guards models
        msg = f"{cls.__name__}.{name} is not a slot of its own"
        raise TypeError(msg)
    setter: Callable[[Any, Any], None] = slot.__set__
    return setter
