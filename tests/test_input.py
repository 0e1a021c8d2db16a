"""Nothing lost, on any input: one regression test per item of issue #13 (spec 1.1 §6-§7).

Each test reproduces what the reliability run found and checks the class is fixed at its root:
one input layer for every subcommand, one JSON parser, one report per record.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dryneedle.cli import main
from dryneedle.records import _documents, _fast, _input, validate_records
from dryneedle.records._json import MAX_DEPTH, escape_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "sessions.jsonl"
LINES = EXAMPLES.read_bytes().splitlines()
GOOD = json.loads(LINES[0])  # r-000001: a valid record
SRC = str(ROOT / "src")


def run(capfdbinary: pytest.CaptureFixture[bytes], *argv: str | Path) -> tuple[int, bytes, str]:
    code = main([str(a) for a in argv])
    out, err = capfdbinary.readouterr()
    return code, out, err.decode("utf-8", "replace")


def rows(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def codes(row: dict[str, Any]) -> list[str]:
    return [f["code"] for f in row["findings"]]


def record(n: int = 1, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(GOOD))
    data["record_id"] = f"r-{n}"
    data.update(changes)
    return data


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


@pytest.fixture(params=[True, False], ids=["fast", "pure"])
def both_paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run a test with the accelerated path on (when installed) and off."""
    if not request.param:
        monkeypatch.setattr(_fast, "AVAILABLE", False)
    return bool(request.param)


# --- 1. invalid UTF-8 in a JSON array -----------------------------------------------------------


@pytest.mark.parametrize("where", [0, 2_000])
def test_invalid_utf8_in_a_json_array_is_one_report_and_the_rest_is_read(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], where: int
) -> None:
    """Item 1: a bad byte is that element's report; no element before or after is lost."""
    elements = [dumps(record(i)) for i in range(where + 3)]
    elements[where + 1] = b'{"record_id": "r-\xff"}'
    path = tmp_path / "a.json"
    path.write_bytes(b"[\n" + b",\n".join(elements) + b"\n]\n")
    code, out, _ = run(capfdbinary, "validate", path, "-q", "--checks", "structure")
    got = rows(out)
    assert code == 1
    assert len(got) == len(elements)
    assert [r["line"] for r in got] == list(range(2, len(elements) + 2))
    assert codes(got[where + 1]) == ["structure.json"]
    assert "can't decode byte 0xff" in got[where + 1]["findings"][0]["message"]
    assert all(r["valid"] for i, r in enumerate(got) if i != where + 1)
    code, out, _err = run(capfdbinary, "rates", path)
    assert code == 1
    assert f"{len(elements) - 1} sessions" in out.decode()
    assert "1 invalid record(s) left out" in out.decode()


# --- 2. the format comes from the name, never from sniffing -------------------------------------


def test_jsonl_line_starting_with_a_bracket_is_one_bad_record(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 2: JSONL whose first line is an array: one report per line, as the API gives."""
    lines = [LINES[146], LINES[0], LINES[1]]  # examples line 147 starts with '['
    assert lines[0].startswith(b"[")
    path = tmp_path / "first.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _, out, _ = run(capfdbinary, "validate", path, "-q")
    got = rows(out)
    assert [r["line"] for r in got] == [1, 2, 3]
    assert codes(got[0]) == ["structure.not_object"]
    api = [r.as_dict() for r in validate_records(lines)]
    assert [r["findings"] for r in got] == [r["findings"] for r in api]
    # Named .json, or --input-format json, the same bytes are one JSON document.
    _, out, _ = run(capfdbinary, "validate", path, "-q", "--input-format", "json")
    assert len(rows(out)) == 2  # the array's one element, then what follows it: reported
    assert "after the end of the JSON array" in rows(out)[-1]["findings"][0]["message"]


def test_examples_line_147_is_one_bad_record(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """Item 2: the project's own example file: 300 lines, 300 reports, line 147 not an object."""
    _, out, _ = run(capfdbinary, "validate", EXAMPLES, "-q")
    got = rows(out)
    assert len(got) == 300
    assert codes(got[146]) == ["structure.not_object"]


# --- 3. no tracebacks ----------------------------------------------------------------------------


def test_lone_surrogates_are_errors_at_their_path_on_both_paths(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], both_paths: bool
) -> None:
    """Item 3: lone-surrogate key / record_id (array and JSONL, fast or not): a report."""
    bad = record(1)
    bad["record_id"] = "\ud800"
    bad["patient"]["\udc00x"] = 1
    text = json.dumps(bad).encode()  # ensure_ascii: the surrogates are \u escapes
    outs = []
    for name, content in (("s.jsonl", text + b"\n"), ("s.json", b"[" + text + b"]")):
        path = tmp_path / name
        path.write_bytes(content)
        code, out, err = run(capfdbinary, "validate", path, "-q")
        assert code == 1, err
        (row,) = rows(out)
        assert row["record_id"] is None
        paths = {f["path"]: f["code"] for f in row["findings"]}
        assert paths["record_id"] == "structure.type"
        assert paths["patient.\\udc00x"] == "structure.type"
        outs.append(out)
        code, _sout, err = run(capfdbinary, "screen", path)
        assert code == 1
        assert "Traceback" not in err
    assert outs[0] == outs[1]


def test_integer_beyond_python_limits_is_a_range_error(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], both_paths: bool
) -> None:
    """Item 3: an integer of 5 000 digits is structure.range at its path, not a ValueError."""
    text = dumps(record(1)).replace(b'"number": 1', b'"number": ' + b"9" * 5000)
    path = tmp_path / "big.jsonl"
    path.write_bytes(text + b"\n")
    _, out, _ = run(capfdbinary, "validate", path, "-q")
    (row,) = rows(out)
    found = [(f["code"], f["path"]) for f in row["findings"]]
    # The one structural error; the clinical findings of the readable parts stay (SPEC 6 1.1).
    assert [c for c in found if c[0].startswith("structure.")] == [
        ("structure.range", "session.number")]
    assert row["valid"] is False


def test_screen_on_a_glob_of_two_files(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 3: a glob matching two files screens both records."""
    for n in (1, 2):
        (tmp_path / f"r{n}.json").write_text(json.dumps(record(n)))
    code, out, err = run(capfdbinary, "screen", tmp_path / "r*.json", "--format", "json")
    assert code in (0, 1), err
    assert len(json.loads(out)) == 2


@pytest.mark.parametrize("depth", [990, 1_025, 100_000])
def test_deep_nesting_everywhere_is_a_clear_error(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], depth: int
) -> None:
    """Item 3: nesting 990-100 000 deep: validate reports it; fhir screen and --policy exit 2."""
    deep = "[" * depth + "]" * depth
    path = tmp_path / "deep.json"
    path.write_text(deep)
    code, out, err = run(capfdbinary, "validate", path, "-q")
    assert code == 1
    assert f"more than {MAX_DEPTH} levels" in rows(out)[0]["findings"][0]["message"]
    bundle = tmp_path / "bundle.json"
    bundle.write_text('{"resourceType": "Bundle", "entry": ' + deep + "}")
    code, _, err = run(capfdbinary, "fhir", "screen", bundle, "--on", "2026-01-01")
    assert (code, "nested too deeply" in err) == (2, True)
    code, _, err = run(capfdbinary, "rules", "--policy", path)
    assert (code, "invalid policy file" in err) == (2, True)


def test_policy_file_size_is_capped(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """Item 7: --policy /dev/zero is a usage error at once (1 MiB cap), not a hang."""
    code, _, err = run(capfdbinary, "rules", "--policy", "/dev/zero")
    assert code == 2
    assert "larger than" in err


# --- 4. size 0 but content ----------------------------------------------------------------------


def test_jobs_two_on_a_pipe_given_as_a_path(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 4: a FIFO (size 0, content) gives every report with --jobs 2, as with --jobs 1."""
    fifo = tmp_path / "pipe.jsonl"
    outs = []
    for jobs in ("1", "2"):
        os.mkfifo(fifo)
        writer = threading.Thread(target=fifo.write_bytes, args=(EXAMPLES.read_bytes(),))
        writer.start()
        _code, out, _ = run(capfdbinary, "validate", fifo, "-q", "--jobs", jobs)
        writer.join()
        fifo.unlink()
        assert len(rows(out)) == 300
        outs.append(out)
    assert outs[0] == outs[1]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_jobs_two_on_a_proc_file(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """Item 4: a /proc file's size reads 0; --jobs 2 still reads it (one report per line)."""
    assert os.path.getsize("/proc/cpuinfo") == 0
    counts = []
    for jobs in ("1", "2"):
        _, out, _ = run(capfdbinary, "validate", "/proc/cpuinfo", "-q", "--jobs", jobs,
                        "--checks", "structure")
        counts.append(len(rows(out)))
    assert counts[0] == counts[1] > 0


# --- 6. numbers: JSON Schema semantics -----------------------------------------------------------


@pytest.mark.parametrize(("value", "ok"), [
    ("1.0", True), ("1e0", True), ("1.5", False), ("9223372036854775807", True),
    ("9223372036854775808", False), ("18446744073709551616", False), ("1e400", False),
])
def test_integer_fields_follow_json_schema_semantics(
    value: str, ok: bool, both_paths: bool
) -> None:
    """Item 6: 1.0 is an integer (as the schema says); beyond 64 bits / a double is an error."""
    text = dumps(record(1)).replace(b'"number": 1', b'"number": ' + value.encode())
    (report,) = validate_records([text], checks=("structure",))
    assert report.valid is ok, report.findings
    if not ok:
        assert [f.path for f in report.findings] == ["session.number"]


def test_nan_and_infinity_are_not_json(both_paths: bool) -> None:
    """Item 5/§6: NaN and Infinity make the line not JSON (path "")."""
    for word in (b"NaN", b"Infinity", b"-Infinity"):
        text = dumps(record(1)).replace(b'"number": 1', b'"number": ' + word)
        (report,) = validate_records([text])
        assert [(f.code, f.path) for f in report.findings] == [("structure.json", "")]


# --- 7. bounded work on hostile input ------------------------------------------------------------


def test_oversized_line_and_element_get_one_report_each_and_the_run_goes_on(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 7: --max-record-bytes: one structure.too_large report, the next record is read."""
    big = dumps(record(2, pad="x" * 5000))
    small = [dumps(record(1)), dumps(record(3))]
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(small[0] + b"\n" + big + b"\n" + small[1] + b"\n")
    array = tmp_path / "a.json"
    array.write_bytes(b"[" + small[0] + b",\n" + big + b",\n" + small[1] + b"]")
    for path in (plain, array):
        for jobs in ("1", "2"):
            code, out, _ = run(capfdbinary, "validate", path, "-q", "--jobs", jobs,
                               "--max-record-bytes", "4000", "--checks", "structure")
            got = rows(out)
            assert [codes(r) for r in got] == [[], ["structure.too_large"], []]
            assert [r["line"] for r in got] == [1, 2, 3]
            assert code == 1


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_memory_stays_bounded_on_a_huge_record(fmt: str) -> None:
    """Item 7: a 64 MiB record is skipped in bounded chunks, never held whole."""
    size = 64 << 20

    class Filler(io.RawIOBase):
        """``size`` bytes of ``x``, produced as read (never in memory at once)."""

        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), self.left)
            b[:n] = b"x" * n
            self.left -= n
            return n

    prefix = b'{"a": "' if fmt == "jsonl" else b'[{"a": "'
    suffix = b'"}\n{}\n' if fmt == "jsonl" else b'"}, {}]'
    stream = io.BufferedReader(_Chain(prefix, Filler(), suffix))
    tracemalloc.start()
    items = list(_input.iter_items(f"x.{fmt}", stream, fmt, max_record_bytes=1 << 20))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [i.data for i in items] == [_documents.too_large(1 << 20), b"{}"]
    assert peak < 8 << 20, peak


class _Chain(io.RawIOBase):
    """A raw stream: a prefix, another raw stream, a suffix."""

    def __init__(self, prefix: bytes, middle: io.RawIOBase, suffix: bytes) -> None:
        self.parts: Iterator[Any] = iter([io.BytesIO(prefix), middle, io.BytesIO(suffix)])
        self.current: Any = next(self.parts)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while True:
            n = self.current.readinto(b)
            if n:
                return int(n)
            try:
                self.current = next(self.parts)
            except StopIteration:
                return 0


# --- 8. small ones -------------------------------------------------------------------------------


def test_bom_is_stripped_and_vt_ff_lines_are_records(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 8: a BOM does not spoil record 1; lines of only VT or FF get a report."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(_documents.BOM + dumps(record(1)) + b"\n \t\r\n\x0b\n\x0c\n")
    _, out, _ = run(capfdbinary, "validate", path, "-q", "--checks", "structure")
    got = rows(out)
    assert [(r["line"], r["valid"]) for r in got] == [(1, True), (3, False), (4, False)]
    array = tmp_path / "a.json"
    array.write_bytes(_documents.BOM + b"[" + dumps(record(1)) + b"]")
    _, out, _ = run(capfdbinary, "validate", array, "-q", "--checks", "structure")
    assert rows(out)[0]["valid"] is True


def test_closed_stdout_stops_quietly_with_141(tmp_path: Path) -> None:
    """Item 8: `validate | head -1` exits 141 with nothing on stderr."""
    big = tmp_path / "big.jsonl"
    big.write_bytes(EXAMPLES.read_bytes() * 20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dryneedle", "validate", str(big), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141
    assert err == b""


def test_partial_output_before_exit_2_is_the_same_for_any_jobs(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 8: a truncated gzip: every record read is reported, -j1 == -j2, then exit 2."""
    data = gzip.compress(EXAMPLES.read_bytes() * 10)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    outs = []
    for jobs in ("1", "2"):
        code, out, err = run(capfdbinary, "validate", path, "--jobs", jobs)
        assert code == 2
        assert "truncated" in err
        assert f"after {len(rows(out))} records" in err
        outs.append(out)
    assert outs[0] == outs[1]
    assert len(rows(outs[0])) > 300


def test_text_outputs_escape_control_characters(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 8: record_id and keys holding newlines or terminal escapes are printed escaped."""
    bad = record(1, record_id="r-1\n\x1b[2J")
    bad["session"]["x\x1b[31m\ny"] = 1
    bad["session"]["insertions"][0]["muscle"] = "nope"
    path = tmp_path / "a.json"
    path.write_text(json.dumps(bad))
    commands: list[list[str | Path]] = [["validate", path, "--format", "text", "-q"],
                                        ["screen", path], ["aftercare", path]]
    for argv in commands:
        _, out, err = run(capfdbinary, *argv)
        for text in (out.decode(), err):
            assert "\x1b" not in text
            assert "\ny" not in text
    assert escape_text("a\x1b[31m\u202e") == "a\\x1b[31m\\u202e"


# --- 9. one reader for every subcommand ----------------------------------------------------------


def _variants(tmp_path: Path, records: list[dict[str, Any]]) -> Iterator[tuple[str, Path]]:
    jsonl = b"".join(dumps(r) + b"\n" for r in records)
    array = json.dumps(records, indent=2).encode()
    one = json.dumps(records[0], indent=2).encode()
    for name, content in (("a.jsonl", jsonl), ("a.json", array), ("one.json", one)):
        for suffix, compress in (("", bytes), (".gz", gzip.compress), (".bz2", bz2.compress),
                                 (".xz", lzma.compress)):
            path = tmp_path / (name + suffix)
            path.write_bytes(compress(content))
            yield name, path


def test_every_subcommand_reads_every_input_form(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 9: JSONL, a JSON array, one pretty-printed object; plain, gz, bz2, xz."""
    records = [record(1), record(2)]
    for name, path in _variants(tmp_path, records):
        n = 1 if name == "one.json" else 2
        code, out, err = run(capfdbinary, "validate", path, "-q")
        assert len(rows(out)) == n, (path, err)
        code, out, err = run(capfdbinary, "screen", path, "--format", "json")
        assert code in (0, 1), (path, err)
        assert "error" not in err, (path, err)
        got = json.loads(out)
        assert len(got) == n if n > 1 else isinstance(got, dict)
        code, out, err = run(capfdbinary, "aftercare", path, "--format", "json")
        assert code == 0, (path, err)
        assert (len(json.loads(out)) == n) if n > 1 else "instructions" in json.loads(out)
        code, out, err = run(capfdbinary, "rates", path, "--format", "json")
        assert code == 0, (path, err)
        assert json.loads(out)["sessions"] == n
        code, out, err = run(capfdbinary, "fhir", "procedure", path)
        assert code == 0, (path, err)
        resource = json.loads(out)
        assert resource["resourceType"] == ("Bundle" if n > 1 else "Procedure")


def test_stdin_is_jsonl_unless_told_and_zst_needs_its_extra(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: '-' is JSONL by default, JSON with --input-format json; .zst is never garbage."""
    pretty = json.dumps(record(1), indent=2).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pretty)))
    _, out, _ = run(capfdbinary, "validate", "-", "-q")
    assert len(rows(out)) == pretty.count(b"\n") + 1  # each line a (bad) record: JSONL
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pretty)))
    _, out, _ = run(capfdbinary, "validate", "-", "-q", "--input-format", "json")
    assert [r["valid"] for r in rows(out)] == [True]
    zst = tmp_path / "a.jsonl.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)  # a zstd frame header, then junk
    code, out, err = run(capfdbinary, "validate", zst, "-q")
    assert code == 2
    assert "zst" in err
    assert out == b""


def test_corrupt_compressed_input_is_a_clear_exit_2(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Item 9: a corrupt bz2 / xz / gzip stream is exit 2 with a message, for every command."""
    for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress),
                             (".xz", lzma.compress)):
        data = bytearray(compress(EXAMPLES.read_bytes()))
        data[len(data) // 2] ^= 0xFF
        path = tmp_path / ("bad.jsonl" + suffix)
        path.write_bytes(bytes(data))
        commands: list[list[str | Path]] = [["validate", path, "-q"], ["rates", path],
                                            ["screen", path]]
        for argv in commands:
            code, _, err = run(capfdbinary, *argv)
            assert code == 2, (argv, err)
            assert "unreadable input" in err
            assert "Traceback" not in err
