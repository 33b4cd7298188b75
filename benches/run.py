"""undipy benchmark harness: undipy vs aiohttp, httpx, aiosonic and pyreqwest,
and undici under Node (the library undipy translates), and wrk as the load
generator's limit, against a private nginx.

    python benches/run.py                      # full run (see benches/README.md)
    python benches/run.py --quick              # 1 run, 2 s per measurement
    python benches/run.py --workloads seq,c64 --clients aiohttp,undipy-request \
        --loops uvloop --runs 5 --markdown results.md
    python benches/run.py --url http://127.0.0.1:8080   # any server with the same paths
    python benches/run.py --quick --workloads c64,hc64,hconn   # https (issue 10)

Each (workload, client, loop) measurement runs in a fresh process
(python/undipy/_bench/client.py; undici's: node benches/undici_client.js, loop
`node`); the tables show the median over --runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The per-process client runner ships inside the package (``undipy bench``
# uses it too); it runs as a plain script and imports each library lazily.
CLIENT_RUN = HERE.parent / "python" / "undipy" / "_bench" / "client.py"


def _load_client_run() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("undipy_bench_client", CLIENT_RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # what its dataclasses look their module up in
    spec.loader.exec_module(module)
    return module


_client_run = _load_client_run()
CLIENT_MODULES = _client_run.CLIENT_MODULES
CLIENTS = _client_run.CLIENTS
POST_BODY = _client_run.POST_BODY
WORKLOADS = _client_run.WORKLOADS
PIPELINED = _client_run.PIPELINED
STREAMING = _client_run.STREAMING
STREAM_CLIENTS = _client_run.STREAM_CLIENTS
ALL_CLIENT_MODULES = _client_run.ALL_CLIENT_MODULES
HTTPS = _client_run.HTTPS
NEW_CONNECTION = _client_run.NEW_CONNECTION

LOOPS = ["asyncio", "uvloop"]

# undici under Node: its own runner (the same flags and JSON line as
# client.py), one "loop" (Node's), run once per workload whatever --loops says.
# Its ratio columns compare to the baseline's asyncio row (NODE_BASE_LOOP).
UNDICI = "undici"
NODE_LOOP = "node"
NODE_BASE_LOOP = "asyncio"
UNDICI_RUN = HERE / "undici_client.js"
# Debian's node-undici installs here, which a Node from elsewhere (NodeSource)
# does not search: the runner gets it in NODE_PATH.
DEBIAN_NODE_PATH = "/usr/share/nodejs"
ALL_CLIENTS = [*ALL_CLIENT_MODULES, UNDICI]
WRK = "wrk"
PIP_NAMES = {
    "aiohttp": "aiohttp",
    "httpx": "httpx",
    "aiosonic": "aiosonic",
    "pyreqwest": "pyreqwest",
    "uvloop": "uvloop",
    "trustme": "trustme",  # the certificate, when there is no openssl CLI
}
WORKLOAD_TITLES = {
    "seq": "GET /small (13 B), 1 in flight, 1 connection",
    "c64": "GET /small (13 B), 64 in flight, 64 connections",
    "c64p4": "GET /small (13 B), 64 in flight over 4 connections, pipelining 10 "
    "(undipy and undici only)",
    "c64p1": "GET /small (13 B), 64 in flight over 1 connection, pipelining 10 "
    "(undipy and undici only)",
    "big": "GET /1m (1 MiB, body fully read), 8 in flight, 8 connections",
    "post": "POST /echo (64 KiB request body, 2 B response), 16 in flight, 16 connections",
    "s1m": "streaming GET /1m into a counting sink, 8 in flight, 8 connections",
    "s100m": "streaming GET /100m into a counting sink, 4 in flight, 4 connections",
    "s1g": "streaming GET /1g into a counting sink, 1 in flight (peak RSS is the point)",
    "hseq": "https GET /small (13 B), 1 in flight, 1 connection",
    "hc64": "https GET /small (13 B), 64 in flight, 64 connections",
    "hbig": "https GET /1m (1 MiB, body fully read), 8 in flight, 8 connections",
    "hpost": "https POST /echo (64 KiB request body, 2 B response), 16 in flight, 16 connections",
    "hconn": "https GET /small (13 B), 16 in flight, a new TLS connection per request "
    "(Connection: close)",
}
# Reported in MiB/s, and CPU per MiB for the streaming ones.
BYTE_WORKLOADS = ("big", "hbig", *STREAMING)
MIB = 1 << 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# CPU sets for --pin (None: leave the affinity alone).
PIN: dict[str, set[int] | None] = {"server": None, "client": None}


def set_pin(mode: str) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "same":
        PIN["server"] = PIN["client"] = {cpus[0]}
    elif mode == "split":
        PIN["server"] = {cpus[0]}
        PIN["client"] = set(cpus[1:]) or {cpus[0]}


def pinned(role: str):
    """preexec_fn for a subprocess of `role` (server or client)."""
    cpus = PIN[role]
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


# ---------------------------------------------------------------- installing


def find_exe(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/usr/bin", "/sbin") if os.access(p := f"{d}/{name}", os.X_OK)),
        None,
    )


def apt_install(packages: list[str]) -> bool:
    if not packages:
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"  cannot install {packages}: need root and apt-get")
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    log(f"  $ {shlex.join(cmd)}")
    if (
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    ):
        return True
    log("  $ apt-get update")
    subprocess.run(
        ["apt-get", "update"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log(f"  $ {shlex.join(cmd)}")
    return (
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )


def nginx_has_ssl(exe: str) -> bool:
    """Whether this nginx was built with the http ssl module (`nginx -V`)."""
    out = subprocess.run([exe, "-V"], capture_output=True, text=True)
    return "--with-http_ssl_module" in out.stdout + out.stderr


def ensure_system_tools(need_nginx: bool, need_wrk: bool, need_ssl: bool) -> None:
    want = []
    if need_nginx and not find_exe("nginx"):
        want.append("nginx-light")
    if need_wrk and not find_exe("wrk"):
        want.append("wrk")
    if want:
        log(f"installing {', '.join(want)} ...")
    if want and not apt_install(want):
        # One at a time, and the full nginx package if nginx-light is missing.
        for pkg in want:
            if not apt_install([pkg]) and pkg == "nginx-light":
                apt_install(["nginx"])
    exe = find_exe("nginx")
    if need_nginx and need_ssl and exe and not nginx_has_ssl(exe):
        log("nginx has no ssl module: installing the full nginx package ...")
        apt_install(["nginx"])


def python_can_import(module: str) -> bool:
    return (
        subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def ensure_python_packages(modules: list[str]) -> None:
    missing = [m for m in modules if m in PIP_NAMES and not python_can_import(m)]
    if not missing:
        return
    names = [PIP_NAMES[m] for m in missing]
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", *names]
    log(f"installing {', '.join(names)} ...\n  $ {shlex.join(cmd)}")
    if subprocess.run(cmd).returncode != 0 and len(names) > 1:
        for name in names:  # one failure must not keep the others out
            subprocess.run([*cmd[: -len(names)], name])


def find_node() -> str | None:
    return find_exe("node") or find_exe("nodejs")


def node_env() -> dict[str, str]:
    """The environment of the undici runner: Debian's module dir in NODE_PATH."""
    paths = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    if DEBIAN_NODE_PATH not in paths:
        paths.append(DEBIAN_NODE_PATH)
    return {**os.environ, "NODE_PATH": os.pathsep.join(paths)}


def undici_version() -> str:
    """ "5.15.0 (node 20.20.2)", or "unavailable: why"."""
    node = find_node()
    if not node:
        return "unavailable: node is not installed"
    if not UNDICI_RUN.exists():
        return f"unavailable: {UNDICI_RUN} is missing"
    try:
        out = subprocess.run(
            [node, str(UNDICI_RUN), "--versions"],
            capture_output=True,
            text=True,
            timeout=60,
            env=node_env(),
        )
        vers = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, IndexError, ValueError):
        return "unavailable: `node undici_client.js --versions` failed"
    undici = str(vers.get("undici", "unavailable: ?"))
    if undici.startswith("unavailable"):
        return undici.splitlines()[0]
    return f"{undici} (node {vers.get('node', '?')})"


def ensure_undici() -> None:
    """Debian's node-undici (and nodejs when there is no node at all)."""
    if not undici_version().startswith("unavailable"):
        return
    want = ["node-undici"] + ([] if find_node() else ["nodejs"])
    log(f"installing {', '.join(want)} ...")
    apt_install(want)


# -------------------------------------------------------------------- nginx

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    server_tokens off;
    default_type text/plain;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_body_temp_path {tmp}/client_body;
{extra_temp_paths}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
{locations}
    }}
{tls}}}
"""

# The routes, the same over http and https.
NGINX_LOCATIONS = """
        location = /small {{
            return 200 "Hello, World!";
        }}

        # /1m is random bytes; /100m and /1g are sparse files (zeros, no
        # disk), all sent with sendfile.
        location ~ ^/(1m|100m|1g)$ {{
            sendfile on;
            default_type application/octet-stream;
            root {tmp}/www;
        }}

        # nginx reads and discards the request body before it sends the
        # answer of `return` (ngx_http_send_response discards the body), so
        # keep-alive continues after a POST.
        location = /echo {{
            client_max_body_size 10m;
            client_body_buffer_size 1m;
            return 200 "ok";
        }}"""

# https (issue 10): the same routes over TLS 1.3 (1.2 allowed), with session
# tickets and a session cache so that clients can resume sessions. Each
# response after which nginx closes the connection (hconn's) is logged: the
# protocol, whether the session was resumed ("r") and the requests the
# connection carried.
NGINX_TLS = """
    log_format tls "$ssl_protocol $ssl_session_reused $connection_requests";
    map $sent_http_connection $closes {{
        close 1;
        default 0;
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {tls_dir}/server.pem;
        ssl_certificate_key {tls_dir}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        access_log {log} tls if=$closes;
{locations}
    }}
"""


# ------------------------------------------------------------- certificates

# The server certificate's extensions (what rustls/webpki and OpenSSL's strict
# mode want from a leaf).
OPENSSL_LEAF_EXT = """subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _certificates_openssl(exe: str, d: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run([exe, *args], cwd=d, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "7",
        "-subj", "/CN=undipy bench CA", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl(
        "req", "-new", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    (d / "leaf.ext").write_text(OPENSSL_LEAF_EXT)
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "2", "-days", "7", "-extfile", "leaf.ext", "-out", "server.pem",
    )  # fmt: skip


def _certificates_trustme(d: Path) -> None:
    import trustme

    ca = trustme.CA()  # ECDSA P-256 keys by default
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(d / "server.key"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "server.pem"))


def make_certificates(d: Path) -> str:
    """A CA (ca.pem) and the server certificate it signed for 127.0.0.1 and
    localhost (server.pem, server.key), ECDSA P-256, in `d`: with the openssl
    CLI if there is one, else with trustme. -> which made them."""
    exe = find_exe("openssl")
    if exe:
        try:
            _certificates_openssl(exe, d)
            return "openssl"
        except subprocess.CalledProcessError as exc:
            log(f"openssl failed ({exc.stderr.decode(errors='replace').strip()[-200:]}): trustme")
    try:
        _certificates_trustme(d)
    except ImportError as exc:
        raise RuntimeError(f"no openssl CLI and no trustme to make a certificate: {exc}") from None
    return "trustme"


class Nginx:
    def __init__(self, tls: bool) -> None:
        exe = find_exe("nginx")
        if not exe:
            raise SystemExit("nginx is not installed and could not be installed (or pass --url)")
        self.exe = exe
        self.tmp = Path(tempfile.mkdtemp(prefix="undipy-bench-nginx-"))
        # The worker runs as `nobody` when we are root: let it read the files.
        os.chmod(self.tmp, 0o755)
        (self.tmp / "www").mkdir(mode=0o755)
        (self.tmp / "www" / "1m").write_bytes(os.urandom(MIB))
        for name, size in (("100m", 100 * MIB), ("1g", 1024 * MIB)):
            with open(self.tmp / "www" / name, "wb") as f:
                f.truncate(size)
            # Read it once: the first read of a hole fills the page cache with
            # zero pages, which would slow down whichever client came first.
            with open(self.tmp / "www" / name, "rb", buffering=0) as f:
                while f.read(MIB):
                    pass
        for name in ("1m", "100m", "1g"):
            os.chmod(self.tmp / "www" / name, 0o644)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.https_origin: str | None = None
        # https: the certificates, and the log of the responses that close.
        self.tls_dir = self.tmp / "tls" if tls else None
        self.tls_log = self.tmp / "tls.log"
        self.cert_maker = ""
        self.no_tls = ""  # why there is no https server
        if tls and not nginx_has_ssl(exe):
            self.no_tls = f"{exe} has no ssl module (nginx -V)"
        elif self.tls_dir:
            self.tls_dir.mkdir(mode=0o755)
            try:
                self.cert_maker = make_certificates(self.tls_dir)
            except RuntimeError as exc:
                self.no_tls = str(exc)
        if self.no_tls:
            self.tls_dir = None

    @property
    def ca(self) -> str | None:
        return str(self.tls_dir / "ca.pem") if self.tls_dir else None

    def _config(self, port: int, tls_port: int, extra: str) -> str:
        locations = NGINX_LOCATIONS.format(tmp=self.tmp)
        tls = ""
        if self.tls_dir:
            tls = NGINX_TLS.format(
                port=tls_port, tls_dir=self.tls_dir, log=self.tls_log, locations=locations
            )
        return NGINX_CONF.format(
            tmp=self.tmp, port=port, extra_temp_paths=extra, locations=locations, tls=tls
        )

    def start(self) -> str:
        conf = self.tmp / "nginx.conf"
        # Keep nginx's other temp dirs out of /var/lib/nginx, where the module
        # exists in this build (`nginx -t` refuses unknown directives).
        extra_lines = []
        for mod in ("proxy", "fastcgi", "uwsgi", "scgi"):
            line = f"    {mod}_temp_path {self.tmp}/{mod};\n"
            conf.write_text(self._config(8, 9, "".join(extra_lines) + line))
            if (
                subprocess.run(
                    [
                        self.exe,
                        "-t",
                        "-p",
                        str(self.tmp),
                        "-c",
                        str(conf),
                        "-e",
                        str(self.tmp / "error.log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ).returncode
                == 0
            ):
                extra_lines.append(line)
        extra = "".join(extra_lines)

        last_err = ""
        for _ in range(5):
            port, tls_port = free_port(), free_port()
            if port == tls_port:
                continue
            conf.write_text(self._config(port, tls_port, extra))
            self.proc = subprocess.Popen(
                [self.exe, "-p", str(self.tmp), "-c", str(conf), "-e", str(self.tmp / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=pinned("server"),
            )
            ports = [port, tls_port] if self.tls_dir else [port]
            if self._wait_listening(ports):
                self.port = port
                if self.tls_dir:
                    self.https_origin = f"https://127.0.0.1:{tls_port}"
                return f"http://127.0.0.1:{port}"
            self.stop()
            err_log = self.tmp / "error.log"
            last_err = err_log.read_text()[-2000:] if err_log.exists() else ""
        raise SystemExit(f"nginx did not start; error.log:\n{last_err}")

    def _wait_listening(self, ports: list[int]) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while ports and time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=0.5).close()
                ports = ports[1:]
            except OSError:
                time.sleep(0.05)
        return not ports

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown, master + worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def version(self) -> str:
        out = subprocess.run([self.exe, "-v"], capture_output=True, text=True)
        return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------ verifying a server


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[int, dict[str, str], bytes]:
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before a response head")
        pending += chunk
    end = pending.index(b"\r\n\r\n") + 4
    lines = bytes(pending[:end]).decode("latin-1").split("\r\n")
    del pending[:end]
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" not in headers:
        raise RuntimeError(f"response without Content-Length: {lines[0]!r}")
    length = int(headers["content-length"])
    while len(pending) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed inside a response body")
        pending += chunk
    body = bytes(pending[:length])
    del pending[:length]
    return status, headers, body


def _connect(
    host: str, port: int, ctx: ssl.SSLContext | None, session: ssl.SSLSession | None = None
) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    if ctx is None:
        return sock
    return ctx.wrap_socket(sock, server_hostname=host, session=session)


def verify_server(origin: str, ca: str | None = None) -> str:
    """Checks every endpoint on ONE keep-alive connection (so a server that
    mishandles the POST body, or closes after it, is caught). An https://
    origin must present a certificate that `ca` (else the system store)
    trusts. -> for https, the TLS version and whether a second connection
    resumed the first one's session; "" for http."""
    m = re.fullmatch(r"(https?)://([^/:]+|\[[^\]]+\]):(\d+)", origin)
    if not m:
        raise SystemExit(f"the origin must look like http://127.0.0.1:PORT, got {origin!r}")
    host, port = m.group(2).strip("[]"), int(m.group(3))
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise SystemExit(f"refusing to benchmark a non-loopback host: {host}")
    ctx = ssl.create_default_context(cafile=ca) if m.group(1) == "https" else None
    hosthdr = f"{m.group(2)}:{port}"
    get = lambda p: f"GET {p} HTTP/1.1\r\nHost: {hosthdr}\r\n\r\n".encode()  # noqa: E731
    post = (
        f"POST /echo HTTP/1.1\r\nHost: {hosthdr}\r\nContent-Type: application/octet-stream"
        f"\r\nContent-Length: {len(POST_BODY)}\r\n\r\n"
    ).encode() + POST_BODY
    checks = [
        ("GET /small", get("/small"), lambda b: b == b"Hello, World!"),
        ("GET /1m", get("/1m"), lambda b: len(b) == MIB),
        ("POST /echo", post, lambda b: b == b"ok"),
        ("POST /echo again", post, lambda b: b == b"ok"),
        ("GET /small after POSTs", get("/small"), lambda b: b == b"Hello, World!"),
    ]
    try:
        sock = _connect(host, port, ctx)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"server check failed: cannot connect to {origin}: {exc}") from None
    with sock:
        pending = bytearray()
        for name, req, ok in checks:
            sock.sendall(req)
            status, headers, body = _read_response(sock, pending)
            if status != 200 or not ok(body):
                raise SystemExit(
                    f"server check failed: {name}: status {status}, {len(body)} body bytes"
                )
            if headers.get("connection", "").lower() == "close":
                raise SystemExit(f"server check failed: {name} closed the keep-alive connection")
        # Pipelined: the server must answer both, in order.
        sock.sendall(get("/small") + post)
        r1 = _read_response(sock, pending)
        r2 = _read_response(sock, pending)
        if (r1[0], r1[2], r2[0], r2[2]) != (200, b"Hello, World!", 200, b"ok"):
            raise SystemExit("server check failed: pipelined GET /small + POST /echo")
        if not isinstance(sock, ssl.SSLSocket):
            return ""
        version, session = sock.version(), sock.session
    # A second connection offers the first one's session (its ticket).
    with _connect(host, port, ctx, session) as again:
        again.sendall(get("/small"))
        _read_response(again, bytearray())
        resumed = "resumes sessions" if again.session_reused else "does NOT resume sessions"
    return f"{version}, {resumed}"


# ------------------------------------------------------------- measurements


@dataclass
class Target:
    """Where the workloads go: the http origin, the https one (None: no https
    workloads) with the CA file its certificate chains to, and nginx's log of
    the https responses after which it closed the connection (hconn's)."""

    origin: str
    https_origin: str | None = None
    ca: str | None = None
    tls_log: Path | None = None

    def origin_for(self, workload: str) -> str:
        if workload in HTTPS:
            assert self.https_origin is not None
            return self.https_origin
        return self.origin

    def log_mark(self) -> int | None:
        """The end of the TLS log now (None: no log)."""
        if self.tls_log is None or not self.tls_log.exists():
            return None
        return self.tls_log.stat().st_size

    def logged_since(self, mark: int) -> dict[str, Any]:
        """The TLS log's lines since `mark`: how many, how many resumed their
        session, the protocols, the most requests one connection carried."""
        assert self.tls_log is not None
        with open(self.tls_log, "rb") as f:
            f.seek(mark)
            lines = [ln.split() for ln in f.read().decode("latin-1").splitlines()]
        lines = [ln for ln in lines if len(ln) == 3]
        return {
            "closed": len(lines),
            "resumed": sum(ln[1] == "r" for ln in lines),
            "protocols": sorted({ln[0] for ln in lines}),
            "max_per_conn": max((int(ln[2]) for ln in lines), default=0),
        }


@dataclass
class Result:
    workload: str
    client: str
    loop: str
    run: int
    requests: int = 0
    bytes: int = 0
    wall: float = 0.0
    cpu: float | None = None
    errors: int = 0
    failed: str | None = None  # why the run produced no numbers
    first_error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """req/s, or MiB/s for the byte workloads."""
        if self.wall <= 0:
            return 0.0
        return (self.bytes / MIB if self.workload in BYTE_WORKLOADS else self.requests) / self.wall

    @property
    def cpu_us_per_req(self) -> float | None:
        """CPU µs per request, or per MiB for the streaming workloads."""
        per = self.bytes / MIB if self.workload in STREAMING else self.requests
        if self.cpu is None or per == 0:
            return None
        return self.cpu / per * 1e6

    @property
    def rss_mib(self) -> float | None:
        kib = self.extra.get("maxrss_kib")
        return kib / 1024 if kib is not None else None


def run_client(
    workload: str, client: str, loop: str, run: int, target: Target, duration: float, warmup: float
) -> Result:
    res = Result(workload, client, loop, run)
    ca = ["--ca", target.ca] if workload in HTTPS and target.ca else []
    args = [
        "--loop",
        loop,
        "--workload",
        workload,
        "--url",
        target.origin_for(workload),
        *ca,
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
    ]
    env = None
    if client == UNDICI:
        node = find_node()
        if not node:
            res.failed = "unavailable: node is not installed"
            return res
        cmd, env = [node, str(UNDICI_RUN), *args], node_env()
    else:
        cmd = [sys.executable, str(CLIENT_RUN), "--client", client, *args]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=warmup + duration + 90,
            preexec_fn=pinned("client"),
            env=env,
        )
    except subprocess.TimeoutExpired:
        res.failed = "timed out"
        return res
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        res.failed = f"exit {proc.returncode}: {tail}"[:300]
        return res
    data = json.loads(line)
    if "unavailable" in data:
        res.failed = "unavailable: " + data["unavailable"]
        return res
    res.requests, res.bytes, res.wall = data["requests"], data["bytes"], data["wall"]
    res.cpu, res.errors, res.first_error = data["cpu"], data["errors"], data["first_error"]
    res.extra = {
        k: data[k] for k in ("cpu_user", "cpu_sys", "maxrss_kib", "errors_total", "shutdown_error")
    }
    # A streaming run counts bytes as they arrive: a 1 GiB body may not end
    # inside a short window.
    if (res.bytes if workload in STREAMING else res.requests) == 0:
        why = res.first_error or data.get("shutdown_error") or "no error reported"
        res.failed = f"no request completed ({why})"
    return res


WRK_LUA_POST = """\
wrk.method = "POST"
wrk.body = string.rep("x", {size})
wrk.headers["Content-Type"] = "application/octet-stream"
"""

# wrk's pipelining: each connection writes `depth` requests back to back.
WRK_LUA_PIPELINE = """\
init = function(args)
  local r = {{}}
  for i = 1, {depth} do r[i] = wrk.format(nil, "{path}") end
  req = table.concat(r)
end
request = function() return req end
"""

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_wrk(out: str) -> tuple[int, float, float, int]:
    """-> (requests, seconds, bytes read, errors) from wrk's report."""
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read", out)
    if not m:
        raise ValueError(f"cannot parse wrk output:\n{out}")
    requests = int(m.group(1))
    secs = float(m.group(2)) * _UNITS[m.group(3)]
    nbytes = float(m.group(4)) * _SIZE[m.group(5)]
    errors = 0
    if e := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(e.group(1))
    if e := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in e.groups())
    return requests, secs, nbytes, errors


def run_wrk(
    workload: str, run: int, target: Target, duration: float, warmup: float, lua_dir: Path
) -> Result:
    path, method, n, _ = WORKLOADS[workload]
    res = Result(workload, "wrk", "-", run)
    exe = find_exe(WRK)
    if not exe:
        res.failed = "unavailable: wrk is not installed"
        return res
    cmd = [exe, "-t1", f"-c{n}", "--timeout", "30s"]
    if workload in PIPELINED:
        conns, depth = PIPELINED[workload]
        lua = lua_dir / f"pipeline{depth}.lua"
        lua.write_text(WRK_LUA_PIPELINE.format(depth=depth, path=path))
        cmd = [exe, "-t1", f"-c{conns}", "--timeout", "30s", "-s", str(lua)]
    if method == "POST":
        lua = lua_dir / "post.lua"
        lua.write_text(WRK_LUA_POST.format(size=len(POST_BODY)))
        cmd += ["-s", str(lua)]
    if workload in NEW_CONNECTION:
        cmd += ["-H", "Connection: close"]  # wrk reconnects after each response
    # https: wrk does not check the certificate.
    url = target.origin_for(workload) + path
    # wrk takes whole seconds only.
    if warmup > 0:
        subprocess.run(
            [*cmd, f"-d{max(1, round(warmup))}s", url],
            capture_output=True,
            preexec_fn=pinned("client"),
        )
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [*cmd, f"-d{max(1, round(duration))}s", url],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        preexec_fn=pinned("client"),
    )
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        requests, secs, nbytes, errors = parse_wrk(proc.stdout)
    except ValueError as exc:
        res.failed = str(exc).splitlines()[0] + (proc.stderr.strip()[:200])
        return res
    # wrk's byte count includes response heads: for MiB/s use the body size
    # (a streaming workload counts what was read, finished or not).
    res.requests, res.wall, res.errors = requests, secs, errors
    res.bytes = nbytes if workload in STREAMING else requests * WORKLOADS[workload][3]
    res.extra = {"wrk_bytes_read": nbytes}
    # wrk's own CPU (it was the only child reaped in between), for reference.
    res.cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if requests == 0:
        res.failed = "wrk completed no request"
    return res


# ------------------------------------------------------------------ reports


def fmt_rate(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def fmt_rss(mib: float | None, is_wrk: bool) -> str:
    if is_wrk or mib is None:
        return "n/a"
    return f"{mib:,.0f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


@dataclass
class Row:
    client: str
    loop: str
    rate: float | None
    cpu_us: float | None
    spread: float | None
    rss_mib: float | None
    errors: int
    runs_ok: int
    runs: int
    note: str = ""
    resumed: float | None = None  # hconn: % of the new TLS connections that resumed


def tls_summary(tls: list[dict[str, Any]]) -> tuple[float | None, str]:
    """(% resumed, a note) from nginx's log of the connections that closed."""
    closed = sum(t["closed"] for t in tls)
    if not closed:
        return None, ""
    notes = []
    protocols = sorted({p for t in tls for p in t["protocols"]})
    if protocols != ["TLSv1.3"]:
        notes.append(f"TLS versions: {', '.join(protocols)}")
    most = max(t["max_per_conn"] for t in tls)
    if most > 1:
        notes.append(f"up to {most} requests on one connection")
    return sum(t["resumed"] for t in tls) / closed * 100, "; ".join(notes)


def summarize(results: list[Result], workload: str, order: list[tuple[str, str]]) -> list[Row]:
    rows = []
    for client, loop in order:
        rs = [r for r in results if (r.workload, r.client, r.loop) == (workload, client, loop)]
        if not rs:
            continue
        ok = [r for r in rs if r.failed is None]
        if any(r.failed and r.failed.startswith("unavailable") for r in rs) and not ok:
            continue  # listed once, above the tables
        if not ok:
            rows.append(
                Row(
                    client,
                    loop,
                    None,
                    None,
                    None,
                    None,
                    sum(r.errors for r in rs),
                    0,
                    len(rs),
                    note=f"failed: {rs[0].failed}",
                )
            )
            continue
        rates = [r.rate for r in ok]
        cpus = [c for r in ok if (c := r.cpu_us_per_req) is not None]
        rss = [m for r in ok if (m := r.rss_mib) is not None]
        med = statistics.median(rates)
        spread = (max(rates) - min(rates)) / med * 100 if med and len(rates) > 1 else None
        first_err = next((r.first_error for r in ok if r.first_error), None)
        note = f"first error: {first_err}" if first_err and sum(r.errors for r in ok) else ""
        shutdown = next((e for r in ok if (e := r.extra.get("shutdown_error"))), None)
        if shutdown:
            note = (note + "; " if note else "") + f"at shutdown: {shutdown}"
        resumed, tls_note = tls_summary([t for r in ok if (t := r.extra.get("tls"))])
        if tls_note:
            note = (note + "; " if note else "") + tls_note
        if len(ok) < len(rs):
            note = (note + "; " if note else "") + f"{len(rs) - len(ok)} run(s) failed"
        rows.append(
            Row(
                client,
                loop,
                med,
                statistics.median(cpus) if cpus else None,
                spread,
                max(rss) if rss else None,
                sum(r.errors for r in rs),
                len(ok),
                len(rs),
                note,
                resumed,
            )
        )
    return rows


def baseline_row(base: dict[str, Row], loop: str) -> Row | None:
    """The baseline's row for a row on `loop`: the same loop's; undici's `node`
    row (or every row, when undici is the baseline) takes the baseline's
    asyncio row, else its first."""
    if loop in base:
        return base[loop]
    if loop == NODE_LOOP or NODE_LOOP in base:
        return base.get(NODE_BASE_LOOP) or next(iter(base.values()), None)
    return None


def fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}%"


def build_tables(
    results: list[Result],
    workloads: list[str],
    order: list[tuple[str, str]],
    baseline: str,
    stream_baseline: str,
) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """-> [(title, header, rows, notes)] per workload."""
    tables = []
    for wl in workloads:
        rows = summarize(results, wl, order)
        streaming = wl in STREAMING
        new_conn = wl in NEW_CONNECTION
        base_client = stream_baseline if streaming else baseline
        base = {r.loop: r for r in rows if r.client == base_client}
        unit = "MiB/s" if wl in BYTE_WORKLOADS else "req/s"
        header = [
            "client",
            "loop",
            unit,
            "CPU µs/MiB" if streaming else "CPU µs/req",
            f"{unit} vs {base_client}",
            f"CPU vs {base_client}",
            *(["peak RSS MiB"] if streaming else []),
            *(["TLS resumed"] if new_conn else []),
            "range",
            "errors",
        ]
        body, notes = [], []
        for r in rows:
            b = baseline_row(base, r.loop)
            is_wrk = r.client == "wrk"
            cpu = fmt_rate(r.cpu_us) if r.cpu_us is not None else "—"
            body.append(
                [
                    r.client,
                    r.loop,
                    fmt_rate(r.rate),
                    f"({cpu})" if is_wrk and r.cpu_us is not None else cpu,
                    "n/a" if is_wrk else fmt_ratio(r.rate, b.rate if b else None),
                    "n/a" if is_wrk else fmt_ratio(r.cpu_us, b.cpu_us if b else None),
                    *([fmt_rss(r.rss_mib, is_wrk)] if streaming else []),
                    *([fmt_pct(r.resumed)] if new_conn else []),
                    f"±{r.spread / 2:.0f}%" if r.spread is not None else "—",
                    str(r.errors),
                ]
            )
            if r.note:
                notes.append(f"{r.client}/{r.loop}: {r.note}")
        tables.append((f"{wl}: {WORKLOAD_TITLES[wl]}", header, body, notes))
    return tables


def https_cost(results: list[Result], order: list[tuple[str, str]], client: str) -> list[str]:
    """`client`'s CPU µs/req over https ÷ over http, per loop, for each https
    workload whose plain one ran too (c64 first: issue 10's bar)."""
    lines = []
    pairs = sorted(((h, p) for h, p in HTTPS.items() if p), key=lambda hp: hp[1] != "c64")
    for hwl, plain in pairs:
        rows = {
            wl: {r.loop: r for r in summarize(results, wl, order) if r.client == client}
            for wl in (hwl, plain)
        }
        cells = []
        for loop, h in rows[hwl].items():
            p = rows[plain].get(loop)
            if p is None or h.cpu_us is None or p.cpu_us is None:
                continue
            cells.append(
                f"{fmt_ratio(h.cpu_us, p.cpu_us)} on {loop} "
                f"({fmt_rate(h.cpu_us)} / {fmt_rate(p.cpu_us)} µs)"
            )
        if cells:
            lines.append(
                f"{client} CPU µs/req, {hwl} ÷ {plain} (https ÷ http): " + ", ".join(cells)
            )
    return lines


def undici_note(args: argparse.Namespace) -> str:
    """The footnote sentence on undici's rows."""
    base = args.baseline
    if base == UNDICI:
        return (
            "undici runs under Node (loop `node`; process.cpuUsage(), all threads, and "
            "process.resourceUsage().maxRSS); it is the baseline, so every row's ratios "
            "compare to its one row."
        )
    return (
        "undici runs under Node (loop `node`; CPU from process.cpuUsage(), all threads, "
        "peak RSS from process.resourceUsage().maxRSS): its ratios compare to "
        f"{base}'s ({args.stream_baseline}'s for streaming) {NODE_BASE_LOOP} row "
        "(its uvloop row when asyncio did not run)."
    )


def render_text(tables) -> str:
    def line(cells: list[str], widths: list[int]) -> str:
        # Two left-aligned name columns, then right-aligned numbers.
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = []
    for title, header, rows, notes in tables:
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(header)
        ]
        out.append(f"\n== {title}")
        out.append(line(header, widths))
        out.append("  ".join("-" * w for w in widths))
        out.extend(line(r, widths) for r in rows)
        out.extend(f"  note: {n}" for n in notes)
    return "\n".join(out)


def render_markdown(tables) -> str:
    out = []
    for title, header, rows, notes in tables:
        out.append(f"\n### {title}\n")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|")
        out.extend("| " + " | ".join(r) + " |" for r in rows)
        if notes:
            out.append("")
            out.extend(f"- {n}" for n in notes)
    return "\n".join(out)


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def tool_version(exe: str | None, *args: str) -> str:
    if not exe:
        return "not installed"
    out = subprocess.run([exe, *args], capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0] if text else "?"


# --------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="undipy benchmark harness",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--runs", type=int, help="repeats per measurement (median) [3]")
    ap.add_argument("--duration", type=float, help="timed seconds per measurement [5]")
    ap.add_argument("--warmup", type=float, help="untimed seconds before it [1]")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="defaults become 1 run, 2 s, 0.5 s warm-up (explicit flags still win)",
    )
    ap.add_argument(
        "--pin",
        choices=["none", "split", "same"],
        default="none",
        help="CPU affinity: none [default]; split = server on CPU 0, clients and "
        "wrk on the other CPUs; same = everything on CPU 0",
    )
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="[%(default)s]")
    ap.add_argument("--clients", default=",".join(ALL_CLIENTS), help="[%(default)s]")
    ap.add_argument(
        "--loops",
        default=",".join(LOOPS),
        help="the Python clients' event loops [%(default)s]; undici always runs once, "
        "on Node's (loop `node`)",
    )
    ap.add_argument(
        "--baseline",
        default="undipy-request",
        help="client the ratio columns compare to [%(default)s]",
    )
    ap.add_argument(
        "--stream-baseline",
        default="undipy-stream",
        help="the same for the streaming workloads [%(default)s]",
    )
    ap.add_argument("--no-wrk", action="store_true", help="skip the wrk rows")
    ap.add_argument("--url", help="benchmark this server (http://127.0.0.1:PORT) instead of nginx")
    ap.add_argument(
        "--https-url",
        help="with --url: the https workloads go to this server (https://127.0.0.1:PORT); "
        "without it they are skipped",
    )
    ap.add_argument("--ca", metavar="PEM", help="with --https-url: the CA file its clients trust")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get or pip")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    ap.add_argument("--json", metavar="FILE", help="also write every single run as JSON")
    args = ap.parse_args(argv)
    defaults = (1, 2.0, 0.5) if args.quick else (3, 5.0, 1.0)
    for name, default in zip(("runs", "duration", "warmup"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)

    def split(value: str, allowed: list[str], what: str) -> list[str]:
        items = [x.strip() for x in value.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad:
            ap.error(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
        return items

    args.workloads = split(args.workloads, list(WORKLOADS), "workload")
    args.clients = split(args.clients, ALL_CLIENTS, "client")
    args.loops = split(args.loops, LOOPS, "loop")
    if args.runs < 1 or args.duration <= 0 or args.warmup < 0:
        ap.error("--runs must be >= 1, --duration > 0, --warmup >= 0")
    if args.https_url and not args.url:
        ap.error("--https-url goes with --url (without them, nginx serves both)")
    if args.ca and not args.https_url:
        ap.error("--ca goes with --https-url (nginx's CA is made by the harness)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    set_pin(args.pin)
    use_wrk = not args.no_wrk
    workloads = list(args.workloads)
    https = any(wl in HTTPS for wl in workloads)

    # 1. Tools and libraries.
    if not args.no_install:
        ensure_system_tools(need_nginx=not args.url, need_wrk=use_wrk, need_ssl=https)
        if UNDICI in args.clients:
            ensure_undici()
        mods = [ALL_CLIENT_MODULES[c] for c in args.clients if c != UNDICI] + (
            ["uvloop"] if "uvloop" in args.loops else []
        )
        if https and not args.url and not find_exe("openssl"):
            mods.append("trustme")
        ensure_python_packages(sorted(set(mods)))
    versions = json.loads(
        subprocess.run(
            [sys.executable, str(CLIENT_RUN), "--versions"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    if UNDICI in args.clients:
        versions[UNDICI] = undici_version()
    unavailable = {}
    for c in args.clients:
        v = versions.get(ALL_CLIENT_MODULES.get(c, c), "")
        if v.startswith("unavailable"):
            unavailable[c] = v
    # The Python clients, run on every loop; undici once, on Node's.
    clients = [c for c in args.clients if c not in unavailable and c != UNDICI]
    use_undici = UNDICI in args.clients and UNDICI not in unavailable
    loops = list(args.loops)
    if "uvloop" in loops and versions.get("uvloop", "").startswith("unavailable"):
        unavailable["uvloop (loop)"] = versions["uvloop"]
        loops.remove("uvloop")
    for name, why in unavailable.items():
        log(f"{name}: {why}")
    if use_wrk and not find_exe(WRK):
        log("wrk: unavailable (not installed)")
        unavailable["wrk"] = "unavailable: not installed"
        use_wrk = False

    # 2. Server.
    nginx = None
    results: list[Result] = []
    lua_dir = Path(tempfile.mkdtemp(prefix="undipy-bench-wrk-"))
    try:
        if args.url:
            https_url = args.https_url.rstrip("/") if args.https_url else None
            target = Target(args.url.rstrip("/"), https_url, args.ca)
            server = f"external: {target.origin}"
        else:
            nginx = Nginx(tls=https)
            target = Target(nginx.start(), nginx.https_origin, nginx.ca, nginx.tls_log)
            server = f"{nginx.version()} (1 worker) at {target.origin}"
        log(f"server: {server}")
        verify_server(target.origin)
        log("server check: /small, /1m, /echo (twice), pipelined — ok")
        if target.https_origin:
            tls = verify_server(target.https_origin, target.ca)
            log(f"server check over https: the same — ok; {tls}")
            if nginx and not tls.startswith("TLSv1.3"):
                raise SystemExit(f"nginx negotiated {tls}, not TLS 1.3")
            server += f" and {target.https_origin} ({tls}"
            server += f"; ECDSA P-256 certificate by {nginx.cert_maker})" if nginx else ")"
        elif https:
            why = nginx.no_tls if nginx else "no --https-url"
            unavailable["https workloads"] = f"unavailable: {why}"
            log(f"https workloads: skipped ({why})")
            workloads = [wl for wl in workloads if wl not in HTTPS]

        # 3. Measurements, run-major so that drift hits every client alike.
        plan = []
        for run in range(1, args.runs + 1):
            for wl in workloads:
                if use_wrk and wl != "s1g":  # wrk would finish too few 1 GiB bodies
                    plan.append((run, wl, "wrk", "-"))
                for loop in loops:
                    for client in clients:
                        if wl in PIPELINED and not client.startswith("undipy"):
                            continue  # only undipy pipelines
                        if client not in (STREAM_CLIENTS if wl in STREAMING else CLIENTS):
                            continue
                        if wl == "s1g" and client == "undipy-request":
                            continue  # would hold the whole GiB
                        plan.append((run, wl, client, loop))
                if use_undici:
                    plan.append((run, wl, UNDICI, NODE_LOOP))
        per = args.warmup + args.duration + 0.25
        log(f"{len(plan)} measurements, about {len(plan) * per / 60:.1f} min")
        t_start = time.monotonic()
        for i, (run, wl, client, loop) in enumerate(plan, 1):
            mark = target.log_mark() if wl in NEW_CONNECTION else None
            if client == "wrk":
                r = run_wrk(wl, run, target, args.duration, args.warmup, lua_dir)
            else:
                r = run_client(wl, client, loop, run, target, args.duration, args.warmup)
            if mark is not None:
                r.extra["tls"] = target.logged_since(mark)
            results.append(r)
            tls = r.extra.get("tls")
            if r.failed:
                what = f"FAILED {r.failed}"
            else:
                cpu = r.cpu_us_per_req
                what = (
                    f"{fmt_rate(r.rate)} {'MiB/s' if wl in BYTE_WORKLOADS else 'req/s'}, "
                    f"{fmt_rate(cpu) if cpu is not None else '—'} µs CPU/"
                    + ("MiB" if wl in STREAMING else "req")
                    + (f", peak RSS {r.rss_mib:.0f} MiB" if wl in STREAMING and r.rss_mib else "")
                    + (f", TLS resumed {fmt_pct(tls_summary([tls])[0])}" if tls else "")
                    + (f", {r.errors} errors" if r.errors else "")
                )
            eta = (time.monotonic() - t_start) / i * (len(plan) - i)
            log(f"[{i}/{len(plan)} eta {eta:.0f}s] run {run} {wl:4} {client:15} {loop:7} {what}")
    finally:
        if nginx:
            nginx.cleanup()
        shutil.rmtree(lua_dir, ignore_errors=True)

    # 4. Report.
    order = ([("wrk", "-")] if use_wrk else []) + [(c, lp) for lp in loops for c in clients]
    if use_undici:
        order.append((UNDICI, NODE_LOOP))
    tables = build_tables(results, workloads, order, args.baseline, args.stream_baseline)
    settings = (
        f"{args.runs} run(s) per cell (median shown), {args.duration:g} s timed after "
        f"{args.warmup:g} s warm-up, each in a fresh process"
    )
    if args.pin != "none":
        settings += (
            f"; pinned ({args.pin}): server on CPUs {sorted(PIN['server'] or [])}, "
            f"clients on {sorted(PIN['client'] or [])}"
        )
    print(f"\nundipy benchmarks — {settings}; server: {server}")
    if unavailable:
        print(
            "unavailable: "
            + "; ".join(f"{k} ({v.removeprefix('unavailable: ')})" for k, v in unavailable.items())
        )
    print(render_text(tables))
    cost = https_cost(results, order, args.baseline)
    if cost:
        print()
        print("\n".join(cost))
    print(
        "\nCPU µs/req: user+sys of the whole client process (all threads) over the timed "
        "window / requests (per MiB for the streaming workloads); wrk's in parentheses "
        "(C, one thread, not comparable). peak RSS: the client process's ru_maxrss, "
        "the largest over runs. range: half the max-min spread over runs, in % of the median."
        + (f" {undici_note(args)}" if use_undici else "")
    )

    if args.markdown or args.json:
        mi = machine_info()
        vers = {
            m: versions.get(m, "?")
            for m in dict.fromkeys(
                [ALL_CLIENT_MODULES.get(c, c) for c in args.clients] + ["uvloop"]
            )
        }
        cmdline = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    if args.markdown:
        md = [
            "# undipy benchmarks",
            "",
            f"- command: `{cmdline}`",
            f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {mi['nproc']} cores ({mi['cpu']}), {mi['os']}, Python {mi['python']}",
            f"- server: {server}",
            f"- wrk: {tool_version(find_exe(WRK), '--version') if use_wrk else 'not used'}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
            f"- settings: {settings}",
        ]
        if unavailable:
            md.append(
                "- unavailable: "
                + "; ".join(
                    f"{k} ({v.removeprefix('unavailable: ')})" for k, v in unavailable.items()
                )
            )
        md.append(render_markdown(tables))
        if cost:
            md += ["", *(f"- {line}" for line in cost)]
        md += [
            "",
            "CPU µs/req: user+sys CPU of the whole client process (all threads) during "
            "the timed window, per request (per MiB for the streaming workloads); for wrk "
            "(in parentheses) wrk's own CPU, not comparable. Ratios compare to "
            f"{args.baseline} ({args.stream_baseline} for streaming) on the same loop "
            "(rates: higher is better; CPU: lower is better). peak RSS: the client "
            "process's ru_maxrss (warm-up included), the largest over runs. range: half "
            "the max-min spread of the runs, in % of the median."
            + (f" {undici_note(args)}" if use_undici else ""),
            "",
        ]
        Path(args.markdown).write_text("\n".join(md))
        log(f"wrote {args.markdown}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": cmdline,
                    "date": started.isoformat(),
                    "machine": mi,
                    "server": server,
                    "versions": vers,
                    "unavailable": unavailable,
                    "runs": [r.__dict__ for r in results],
                },
                indent=1,
            )
        )
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
