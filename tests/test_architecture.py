"""The house rules of docs/architecture.md that import-linter does not check by itself."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# A public face may import its own private package (the design card's modules over theirs).
FACES = {
    "dryneedle.aftercare": "dryneedle._aftercare",
    "dryneedle.protocol": "dryneedle._protocol",
    "dryneedle.screening": "dryneedle._screening",
    "dryneedle.policy": "dryneedle._policy_limits",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_owner(target: str) -> str | None:
    """The package that owns the first private part of ``target``, or ``None``."""
    parts = target.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__") and part != "_version":
            return ".".join(parts[: i + 1]) if i == 1 else ".".join(parts[:i])
    return None


def test_no_module_imports_another_packages_private_module() -> None:
    """No cross-module privates: a helper two packages need is public in the lower one."""
    offenders = []
    for path in sorted((SRC / "dryneedle").rglob("*.py")):
        here = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if not node.module.startswith("dryneedle"):
                continue
            for target in (node.module, *(f"{node.module}.{a.name}" for a in node.names)):
                owner = _private_owner(target)
                if owner is None:
                    continue
                package = owner.rsplit(".", 1)[0] if owner.count(".") > 1 else owner
                inside = here == package or here.startswith(package + ".")
                if not inside and FACES.get(here) != owner:
                    offenders.append(f"{here} imports {target}")
                break
    assert offenders == []
