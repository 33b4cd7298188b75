"""Shared fixtures: test servers, the ``loops`` marker and a default per-test timeout.

Servers run in the test's own event loop (function scope): the client under test does its
socket I/O on its own Rust thread, so the loop only has to serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from importlib.metadata import version
from typing import Any

import pytest
import trustme
from hostile_helpers import Clients
from packaging.version import Version
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
