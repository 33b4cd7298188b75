"""Every ```python block of the documentation runs, as a complete script, against loopback
servers started here.

The blocks come from docs/**/*.md and README.md. A block is skipped only when the line
before it (blank lines aside) is ``<!-- not run: reason -->``. Each one is written to a
fresh directory and run with ``python -X dev`` in a subprocess, after its placeholder
origins are replaced with this test's servers:

* ``http://127.0.0.1:8080`` (or ``localhost:8080``): the origin (routes below);
* ``http://127.0.0.1:3128``: a forward proxy (absolute-form requests and CONNECT to
  loopback targets only);
* ``https://localhost:8443``: the origin over TLS; its CA is ``ca.pem`` in the script's
  directory and in ``SSL_CERT_FILE``, and ``client.pem``/``client.key`` is a client
  certificate the TLS server verifies when one is sent.

The script must exit with status 0, without a ResourceWarning or a coroutine that was never
awaited on its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.metadata
import json
import os
import re
import shutil
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import undipy
from servers import HttpServer, Request, Response

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]


RUN_TIMEOUT = 30.0
"""Seconds one example may run."""

SLOW_SECONDS = 3.0
"""How long /slow takes to answer: longer than any timeout an example sets on it."""

NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)```python\s*$")
URL_HOST = re.compile(r"\b(?:https?|wss?)://(\[[^\]]*\]|[^/:\s\"'`)]+)")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
"""Hosts an example may reach; names under .test and .example never resolve (RFC 2606), so
MockAgent examples may use them."""

KNOWN_BROKEN: dict[str, str] = {}
"""Blocks known not to run yet (``page:block`` -> why); strict: once one runs, its
entry must go."""


@dataclass(frozen=True)
class Block:
    page: str
    index: int
    line: int
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.index}"


def blocks_of(path: Path) -> list[Block]:
    """The page's ```python blocks, numbered from 1, with their skip marker if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        marker = NOT_RUN.match(lines[prev].strip()) if prev >= 0 else None
        found.append(
            Block(page, len(found) + 1, start + 1, "\n".join(body) + "\n", marker and marker[1])
        )
        i += 1
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks_of(page)]


def test_the_pages_have_examples() -> None:
    """Guards the collector itself: a broken fence regex would make every test vanish."""
    ran = [b for b in ALL_BLOCKS if b.skip_reason is None]
    assert len(ran) >= 40, [b.id for b in ran]
    assert any(b.page.startswith("docs/guide/") for b in ran)


def test_not_run_markers_sit_right_before_a_python_block() -> None:
    """A marker that drifted away from its block would silently un-skip it (or skip
    nothing): every marker must be followed by a python block."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if "not run" in line and line.strip().startswith("<!--"):
                assert NOT_RUN.match(line.strip()), f"{page}:{n + 1}: marker needs a reason"
                rest = [x for x in lines[n + 1 :] if x.strip()]
                assert rest and FENCE.match(rest[0]), f"{page}:{n + 1}: no python block after"


# --------------------------------------------------------------------------- servers


async def _hello(req: Request) -> Response:
    return Response(body=b"hello", headers=[("Content-Type", "text/plain; charset=utf-8")])


def _json(obj: object, status: int = 200) -> Response:
    return Response(status, json.dumps(obj).encode(), [("Content-Type", "application/json")])


async def _echo(req: Request) -> Response:
    ctype = req.header("content-type") or "application/octet-stream"
    return Response(body=req.body, headers=[("Content-Type", ctype)])


async def _headers(req: Request) -> Response:
    return _json({n.lower(): v for n, v in req.headers})


async def _slow(req: Request) -> Response:
    await asyncio.sleep(SLOW_SECONDS)
    return Response(body=b"finally")


async def _big(req: Request) -> Response:
    # 1 MiB in 64 KiB chunks: enough for a body that streams
    return Response(body=[bytes([65 + i]) * 65536 for i in range(16)], chunked=True)


async def _trailers(req: Request) -> Response:
    return Response(body=[b"part 1, ", b"part 2"], chunked=True, trailers=[("x-checksum", "abc")])


def _make_flaky() -> object:
    # 503 with Retry-After: 0 twice, then 200: a retry interceptor gets through.
    count = 0

    async def flaky(req: Request) -> Response:
        nonlocal count
        count += 1
        if count <= 2:
            return Response(503, b"busy", [("Retry-After", "0")])
        return Response(body=f"ok after {count} attempts".encode())

    return flaky


async def _upgrade_echo(req: Request) -> Response | None:
    """101 to any ``upgrade:`` protocol, then echo until the client ends its side."""
    proto = req.header("upgrade") or "echo"
    head = f"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: {proto}\r\n"
    req.writer.write(head.encode() + b"\r\n")
    while data := await req.reader.read(65536):
        req.writer.write(data)
        await req.writer.drain()
    return None


async def _websocket(req: Request) -> Response | None:
    """A WebSocket echo on websockets' sans-I/O server protocol."""
    from websockets.frames import Opcode
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    proto = ServerProtocol()
    proto.receive_data(req.raw)
    (request,) = proto.events_received()
    proto.send_response(proto.accept(request))
    while True:
        for out in proto.data_to_send():
            if out:
                req.writer.write(out)
            elif req.writer.can_write_eof():
                req.writer.write_eof()
        await req.writer.drain()
        if proto.state is State.CLOSED:
            return None
        data = await asyncio.wait_for(req.reader.read(65536), 10)
        if data:
            proto.receive_data(data)
        else:
            proto.receive_eof()
        for frame in proto.events_received():
            if frame.opcode is Opcode.TEXT:
                proto.send_text(frame.data)
            elif frame.opcode is Opcode.BINARY:
                proto.send_binary(frame.data)


def route_origin(srv: HttpServer) -> None:
    srv.route("/", _hello)
    srv.route("/item/*", lambda req: _async(Response(body=req.path.encode())))
    srv.route("/json", lambda req: _async(_json({"hello": "world", "items": [1, 2, 3]})))
    srv.route("/users", lambda req: _async(_json({"users": [{"id": 1, "name": "ada"}]})))
    srv.route("/echo", _echo)
    srv.route("/upload", _echo)
    srv.route("/headers", _headers)
    srv.route("/slow", _slow)
    srv.route("/big", _big)
    srv.route("/trailers", _trailers)
    srv.route("/flaky", _make_flaky())  # type: ignore[arg-type]
    srv.route("/missing", lambda req: _async(_json({"error": "no such thing"}, status=404)))
    srv.route(
        "/gzip",
        lambda req: _async(
            Response(
                body=gzip.compress(b"hello, compressed world " * 100),
                headers=[("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
            )
        ),
    )
    srv.route("/redirect", lambda req: _async(Response(302, headers=[("Location", "/json")])))
    srv.route(
        "/login",
        lambda req: _async(
            Response(
                303,
                headers=[("Location", "/headers"), ("Set-Cookie", "session=s3cr3t; Path=/")],
            )
        ),
    )
    srv.route("/chat", _upgrade_echo)
    srv.route("/ws", _websocket)


async def _async(resp: Response) -> Response:
    return resp


async def _tunnel(req: Request) -> Response | None:
    """CONNECT to a loopback target: answer 200, then relay bytes both ways."""
    host, _, port = req.path.rpartition(":")
    if host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        return Response(403, b"loopback targets only", close=True)
    up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
    req.writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

    try:
        await asyncio.gather(pump(req.reader, up_writer), pump(up_reader, req.writer))
    finally:
        up_writer.close()
    return None


def route_proxy(proxy: HttpServer, origin: HttpServer) -> None:
    """Absolute-form requests are answered by the origin's routes (with a ``via``
    header, so an example can see it went through the proxy); CONNECT is tunnelled."""

    async def forward(req: Request) -> Response | None:
        if req.method == "CONNECT":
            return await _tunnel(req)
        if not req.path.startswith(origin.origin + "/"):
            return Response(502, b"this proxy only reaches the test origin\n")
        path = req.path[len(origin.origin) :]
        inner = Request(
            req.method, path, req.version, req.headers, req.body, req.raw, req.conn_id,
            req.reader, req.writer, req.trailers,
        )  # fmt: skip
        resp = await origin._handler_for(inner)(inner)
        if resp is not None:
            resp.headers = [*(resp.headers or []), ("Via", "1.1 docs-test-proxy")]
        return resp

    proxy.route("*", forward)


@dataclass
class Servers:
    origin: HttpServer
    proxy: HttpServer
    tls: HttpServer
    workdir: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    d = tmp_path_factory.mktemp("certs")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    return ca, d


@pytest.fixture
async def servers(certs: tuple[trustme.CA, Path], tmp_path: Path) -> AsyncIterator[Servers]:
    ca, cert_dir = certs
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked when sent
    for name in ("ca.pem", "client.pem", "client.key"):
        shutil.copy(cert_dir / name, tmp_path / name)
    # The WebSocket guide imports the example client from the script's directory.
    shutil.copy(ROOT / "docs" / "examples" / "websocket_client.py", tmp_path)
    async with HttpServer() as origin, HttpServer() as proxy, HttpServer(tls=ctx) as tls:
        route_origin(origin)
        route_origin(tls)
        route_proxy(proxy, origin)
        yield Servers(origin, proxy, tls, tmp_path)


# --------------------------------------------------------------------------- the test


def _plugin_env() -> dict[str, str]:
    """Load undipy's pytest plugin in examples that run pytest, when it is not installed
    through its entry point (tests/dev.sh runs from the sources)."""
    eps = importlib.metadata.entry_points(group="pytest11")
    if any(ep.name == "undipy" for ep in eps):
        return {}
    return {"PYTEST_PLUGINS": "undipy.pytest_plugin"}


def _params() -> list[object]:
    out: list[object] = []
    for b in ALL_BLOCKS:
        marks: list[pytest.MarkDecorator] = [pytest.mark.timeout(RUN_TIMEOUT + 30)]
        if b.skip_reason is not None:
            marks.append(pytest.mark.skip(reason=f"not run: {b.skip_reason}"))
        elif b.id in KNOWN_BROKEN:
            marks.append(pytest.mark.xfail(reason=KNOWN_BROKEN[b.id], strict=True))
        out.append(pytest.param(b, id=b.id, marks=marks))
    return out


@pytest.mark.parametrize("block", _params())
async def test_example_runs(block: Block, servers: Servers) -> None:
    where = f"{block.page} line {block.line} (block {block.index})"
    for host in URL_HOST.findall(block.code):
        assert host in LOCAL_HOSTS or host.endswith((".test", ".example")), (
            f"{where}: examples reach loopback only, not {host}"
        )
    # host:port, not whole origins: ws:// URLs and CONNECT targets name them too
    code = (
        block.code.replace("127.0.0.1:8080", f"127.0.0.1:{servers.origin.port}")
        .replace("localhost:8080", f"localhost:{servers.origin.port}")
        .replace("127.0.0.1:3128", f"127.0.0.1:{servers.proxy.port}")
        .replace("localhost:8443", f"localhost:{servers.tls.port}")
    )
    script = servers.workdir / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        **_plugin_env(),
        "SSL_CERT_FILE": str(servers.workdir / "ca.pem"),
        # the undipy under test: installed, or the sources tests/dev.sh built
        "PYTHONPATH": os.pathsep.join(
            [str(Path(undipy.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(name, None)  # the proxy guide sets its own
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "example.py",
        cwd=servers.workdir, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"{where}: still running after {RUN_TIMEOUT}s\n{_show(out, err)}")
    assert proc.returncode == 0, f"{where}: exit status {proc.returncode}\n{_show(out, err)}"
    text = err.decode(errors="replace")
    for bad in ("ResourceWarning", "was never awaited"):
        assert bad not in text, f"{where}: {bad} on stderr\n{_show(out, err)}"


def _show(out: bytes, err: bytes) -> str:
    return (
        "--- stdout\n" + out.decode(errors="replace")[-4000:]
        + "\n--- stderr\n" + err.decode(errors="replace")[-4000:]
    )  # fmt: skip
