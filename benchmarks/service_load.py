"""Bounded load benchmark of the CDS Hooks service (``dryneedle serve``) on 127.0.0.1.

Starts ``dryneedle serve --insecure-no-auth --server-timing`` (with its audit log) in a
subprocess on a free loopback port, then runs, in parallel and **in two other processes** (so
the load generator and the attackers do not share one interpreter):

* the normal load: ``--requests`` hook calls (a realistic patient: ``patient-view`` and
  ``order-select`` with a planned site) from ``--clients`` concurrent keep-alive connections,
  each sending its next request when the answer arrives (closed loop). ``--client raw`` (the
  default) is a minimal HTTP/1.1 client on asyncio streams, on uvloop's event loop when it is
  installed (``--client-loop``; cheap, so the client does not take the server's CPU, with which
  it shares the machine); ``--client httpx`` uses httpx's ``AsyncClient`` (what an integrator may
  use, several times costlier per request);
* the attackers: one oversized request (``Content-Length`` of ``--oversized-mb`` MB, whose body
  is then streamed -- it must be refused with 413 at once, without the server reading it) and
  ``--slow`` slow clients ("slowloris"): half send their request line and headers one byte at a
  time and never finish, half send complete headers and half a body, then stall. Each gives up
  after ``--slow-seconds``; the server is expected to close them first (header / body
  timeouts).

Everything is bounded in count and time and stops by itself. It reports the 5xx count, the
client-side latency percentiles of the normal requests (send to last byte received; with
``tail_by_half_second``, how many of the slowest 1 % ended in each half second of the run:
spread evenly, the tail is queueing; bunched, a stall) and the
server-side ones (the ``Server-Timing`` header: ``app`` in the handler, ``wait`` for a worker
thread, ``work`` in it), requests/s, the CPU milliseconds per request of the server (user +
sys over the run / requests, of the server process and, with ``--server-arg=--processes=N``,
its worker processes: less sensitive to other jobs than wall time) and of the load client,
how the load's connections are spread over the serving processes (sampled every 2.5 s),
the load average before and after, the oversized request's status and time, how the slow
clients ended, and the server's RSS (all its processes) sampled over time (psutil). Targets:
no 5xx, p99 < 50 ms, flat memory. A benchmark, not a test: it asserts nothing about time.

The server runs as ``dryneedle serve`` does by default (httptools and uvloop when installed, no
access log); ``--server-arg=--http=h11`` measures the h11 fallback, ``--server-arg=--access-log``
the cost of uvicorn's access log, ``--server-arg=--processes=2`` two server processes.

    python benchmarks/service_load.py [--requests 10000] [--clients 32] [--slow 500]
                                      [--client raw|httpx] [--no-attack]
                                      [--server-arg=--processes=2]
                                      [--out benchmarks/results/service-load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil  # no stubs in the environment

try:
    import uvloop as _uvloop  # noqa: F401 - probed: the default loop of the load's processes
except ImportError:
    _LOOP = "asyncio"
else:
    _LOOP = "uvloop"

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "tests" / "data" / "fhir" / "realistic.json"
PREFETCH_OF = {"Patient": "patient", "MedicationRequest": "medicationRequests",
               "MedicationStatement": "medicationStatements", "Condition": "conditions",
               "AllergyIntolerance": "allergies", "Observation": "pregnancy"}


def _requests() -> list[tuple[str, bytes]]:
    """The normal requests: the realistic bundle as prefetch, for two hooks."""
    bundle = json.loads(BUNDLE.read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_OF.values())
    prefetch["procedures"] = None
    for kind, key in PREFETCH_OF.items():
        found = [r for r in resources if r["resourceType"] == kind]
        if kind == "Patient":
            prefetch[key] = patient
        elif found:
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset",
                             "entry": [{"resource": r} for r in found]}
    meds = [r for r in resources if r["resourceType"] == "Medication"]
    if meds and prefetch["medicationRequests"] is not None:
        prefetch["medicationRequests"]["entry"] += [{"resource": r} for r in meds]
    order = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "ServiceRequest", "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{patient['id']}"},
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "76505004",
                                  "display": "Thigh structure"}]}]}}]}
    out = []
    for i, (service, hook, context) in enumerate([
        ("dryneedle-screening", "patient-view", {}),
        ("dryneedle-screening-order-select", "order-select",
         {"draftOrders": order, "selections": ["ServiceRequest/1"]}),
    ]):
        body = {"hook": hook, "hookInstance": f"00000000-0000-4000-8000-{i:012d}",
                "context": {"userId": "Practitioner/1", "patientId": patient["id"], **context},
                "prefetch": prefetch}  # screened as of the service's own date
        out.append((f"/cds-services/{service}", json.dumps(body).encode()))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``dryneedle serve`` in a subprocess, with its RSS sampled every ``interval`` seconds."""

    def __init__(self, workdir: Path, extra: list[str], interval: float = 0.25) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {"PYTHONPATH": str(ROOT / "src")}
        self.log = (workdir / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dryneedle", "serve", "--insecure-no-auth", "--server-timing",
             "--port", str(self.port), "--audit-db", str(workdir / "audit.sqlite"), *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                rss = sum(p.memory_info().rss for p in self.processes())
                self.samples.append((time.monotonic() - start, rss))
            self._stop.wait(self.interval)

    def processes(self) -> list[Any]:
        """The server process and its worker processes (``--processes N``)."""
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]

    def workers(self) -> list[Any]:
        """The processes that serve: the worker processes, or the server process alone."""
        processes = self.processes()
        return processes[1:] or processes

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of :meth:`processes` so far."""
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                total += sum(process.cpu_times()[:2])
        return total

    def __enter__(self) -> ServerProcess:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                err = Path(self.log.name).read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(f"dryneedle serve exited: {err}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/cds-services", timeout=1).status_code == 200 and all(
                        f"Started server process [{p.pid}]" in Path(self.log.name).read_text(
                            encoding="utf-8", errors="replace") for p in self.workers()):
                    self._thread.start()
                    return self
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        raise RuntimeError("dryneedle serve did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.proc.terminate()  # the supervisor stops its worker processes
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of its group
        self.proc.wait(timeout=10)
        self.log.close()


def _timings(header: str | None) -> dict[str, float]:
    """``Server-Timing: wait;dur=0.01, work;dur=1.2, app;dur=1.3`` -> milliseconds by name."""
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        with contextlib.suppress(ValueError):
            out[name] = float(dur)
    return out


class _Tally:
    """What the normal clients saw: latencies, server timings, statuses, errors."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ends: list[float] = []  # perf_counter() at each answer (when the tail happened)
        self.server: dict[str, list[float]] = {"app": [], "wait": [], "work": []}
        self.statuses: dict[int, int] = {}
        self.errors = 0

    def add(self, seconds: float, status: int, timing: str | None) -> None:
        self.latencies.append(seconds)
        self.ends.append(time.perf_counter())
        self.statuses[status] = self.statuses.get(status, 0) + 1
        for name, ms in _timings(timing).items():
            if name in self.server:
                self.server[name].append(ms / 1000)

    def tail(self) -> list[int]:
        """How many of the answers slower than the 99th percentile ended in each half second.

        Even counts: the tail is queueing spread over the run; a few large ones: stalls.
        """
        if not self.latencies:
            return []
        threshold = sorted(self.latencies)[int(0.99 * len(self.latencies))]
        first = min(end - s for end, s in zip(self.ends, self.latencies, strict=True))
        counts = [0] * (int((max(self.ends) - first) / 0.5) + 1)
        for end, seconds in zip(self.ends, self.latencies, strict=True):
            if seconds >= threshold:
                counts[int((end - first) / 0.5)] += 1
        return counts

    def report(self, total: int, clients: int, elapsed: float) -> dict[str, Any]:
        def pcts(values: list[float]) -> dict[str, float | None]:
            values = sorted(values)
            if not values:
                return {}

            def pct(p: float) -> float:
                return round(1000 * values[min(len(values) - 1, int(p * len(values)))], 2)

            return {"p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
                    "max_ms": round(1000 * values[-1], 2),
                    "mean_ms": round(1000 * statistics.fmean(values), 2)}

        return {"requests": total, "clients": clients, "seconds": round(elapsed, 2),
                "tail_by_half_second": self.tail(),
                "requests_per_s": round(total / elapsed, 1), "statuses": self.statuses,
                "errors": self.errors,
                "5xx": sum(n for st, n in self.statuses.items() if st >= 500),
                **pcts(self.latencies),
                "server": {name: pcts(v) for name, v in self.server.items()}}


async def _normal_httpx(url: str, total: int, clients: int, requests: list[tuple[str, bytes]],
                        timeout: float) -> dict[str, Any]:
    tally = _Tally()
    counter = iter(range(total))
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            path, body = requests[i % len(requests)]
            start = time.perf_counter()
            try:
                response = await http.post(path, content=body, headers=headers)
            except httpx.HTTPError:
                tally.errors += 1
                continue
            tally.add(time.perf_counter() - start, response.status_code,
                      response.headers.get("server-timing"))

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return tally.report(total, clients, elapsed)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one HTTP/1.1 response with a ``Content-Length`` body (what the service sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
    return status, fields, body


async def _normal_raw(port: int, total: int, clients: int, requests: list[tuple[str, bytes]],
                      timeout: float) -> dict[str, Any]:
    """The normal load over plain asyncio streams: one keep-alive connection per client."""
    tally = _Tally()
    counter = iter(range(total))
    wire = [(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
             ).encode() + body for path, body in requests]

    async def client() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for i in counter:
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), timeout)
                reader, writer = conn
                writer.write(wire[i % len(wire)])
                status, fields, body = await asyncio.wait_for(_read_response(reader), timeout)
            except (OSError, TimeoutError, ValueError, IndexError,
                    asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                tally.errors += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            tally.add(time.perf_counter() - start, status,
                      fields.get(b"server-timing", b"").decode() or None)
            if status == 200 and not body.startswith(b'{"cards":'):
                tally.errors += 1  # not a CDS Hooks response
            if fields.get(b"connection", b"").lower() == b"close":
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return tally.report(total, clients, time.perf_counter() - start)


async def _oversized(port: int, megabytes: int, timeout: float) -> dict[str, Any]:
    """Announce ``megabytes`` MB, send the first 64 KiB, and time the answer; then stream the
    rest until the server closes. (Reading the answer before streaming on: a server that
    refuses a body closes the connection with the body unread, and the TCP reset this sends
    back can discard an answer the client has not read yet.)"""
    size = megabytes * 1024 * 1024
    chunk = b" " * 65536
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /cds-services/dryneedle-screening HTTP/1.1\r\nHost: bench\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {size}\r\n\r\n".encode() + chunk)
    status: int | None = None
    try:
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        status = int(line.split()[1]) if line.startswith(b"HTTP/") else None
    except (TimeoutError, OSError, ValueError, IndexError):
        pass
    seconds = time.perf_counter() - start
    sent = len(chunk)
    with contextlib.suppress(OSError, RuntimeError):  # uvloop: RuntimeError once closed
        while sent < size:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 2.0)
            sent += len(chunk)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return {"announced_mb": megabytes, "status": status, "seconds_to_answer": round(seconds, 3),
            "bytes_accepted_before_close": sent}


async def _slow_one(port: int, half_body: bool, give_up: float, byte_delay: float) -> str:
    """One slow client; returns how it ended: ``closed`` by the server, an ``answered`` status,
    ``gave-up`` (still open after ``give_up`` seconds), or ``refused``."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    head = (b"POST /cds-services/dryneedle-screening HTTP/1.1\r\nHost: bench\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2000\r\n")
    deadline = time.monotonic() + give_up
    try:
        if half_body:
            writer.write(head + b"\r\n" + b"{" + b" " * 999)
            await writer.drain()
        else:
            for byte in head:
                if time.monotonic() > deadline or reader.at_eof():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(byte_delay)
        remaining = deadline - time.monotonic()
        try:
            data = await asyncio.wait_for(reader.read(1024), max(0.0, remaining))
        except TimeoutError:
            return "gave-up"
        if not data:
            return "closed"
        return f"answered-{data.split()[1].decode()}" if data.startswith(b"HTTP/") else "closed"
    except (OSError, RuntimeError):  # uvloop: a RuntimeError writing to a closed transport
        return "closed"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _slowloris(port: int, count: int, give_up: float, byte_delay: float) -> dict[str, Any]:
    start = time.perf_counter()
    ends = await asyncio.gather(*(_slow_one(port, i % 2 == 1, give_up, byte_delay)
                                  for i in range(count)))
    outcome: dict[str, int] = {}
    for end in ends:
        outcome[end] = outcome.get(end, 0) + 1
    return {"clients": count, "ended": outcome, "seconds": round(time.perf_counter() - start, 2)}


async def _attack(port: int, args: argparse.Namespace) -> dict[str, Any]:
    slow = asyncio.ensure_future(_slowloris(port, args.slow, args.slow_seconds,
                                            args.byte_delay))
    oversized = await _oversized(port, args.oversized_mb, 30.0)
    return {"oversized": oversized, "slow": await slow}


def _run(main: Any, loop: str) -> Any:
    """``asyncio.run(main)``, on uvloop's event loop when ``loop`` is ``"uvloop"``."""
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415 - only for the load's own processes

        return uvloop.run(main)
    return asyncio.run(main)


def _role(args: argparse.Namespace) -> dict[str, Any]:
    """Run one side of the load in this process (``--role``); return its report."""
    if args.role == "attack":
        return dict(_run(_attack(args.port, args), args.client_loop))
    requests = _requests()
    report: dict[str, Any]
    if args.client == "httpx":
        report = _run(_normal_httpx(f"http://127.0.0.1:{args.port}", args.requests,
                                    args.clients, requests, 30.0), args.client_loop)
    else:
        report = _run(_normal_raw(args.port, args.requests, args.clients, requests, 30.0),
                      args.client_loop)
    report["client_loop"] = args.client_loop
    used = resource.getrusage(resource.RUSAGE_SELF)
    report["client_cpu_ms_per_request"] = round(
        1000 * (used.ru_utime + used.ru_stime) / max(1, args.requests), 2)
    return report


def _spawn(role: str, port: int, argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--port", str(port),
                             *argv], stdout=subprocess.PIPE)


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds (its ``/proc/PID/fd`` links)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            link = os.readlink(f"{fd_dir}/{fd}")
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    return inodes


def _tcp_ports() -> dict[int, tuple[int, int]]:
    """Socket inode -> (local port, remote port) of this machine's IPv4 TCP sockets."""
    ports = {}
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)  # the heading
        for line in table:
            fields = line.split()
            ports[int(fields[9])] = (int(fields[1].rsplit(":", 1)[1], 16),
                                     int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def _split_once(server: ServerProcess, client_pid: int) -> list[int]:
    """Per serving process, how many of the load client's connections it holds."""
    if not os.path.exists("/proc/net/tcp"):  # not Linux: psutil (slower: ~50 ms a call)
        ours = {c.laddr.port for c in psutil.Process(client_pid).net_connections("tcp")
                if c.raddr and c.raddr.port == server.port}
        return sorted((sum(1 for c in w.net_connections("tcp")
                           if c.raddr and c.raddr.port in ours)
                       for w in server.workers()), reverse=True)
    ports = _tcp_ports()
    ours = {ports[i][0] for i in _socket_inodes(client_pid)
            if i in ports and ports[i][1] == server.port}
    return sorted((sum(1 for i in _socket_inodes(w.pid) if i in ports and ports[i][1] in ours)
                   for w in server.workers()), reverse=True)


def _split(server: ServerProcess, client_pid: int, done: threading.Event,
           every: float = 2.5) -> list[list[int]]:
    """How the normal clients' connections are spread over the server processes, sampled.

    Every ``every`` seconds while the load runs: per serving process, how many of the load
    client's connections it holds (matched by port). With ``--processes N`` the kernel hands
    each new connection to one process; a process holding more of the closed-loop clients has
    a longer queue on the same share of the CPU. Read from ``/proc`` every 2.5 s: psutil's
    ``net_connections`` each second took 70-100 ms of CPU a sample with the attack's thousand
    sockets open (two thirds of it in the kernel), a burst each second on the cores the server
    uses, which showed as bunches of the slowest answers in every other half second; from
    ``/proc`` it is 20-30 ms.
    """
    samples: list[list[int]] = []
    while not done.wait(every):
        with contextlib.suppress(psutil.Error, OSError):
            split = _split_once(server, client_pid)
            if sum(split):
                samples.append(split)
    return samples


def _collect(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        msg = f"a load process failed (exit {proc.returncode})"
        raise RuntimeError(msg)
    return dict(json.loads(out))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="the normal load's HTTP client (default: %(default)s)")
    parser.add_argument("--client-loop", choices=("uvloop", "asyncio"), default=_LOOP,
                        help="event loop of the load and attack processes (default: "
                        "%(default)s; uvloop when installed: less of the machine's CPU for "
                        "the clients, which share it with the server)")
    parser.add_argument("--slow", type=int, default=500, help="slow (slowloris) clients")
    parser.add_argument("--slow-seconds", type=float, default=20.0,
                        help="a slow client gives up after this long")
    parser.add_argument("--byte-delay", type=float, default=0.5,
                        help="seconds between the bytes a slow client sends")
    parser.add_argument("--oversized-mb", type=int, default=50)
    parser.add_argument("--no-attack", action="store_true",
                        help="the normal load only (no oversized request, no slow clients)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra 'dryneedle serve' argument (repeatable), e.g. --workers=4")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--role", choices=("normal", "attack"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print and return the report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.role is not None:
        print(json.dumps(_role(args)))
        return {}
    shared = ["--requests", str(args.requests), "--clients", str(args.clients),
              "--client", args.client, "--client-loop", args.client_loop,
              "--slow", str(args.slow),
              "--slow-seconds", str(args.slow_seconds), "--byte-delay", str(args.byte_delay),
              "--oversized-mb", str(args.oversized_mb)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp), args.server_arg) as server:
        before = server.cpu_seconds()
        started = time.perf_counter()
        attack = None if args.no_attack else _spawn("attack", server.port, shared)
        if attack is not None:
            time.sleep(min(1.0, args.slow_seconds / 4))  # the slow clients are connected
        load = _spawn("normal", server.port, shared)
        done = threading.Event()
        splits: list[list[int]] = []
        sampler = threading.Thread(
            target=lambda: splits.extend(_split(server, load.pid, done)), daemon=True)
        sampler.start()
        normal = _collect(load, 3600)
        done.set()
        sampler.join(timeout=10)
        normal["statuses"] = {int(k): n for k, n in normal["statuses"].items()}
        report: dict[str, Any] = {"normal": normal}
        # The most frequent spread of the load's connections over the serving processes.
        report["connections_per_process"] = (
            max(splits, key=splits.count) if splits else None)
        if attack is not None:
            report |= _collect(attack, args.slow_seconds + 120)
        report["seconds"] = round(time.perf_counter() - started, 2)
        # Server CPU per normal request: less sensitive than wall time to other jobs.
        report["server_cpu_ms_per_request"] = round(
            1000 * (server.cpu_seconds() - before) / max(1, args.requests), 2)
        report["load_average"] = {"before": load_before, "after": os.getloadavg()}
        time.sleep(server.interval * 2)
        rss = [r for _, r in server.samples]
    report["rss_mb"] = {
        "min": round(min(rss) / 2**20, 1), "max": round(max(rss) / 2**20, 1),
        "max_minus_min": round((max(rss) - min(rss)) / 2**20, 1), "samples": len(rss),
        "over_time": [(round(t, 1), round(r / 2**20, 1)) for t, r in server.samples[::8]],
    } if rss else None
    report["server_args"] = args.server_arg
    report["python"] = sys.version.split()[0]
    report["cpus"] = os.cpu_count()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
