"""The ``tls=`` option: a dict (or an ``ssl.SSLContext``) normalised for the
engine, with every file read and every PEM joined here, once."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgumentError, NotSupportedError

_KEYS = ("ca", "cert", "key", "verify", "server_name", "min_version")


def normalise(tls: Any) -> dict[str, Any]:
    """``{"ca", "cert", "key": PEM bytes or None, "verify": bool,
    "server_name": str or None, "min_version": "1.2" or "1.3"}``."""
    if tls is None:
        tls = {}
    elif isinstance(tls, ssl.SSLContext):
        tls = _from_context(tls)
    elif not isinstance(tls, Mapping):
        raise InvalidArgumentError("invalid tls: a dict or an ssl.SSLContext")
    unknown = sorted(set(tls) - set(_KEYS))
    if unknown:
        raise InvalidArgumentError(f"invalid tls: unknown key {unknown[0]!r}")
    verify = tls.get("verify", True)
    if not isinstance(verify, bool):
        raise InvalidArgumentError("invalid tls verify: True or False")
    name = tls.get("server_name")
    if name is not None and (not isinstance(name, str) or not name):
        raise InvalidArgumentError("invalid tls server_name")
    version = tls.get("min_version", "1.2")
    if version not in ("1.2", "1.3"):
        raise InvalidArgumentError('invalid tls min_version: "1.2" or "1.3"')
    cert, key = _pem(tls.get("cert"), "cert"), _pem(tls.get("key"), "key")
    if (cert is None) != (key is None):
        raise InvalidArgumentError("invalid tls: cert and key go together")
    return {
        "ca": _pem(tls.get("ca"), "ca"),
        "cert": cert,
        "key": key,
        "verify": verify,
        "server_name": name,
        "min_version": version,
    }


def _pem(value: Any, key: str) -> bytes | None:
    """PEM bytes from bytes, PEM text, a path, or a list of them."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        parts = [_pem(v, key) for v in value]
        return b"\n".join(p for p in parts if p) or None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    if isinstance(value, str | os.PathLike):
        try:
            with open(value, "rb") as f:
                return f.read()
        except OSError as exc:
            raise InvalidArgumentError(f"invalid tls {key}: {exc}") from None
    raise InvalidArgumentError(f"invalid tls {key}: PEM bytes, a path, or a list of them")


def _from_context(ctx: ssl.SSLContext) -> dict[str, Any]:
    """What can be carried over from an ``ssl.SSLContext``: its CA
    certificates, whether it verifies, and its minimum version."""
    out: dict[str, Any] = {}
    if ctx.verify_mode == ssl.CERT_NONE:
        out["verify"] = False
    elif not ctx.check_hostname:
        raise NotSupportedError(
            "an ssl.SSLContext that verifies certificates but not host names cannot be "
            'carried over: use tls={"verify": False} or tls={"server_name": ...}'
        )
    cas = ctx.get_ca_certs(binary_form=True)
    if cas:
        out["ca"] = "".join(ssl.DER_cert_to_PEM_cert(der) for der in cas).encode()
    if ctx.minimum_version >= ssl.TLSVersion.TLSv1_3:
        out["min_version"] = "1.3"
    return out
