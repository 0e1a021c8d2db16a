"""The README's Python example runs and prints what its comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_example_runs() -> None:
    """The ten-line example screens the patient not_eligible and lists cited findings."""
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "not_eligible"
    assert any(line.startswith("screening.anticoagulant_therapy ") for line in lines[1:])


def test_readme_gives_exactly_two_commands_first() -> None:
    """The first code block holds the two set-up-and-run commands, and the test command."""
    first = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)[0]
    commands = [ln for ln in first.splitlines() if ln and not ln.startswith("#")]
    assert len(commands) == 2
    assert "dryneedle validate examples/sessions.jsonl" in commands[0]
    assert commands[1] == ".venv/bin/python -m pytest"
