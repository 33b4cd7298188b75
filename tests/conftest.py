"""Shared fixtures: test servers, the ``loops`` marker and a default per-test timeout.

Servers run in the test's own event loop (function scope): the client under test does its
socket I/O on its own Rust thread, so the loop only has to serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import trustme
from hostile_helpers import Clients
from packaging.version import Version
from proxy import ProxyProcess
from servers import HttpServer, RawServer, Script, TlsPair, raise_errors

DEFAULT_TEST_TIMEOUT = 30.0
"""Seconds per test unless --timeout, PYTEST_TIMEOUT, the ini option or a marker says so."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
RawServerFactory = Callable[..., Awaitable[RawServer]]


def _loop_factories() -> dict[str, LoopFactory]:
    """Event loops that ``@pytest.mark.loops`` tests run under: uvloop only if installed."""
    factories: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        factories["uvloop"] = uvloop.new_event_loop
    return factories


LOOP_FACTORIES = _loop_factories()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "loops: run this asyncio test once per event loop implementation (asyncio, uvloop)",
    )
    # undipy's pytest plugin (the mock_agent fixture) comes through its entry point when
    # the wheel is installed (tests/run.sh); from the sources (tests/dev.sh) it is loaded
    # here. Loading it twice would be an error.
    plugins = config.pluginmanager
    if not (
        plugins.has_plugin("undipy")
        or plugins.has_plugin("undipy.pytest_plugin")
        or plugins.is_blocked("undipy")
    ):
        plugins.import_plugin("undipy.pytest_plugin")


def _timeout_configured(config: pytest.Config) -> bool:
    return (
        config.getoption("timeout", None) is not None
        or bool(os.environ.get("PYTEST_TIMEOUT"))
        or bool(config.getini("timeout"))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test a 30 s pytest-timeout unless a timeout is configured elsewhere,
    so a client that never answers fails one test instead of hanging the run."""
    if not config.pluginmanager.hasplugin("timeout") or _timeout_configured(config):
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))


if Version(version("pytest-asyncio")) >= Version("1.4"):

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, LoopFactory]:
        """pytest-asyncio >= 1.4: parametrize ``loops`` tests over every loop factory.

        Unmarked tests get the stock asyncio loop (a single factory keeps their ids).
        """
        if item.get_closest_marker("loops") is None:
            return {"asyncio": asyncio.new_event_loop}
        return LOOP_FACTORIES

else:  # pragma: no cover - exercised only with pytest-asyncio 1.0-1.3

    def _policy(name: str) -> asyncio.AbstractEventLoopPolicy:
        if name == "uvloop":
            import uvloop

            policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
            return policy
        return asyncio.DefaultEventLoopPolicy()

    @pytest.fixture(scope="session")
    def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
        """pytest-asyncio < 1.4: the policy a ``loops`` test was parametrized with."""
        return _policy(getattr(request, "param", "asyncio"))

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        if metafunc.definition.get_closest_marker("loops") is not None:
            names = list(LOOP_FACTORIES)
            metafunc.parametrize(
                "event_loop_policy", names, ids=names, indirect=True, scope="function"
            )


@pytest.fixture(scope="session")
def tls_pair() -> TlsPair:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return TlsPair(ctx, ca.cert_pem.bytes(), ca)


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    """A started ``HttpServer`` on 127.0.0.1 answering 200 "hello" until routed."""
    async with HttpServer() as srv:
        yield srv


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServerFactory]:
    """Factory: ``await raw_server(script)`` or ``await raw_server([s1, s2])`` -> RawServer.

    Extra keyword arguments go to ``RawServer``. Every server made is stopped after the
    test, so script failures surface as errors of the test's teardown.
    """
    made: list[RawServer] = []

    async def make(script: Script | Sequence[Script] | None = None, **kwargs: Any) -> RawServer:
        if script is None or callable(script):
            srv = RawServer(script, **kwargs)
        else:
            srv = RawServer(scripts=script, **kwargs)
        made.append(srv)
        return await srv.start()

    yield make
    errors: list[BaseException] = []
    for srv in reversed(made):
        try:
            await srv.stop()
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            errors.append(exc)
    raise_errors(errors, "RawServers")


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Dispatchers made through it are destroyed after the test, whatever happened."""
    async with Clients() as made:
        yield made


@pytest.fixture
def unix_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="undipy-", dir="/tmp")  # short: sun_path is ~108 bytes
    path = os.path.join(d, "s.sock")
    yield path
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.rmdir(d)


# --------------------------------------------------------------------------- tinyproxy

TINYPROXY_PATHS = ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
TINYPROXY_START_TIMEOUT = 10.0
"""Seconds tinyproxy may take to accept connections."""


def _find_tinyproxy() -> str | None:
    found = shutil.which("tinyproxy")
    if found is not None:
        return found
    return next((p for p in TINYPROXY_PATHS if os.access(p, os.X_OK)), None)


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tinyproxy_config(port: int, directory: Path) -> str:
    # No ConnectPort line on purpose: tinyproxy.conf(5) of 1.11 says CONNECT is then
    # allowed to every port (Debian's own /etc config limits it to 443 and 563, and
    # "ConnectPort 0" would disable CONNECT); the test origins listen on random ports.
    return "\n".join(
        [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            "MaxClients 50",
            "DisableViaHeader Yes",
            f'PidFile "{directory / "tinyproxy.pid"}"',
            f'LogFile "{directory / "tinyproxy.log"}"',
            "LogLevel Info",
            "",
        ]
    )


def _wait_accepting(process: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    """Poll until ``port`` accepts connections; False if the process exited first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            if time.monotonic() > deadline:
                _stop_process(process)
                pytest.fail(f"tinyproxy did not accept connections within {timeout}s")
            time.sleep(0.05)
    return False


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _start_tinyproxy(binary: str, directory: Path) -> ProxyProcess:
    """Start tinyproxy in the foreground; a port taken between our pick and its bind
    makes it exit, so try a few ports."""
    log_path = directory / "tinyproxy.log"
    for attempt in range(3):
        port = _free_loopback_port()
        config = directory / f"tinyproxy-{attempt}.conf"
        config.write_text(_tinyproxy_config(port, directory))
        with open(directory / "tinyproxy.out", "ab") as out:
            process = subprocess.Popen(
                [binary, "-d", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if _wait_accepting(process, port, TINYPROXY_START_TIMEOUT):
            return ProxyProcess(f"http://127.0.0.1:{port}", port, process, log_path)
    output = (directory / "tinyproxy.out").read_text(errors="replace")
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    pytest.fail(f"tinyproxy exited at start-up three times:\n{output}\n{log[-2000:]}")


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[ProxyProcess]:
    """Debian's tinyproxy, an HTTP proxy nobody on this team wrote, on a free loopback
    port (``.origin``), CONNECT allowed to any port, no Via header, stopped afterwards.

    Missing binary: the test fails, not skips (CI installs it through tests/run.sh)."""
    binary = _find_tinyproxy()
    if binary is None:
        pytest.fail(
            "tinyproxy is not installed: run tests/run.sh, which installs it "
            "(apt-get install tinyproxy)",
            pytrace=False,
        )
    proxy = _start_tinyproxy(binary, tmp_path)
    try:
        yield proxy
    finally:
        _stop_process(proxy.process)
