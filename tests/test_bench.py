"""The benchmark runner (``undipy bench`` and ``benches/run.py`` share it) still
measures what it claims: each undipy client completes requests against the
built-in server with no error, the streaming clients count the bytes they
were sent, and the https workloads run against a TLS server (a new, resumed
connection per request for ``hconn``). No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import HttpServer, Request, Response, TlsPair
from undipy._bench.cli import start_server
from undipy._bench.client import STREAMING, WORKLOADS

# Seconds each measured client runs: long enough for a few requests. An
# emulated machine (release/test-aarch64.sh) needs longer for its first ones.
DURATION = os.environ.get("UNDIPY_TEST_BENCH_SECONDS", "0.3")


@pytest.fixture(scope="module")
def bench_url() -> Iterator[str]:
    proc, url = start_server()
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


def measure(url: str, client: str, workload: str) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "undipy._bench.client", "--client", client, "--workload",
        workload, "--url", url, "--duration", DURATION, "--warmup", "0.1",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=25, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("client", "workload", "size"),
    [
        ("undipy-request", "post", 2),
        ("undipy-dispatch", "c64", 13),
        ("undipy-global", "seq", 13),
        ("undipy-global", "post", 2),
        ("undipy-composed", "seq", 13),
        ("undipy-diag", "c64", 13),
        ("undipy-request", "c64p4", 13),
        ("undipy-request", "big", 1 << 20),
        ("undipy-stream", "s1m", 1 << 20),
        ("undipy-iter", "s1m", 1 << 20),
        ("undipy-request", "s1m", 1 << 20),
    ],
)
def test_undipy_clients_complete_requests_without_errors(
    bench_url: str, client: str, workload: str, size: int
) -> None:
    r = measure(bench_url, client, workload)
    assert (r["client"], r["workload"]) == (client, workload)
    assert r["errors_total"] == 0, r["first_error"]
    assert r["shutdown_error"] is None
    assert r["requests"] > 0
    if workload in STREAMING:
        # Bytes count as they arrive: up to 8 bodies (those in flight) may be part-way
        # through at either edge of the timed window.
        assert (r["requests"] - 8) * size <= r["bytes"] <= (r["requests"] + 8) * size
    else:
        assert r["bytes"] == r["requests"] * size


class BenchTls:
    """An https server with the benchmark's routes, and whether each request's
    TLS session was resumed."""

    def __init__(self, server: HttpServer, ca: str) -> None:
        self.server = server
        self.ca = ca
        self.resumed: list[bool] = []

    async def answer(self, req: Request) -> Response:
        self.resumed.append(req.writer.get_extra_info("ssl_object").session_reused)
        path = req.path.split("?", 1)[0]
        return Response(body={"/small": b"Hello, World!", "/1m": bytes(1 << 20)}.get(path, b"ok"))


@pytest.fixture
async def bench_tls(tls_pair: TlsPair, tmp_path: Path) -> AsyncIterator[BenchTls]:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls_pair.ca)
    async with HttpServer(tls=tls_pair.server) as srv:
        bench = BenchTls(srv, str(ca))
        for path in ("/small", "/1m", "/echo"):
            srv.route(path, bench.answer)
        yield bench


async def measure_https(bench: BenchTls, client: str, workload: str) -> dict[str, Any]:
    """One run of the client process while this loop serves it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "undipy._bench.client", "--client", client, "--workload",
        workload, "--url", bench.server.origin, "--ca", bench.ca, "--duration", DURATION,
        "--warmup", "0.1", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=25)
    assert proc.returncode == 0, err.decode()[-2000:]
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("client", "workload"),
    [
        ("undipy-request", "hc64"),
        ("undipy-dispatch", "hpost"),
        ("undipy-request", "hbig"),
        ("undipy-request", "hconn"),
        ("undipy-dispatch", "hconn"),
        ("undipy-global", "hc64"),
    ],
)
async def test_undipy_clients_complete_https_requests(
    bench_tls: BenchTls, client: str, workload: str
) -> None:
    r = await measure_https(bench_tls, client, workload)
    assert r["errors_total"] == 0, r["first_error"]
    assert r["shutdown_error"] is None
    assert r["requests"] > 0
    assert r["bytes"] == r["requests"] * WORKLOADS[workload][3]
    counts = bench_tls.server.request_counts
    if workload == "hconn":
        # One request per connection, and the sessions are resumed.
        assert max(counts) == 1
        assert sum(bench_tls.resumed) > len(bench_tls.resumed) / 2
    elif client == "undipy-global":
        # The default Agent's pools have no connection limit: a request may
        # open a socket while another's is being handed back (seen: 65 for 64).
        assert len(counts) <= 2 * WORKLOADS[workload][2]  # keep-alive
    else:
        assert len(counts) <= WORKLOADS[workload][2]  # keep-alive


def test_an_https_workload_needs_an_https_origin(bench_url: str) -> None:
    cmd = [
        sys.executable, "-m", "undipy._bench.client", "--client", "undipy-request",
        "--workload", "hc64", "--url", bench_url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=25)
    assert out.returncode == 2
    assert "needs an https:// --url" in out.stderr


def test_a_client_that_does_not_run_a_workload_says_so(bench_url: str) -> None:
    cmd = [
        sys.executable, "-m", "undipy._bench.client", "--client", "undipy-stream",
        "--workload", "seq", "--url", bench_url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=25)
    assert out.returncode == 3
    assert "does not run the seq workload" in json.loads(out.stdout)["unavailable"]


# undici under Node (benches/undici_client.js), the harness's `undici` client: the
# same JSON line as client.py's. Skipped where node or Debian's node-undici is missing.


def _load_harness() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benches" / "run.py"
    spec = importlib.util.spec_from_file_location("undipy_bench_run", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness() -> Any:
    return _load_harness()


@pytest.fixture(scope="module")
def undici(harness: Any) -> str:
    """The node executable, once undici loads under it."""
    version = harness.undici_version()
    if version.startswith("unavailable"):
        pytest.skip(f"undici: {version}")
    return str(harness.find_node())


RESULT_KEYS = {
    "client", "loop", "workload", "requests", "bytes", "wall", "cpu", "cpu_user", "cpu_sys",
    "errors", "errors_total", "first_error", "maxrss_kib", "shutdown_error",
}  # fmt: skip


def check_undici_result(r: dict[str, Any], workload: str) -> None:
    assert set(r) == RESULT_KEYS
    assert (r["client"], r["loop"], r["workload"]) == ("undici", "node", workload)
    assert r["errors_total"] == 0, r["first_error"]
    assert r["shutdown_error"] is None
    assert r["requests"] > 0
    assert r["cpu"] > 0 and r["maxrss_kib"] > 0
    size = WORKLOADS[workload][3]
    if workload in STREAMING:
        assert (r["requests"] - 8) * size <= r["bytes"] <= (r["requests"] + 8) * size
    else:
        assert r["bytes"] == r["requests"] * size


@pytest.mark.parametrize("workload", ["post", "c64p4", "s1m"])  # c64: below
def test_undici_client_prints_the_same_json_line(
    harness: Any, undici: str, bench_url: str, workload: str
) -> None:
    cmd = [
        undici, str(harness.UNDICI_RUN), "--workload", workload, "--url", bench_url,
        "--loop", "asyncio", "--duration", DURATION, "--warmup", "0.1",
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=25, check=True, env=harness.node_env()
    )
    check_undici_result(json.loads(out.stdout.strip().splitlines()[-1]), workload)


def test_the_harness_runs_undici(harness: Any, undici: str, bench_url: str) -> None:
    r = harness.run_client("c64", "undici", "node", 1, harness.Target(bench_url), 0.3, 0.1)
    assert r.failed is None
    assert r.requests > 0 and r.errors == 0 and r.cpu_us_per_req is not None


@pytest.mark.parametrize("workload", ["hc64", "hconn"])
async def test_undici_client_over_https(
    harness: Any, undici: str, bench_tls: BenchTls, workload: str
) -> None:
    proc = await asyncio.create_subprocess_exec(
        undici, str(harness.UNDICI_RUN), "--workload", workload, "--url",
        bench_tls.server.origin, "--ca", bench_tls.ca, "--duration", DURATION, "--warmup", "0.1",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.node_env(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=25)
    assert proc.returncode == 0, err.decode()[-2000:]
    check_undici_result(json.loads(out.decode().strip().splitlines()[-1]), workload)
    counts = bench_tls.server.request_counts
    if workload == "hconn":
        assert max(counts) == 1  # reset: true, a new connection per request
        assert sum(bench_tls.resumed) > len(bench_tls.resumed) / 2
    else:
        assert len(counts) <= WORKLOADS[workload][2]


def test_undici_is_a_default_client_compared_to_the_asyncio_row(harness: Any) -> None:
    args = harness.parse_args([])
    assert "undici" in args.clients
    assert harness.parse_args(["--clients", "undici", "--loops", "uvloop"]).clients == ["undici"]
    row = {
        loop: harness.Row("undipy-request", loop, 100.0, 10.0, None, None, 0, 1, 1)
        for loop in ("asyncio", "uvloop")
    }
    assert harness.baseline_row(row, "node") is row["asyncio"]
    assert harness.baseline_row(row, "uvloop") is row["uvloop"]
    assert harness.baseline_row({"uvloop": row["uvloop"]}, "node") is row["uvloop"]
    assert harness.baseline_row({"uvloop": row["uvloop"]}, "asyncio") is None


def test_undipy_bench_repeats_each_cell_and_writes_json(tmp_path: Path) -> None:
    """The command a new user runs first: every cell measured --runs times,
    progress as plain lines when not on a terminal, the table and the bars,
    and the JSON."""
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, "-m", "undipy", "bench", "--workloads", "seq,s1m", "--runs", "2",
        "--duration", "0.2", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    cells = json.loads(out.read_text())["cells"]
    assert len(progress) == 2 * len(cells) and progress[0].startswith(f"[1/{2 * len(cells)}] run 1")
    by_client = {(c["workload"], c["client"]): c for c in cells}
    for key in [("seq", "undipy-request"), ("seq", "undipy-dispatch"), ("s1m", "undipy-stream")]:
        assert by_client[key]["runs"] == 2 and by_client[key]["rps"] > 0
        assert by_client[key]["errors"] == 0
    assert "undipy-request" in done.stdout and "req/s ×" in done.stdout
    assert "seq (req/s)" in done.stdout and "█" in done.stdout


def test_undipy_bench_refuses_an_unknown_workload() -> None:
    cmd = [sys.executable, "-m", "undipy", "bench", "--workloads", "seq,fast"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown workload 'fast': choose from seq, c64, big, s1m" in done.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "undipy", "bench", "--help"], capture_output=True, text=True
    )
    assert "latency and per-request cost" in helped.stdout
