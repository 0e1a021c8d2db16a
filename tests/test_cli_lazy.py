"""Lazy sub-commands (issue #17): ``main()`` imports only the module of the command it runs.

The placeholders of the other commands must read exactly as the real ones in ``--help`` and
in usage errors, and validating must import neither aftercare, FHIR, the service nor the
output writers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dryneedle
from dryneedle import cli

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [name for _, commands in cli._MODULES for name, _ in commands] + ["rules", "schema"]


def _sub(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action


def _listing(parser: argparse.ArgumentParser) -> list[tuple[str, str | None]]:
    return [(a.dest, a.help) for a in _sub(parser)._choices_actions]


def test_the_table_matches_the_modules() -> None:
    """Names, order and help of every sub-command, as the modules register them."""
    full = cli.build_parser()
    assert [name for name, _ in _listing(full)] == COMMANDS
    expected = _listing(full)
    for command in COMMANDS:
        lazy = cli.build_parser(command)
        assert _listing(lazy) == expected, command
        assert lazy.format_help() == full.format_help()
        assert lazy.format_usage() == full.format_usage()
        real = _sub(lazy).choices[command]
        assert real.format_help() == _sub(full).choices[command].format_help(), command


@pytest.mark.parametrize("argv", [["validate"], ["nosuch"], [], ["--help"], ["--version"],
                                  ["validate", "--help"], ["fhir", "screen", "--help"],
                                  ["rules", "--nosuch"], ["--nosuch"], ["-h", "validate"],
                                  ["valid"], ["--", "schema"], ["fhir"]])
def test_usage_and_help_read_the_same(argv: list[str], capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = []
    full = cli.build_parser
    for build in (full, lambda command=None: full()):
        monkeypatch.setattr(cli, "build_parser", build)
        code = cli.main(argv)
        captured = capsys.readouterr()
        outputs.append((code, captured.out, captured.err))
    assert outputs[0] == outputs[1]


def test_the_command_is_the_first_argument_that_is_not_an_option() -> None:
    assert cli._command_of(["validate", "x.jsonl"]) == "validate"
    assert cli._command_of(["--help", "screen"]) == "screen"
    assert cli._command_of(["-x", "rules"]) == "rules"
    assert cli._command_of(["x.jsonl", "validate"]) == "x.jsonl"  # placeholders only
    assert cli._command_of(["--", "validate"]) == "validate"  # argparse reads it so, too
    assert cli._command_of(["--version"]) == ""


def test_validating_imports_only_what_it_needs(tmp_path: Path) -> None:
    line = (ROOT / "examples" / "sessions.jsonl").read_bytes().splitlines()[0]
    path = tmp_path / "one.jsonl"
    path.write_bytes(line + b"\n")
    code = (
        "import sys\n"
        "from dryneedle.cli import main\n"
        f"code = main(['validate', {str(path)!r}, '--quiet', '-o', {os.devnull!r}])\n"
        "assert code in (0, 1), code\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    src = str(Path(dryneedle.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    loaded = set(out)
    assert "dryneedle.records" in loaded
    for module in ("dryneedle.aftercare", "dryneedle.fhir", "dryneedle.service",
                   "dryneedle.cli._aftercare", "dryneedle.cli._fhir", "dryneedle.cli._screen",
                   "dryneedle.cli._report", "dryneedle.outputs.formats",
                   "dryneedle.outputs.report", "concurrent.futures.process"):
        assert module not in loaded, module
