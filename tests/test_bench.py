"""The benchmark runner (``undipy bench`` and ``benches/run.py`` share it) still
measures what it claims: each undipy client completes requests against the
built-in server with no error, and the streaming clients count the bytes they
were sent. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from undipy._bench.cli import start_server
from undipy._bench.client import STREAMING


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
        workload, "--url", url, "--duration", "0.3", "--warmup", "0.1",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=25, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("client", "workload", "size"),
    [
        ("undipy-request", "post", 2),
        ("undipy-dispatch", "c64", 13),
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


def test_a_client_that_does_not_run_a_workload_says_so(bench_url: str) -> None:
    cmd = [
        sys.executable, "-m", "undipy._bench.client", "--client", "undipy-stream",
        "--workload", "seq", "--url", bench_url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=25)
    assert out.returncode == 3
    assert "does not run the seq workload" in json.loads(out.stdout)["unavailable"]
