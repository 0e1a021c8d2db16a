"""Public faces over private modules: present moved names as members of their face.

The public modules (:mod:`dryneedle.screening`, :mod:`dryneedle.protocol`,
:mod:`dryneedle.aftercare`, :mod:`dryneedle.records`) re-export classes written in private
modules. :func:`present_here` makes each such class a member of its face (its ``__module__``), so
tracebacks, pickles and the API reference name ``dryneedle.screening.ScreeningResult``, as
before the code moved. :func:`data_text` reads the package's data files (``dryneedle/data``)
for the modules that hold reference data and rules, without :mod:`importlib.resources`.

Layer: the lowest, beside ``dryneedle._version``. Imports only the standard library.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["data_text", "present_here"]

_DATA_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def data_text(name: str) -> str:
    """Return the text (UTF-8) of the data file ``name`` of ``dryneedle/data``.

    The file is read straight from the directory beside this module; only when the package
    does not live in a directory (a zip import) does :mod:`importlib.resources` read it.
    Importing ``importlib.resources`` (with ``pathlib``, ``zipfile``, ``urllib.parse``...)
    would cost every ``dryneedle`` command about 10 ms of start-up.

    >>> from dryneedle.exports import data_text
    >>> data_text("rules.toml").startswith("[header]")
    True
    """
    try:
        with open(os.path.join(_DATA_DIRECTORY, name), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:  # not a directory on disk (e.g. a zip import)
        from importlib import resources  # noqa: PLC0415

        return resources.files("dryneedle").joinpath("data", name).read_text(encoding="utf-8")


def present_here(namespace: Mapping[str, Any], names: Iterable[str], private: str) -> None:
    """Present the public classes of ``names`` as members of the module of ``namespace``.

    A class whose ``__module__`` is under the private package ``private`` (for example
    ``"dryneedle._screening"``) gets the face's module name. Its own annotations are resolved
    first, where they were written, so :func:`typing.get_type_hints` keeps working on it.
    Functions keep their own module, so their doctests run where they are written.

    Args:
        namespace: The face's ``globals()``.
        names: The names to present (the face's ``__all__``).
        private: The private package whose classes move (without a trailing dot).

    >>> import dryneedle.screening as screening
    >>> screening.ScreeningResult.__module__
    'dryneedle.screening'
    """
    module = namespace["__name__"]
    prefix = private + "."
    for name in names:
        obj = namespace[name]
        if isinstance(obj, type) and obj.__module__.startswith(prefix):
            own = inspect.get_annotations(obj)
            if own:
                hints = typing.get_type_hints(obj, include_extras=True)
                obj.__annotations__ = {key: hints[key] for key in own}
            obj.__module__ = module
