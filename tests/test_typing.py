"""Typing (issue 9): the programs in tests/typing type-check under
``mypy --strict --warn-unused-ignores`` against the undipy these tests import
(the installed wheel in CI, python/ with ``PYTHONPATH=python``); their
``# type: ignore[...]`` lines must still be errors; ``pyright --verifytypes``
finds its public API 100% type-complete. Also: the option
``TypedDict``s name exactly what the runtime accepts, and the header
accessors.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import undipy
from servers import HttpServer
from undipy import (
    AbortController,
    Client,
    DispatchHandler,
    InvalidArgumentError,
    PipelineHandlerData,
    Pool,
    StreamFactoryData,
    header,
    header_values,
)
from undipy import _options as options
from undipy.client import _DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "typing"


def _mypy_env() -> dict[str, str]:
    """Points mypy at the undipy imported here: a source tree goes on MYPYPATH;
    an installed one is found in site-packages (mypy refuses it on MYPYPATH)."""
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    parent = Path(undipy.__file__).resolve().parent.parent
    installed = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if parent not in installed:
        env["MYPYPATH"] = str(parent)
    return env


@pytest.mark.timeout(120)
def test_typing_programs_pass_mypy_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    programs = sorted(PROGRAMS.glob("*.py"))
    assert len(programs) >= 6
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--warn-unused-ignores",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            *(str(p.relative_to(ROOT)) for p in programs),
        ],
        cwd=ROOT,
        env=_mypy_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, f"mypy found errors:\n{proc.stdout}{proc.stderr}"


@pytest.mark.timeout(120)
def test_public_api_is_type_complete(tmp_path: Path) -> None:
    """``pyright --verifytypes undipy --ignoreexternal`` (or basedpyright's,
    the same report) scores 100% on the undipy imported here."""
    tool = shutil.which("basedpyright") or shutil.which("pyright")
    if tool is None:
        pytest.skip("neither basedpyright nor pyright is on PATH")
    package = Path(undipy.__file__).resolve().parent
    env = dict(os.environ)
    # pyright finds packages on the interpreter's sys.path: put the imported
    # undipy's parent first, so an installed copy elsewhere does not shadow it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package.parent), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [tool, "--verifytypes", "undipy", "--ignoreexternal", "--outputjson"]
        + ["--pythonpath", sys.executable],
        cwd=tmp_path,  # no pyproject.toml or pyrightconfig.json of ours applies
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    try:
        report = json.loads(proc.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        pytest.fail(f"{tool} gave no report (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    assert Path(report["packageRootDirectory"]).resolve() == package
    problems = [
        f"{sym['name']}: {diag['message']}"
        for sym in report["symbols"]
        for diag in sym["diagnostics"]
        if diag["severity"] == "error"
    ]
    assert report["completenessScore"] == 1.0, "\n".join(problems)


# -- the TypedDicts against the runtime -----------------------------------------


def _keys(td: Any) -> set[str]:
    return set(td.__required_keys__ | td.__optional_keys__)


def test_client_options_are_the_constructor_options() -> None:
    assert _keys(options.ClientOptions) == set(_DEFAULTS)
    Client("http://127.0.0.1:1", **_DEFAULTS)
    Pool("http://127.0.0.1:1", connections=2, **_DEFAULTS)


def _samples(origin: str) -> dict[str, Any]:
    """One valid value per option (None would count as not given)."""
    return {
        "path": "/",
        "method": "POST",
        "headers": {"x-a": "1"},
        "query": {"q": "1"},
        "body": b"x",
        "idempotent": False,
        "blocking": False,
        "reset": False,
        "upgrade": "websocket",
        "headers_timeout": 5,
        "body_timeout": 5.0,
        "throw_on_error": False,
        "expect_continue": False,
        "origin": origin,
        "server_name": "localhost",
        "opaque": 1,
        "signal": AbortController().signal,
        "on_info": lambda info: None,
        "object_mode": False,
        "protocol": "websocket",
        # The interceptors' options: ignored where no interceptor takes them.
        "retry_options": {"max_retries": 1},
        "max_redirections": 2,
        "throw_on_max_redirect": False,
        "strip_headers_on_redirect": ["x-a"],
        "strip_headers_on_cross_origin_redirect": ["x-b"],
        "dump_max_size": 10,
    }


def _all(td: Any, samples: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {k: overrides.get(k, samples[k]) for k in _keys(td)}


class _Done(DispatchHandler):
    def __init__(self, fut: asyncio.Future[None]) -> None:
        self.fut = fut

    def on_complete(self, trailers: list[bytes]) -> None:
        self.fut.set_result(None)

    def on_error(self, error: BaseException) -> None:
        self.fut.set_exception(error)

    def on_upgrade(self, status_code: int, headers: list[bytes], socket: Any) -> None:
        socket.close_now()
        self.fut.set_result(None)


def _not_an_option_error(exc: BaseException | None) -> None:
    if isinstance(exc, InvalidArgumentError):
        raise AssertionError(f"an option of the TypedDict was refused: {exc}") from exc


async def test_request_option_typeddicts_are_accepted(http_server: HttpServer) -> None:
    """Every key of each TypedDict, given a value, is accepted by its call."""
    s = _samples(http_server.origin)
    async with Client(http_server.origin) as client:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.dispatch(_Done(done), **_all(options.DispatchOptions, s))
        await done

        resp = await client.request(**_all(options.RequestOptions, s))
        assert await resp.body.bytes() == b"hello"

        def factory(data: StreamFactoryData) -> Any:
            return sink

        class Sink:
            def write(self, chunk: bytes) -> None:
                pass

        sink = Sink()
        await client.stream(factory, **_all(options.StreamOptions, s))

        def handler(data: PipelineHandlerData) -> Any:
            return data.body

        dup = client.pipeline(handler, **_all(options.PipelineOptions, s))
        await dup.end(b"x")
        assert b"".join([c async for c in dup]) == b"hello"

        for call, td, extra in (
            (client.upgrade, options.UpgradeOptions, {}),
            (client.connect, options.ConnectOptions, {"path": "127.0.0.1:1", "body": None}),
        ):
            try:
                got = await call(**_all(td, s, **extra))
            except Exception as exc:  # the server does not switch: a SocketError
                _not_an_option_error(exc)
            else:
                got.socket.close_now()


# -- header accessors ----------------------------------------------------------


def test_header_accessors() -> None:
    headers: dict[str, str | list[str]] = {
        "content-type": "text/plain",
        "set-cookie": ["a=1", "b=2"],
        "x-empty": [],
    }
    assert header(headers, "Content-Type") == "text/plain"
    assert header(headers, "set-cookie") == "a=1"
    assert header(headers, "missing") is None
    assert header(headers, "x-empty") is None
    assert header_values(headers, "SET-COOKIE") == ["a=1", "b=2"]
    assert header_values(headers, "content-type") == ["text/plain"]
    assert header_values(headers, "missing") == []
    values = header_values(headers, "set-cookie")
    values.append("c=3")
    assert headers["set-cookie"] == ["a=1", "b=2"]
    assert undipy.header is header and "header_values" in undipy.__all__


async def test_header_accessors_on_a_response(http_server: HttpServer) -> None:
    async with Client(http_server.origin) as client:
        resp = await client.request(path="/", method="GET")
        await resp.body.dump()
    assert header(resp.headers, "Content-Length") == "5"
    assert header_values(resp.headers, "content-length") == ["5"]


async def test_async_with_yields_the_dispatcher_itself() -> None:
    async with Pool("http://127.0.0.1:1") as pool:
        assert type(pool) is Pool
        assert pool.on("drain", print) is pool
