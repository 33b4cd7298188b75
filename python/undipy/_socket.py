"""The socket an upgrade or CONNECT hands over (being written)."""

from __future__ import annotations

import socket as _socket


class UpgradedSocket:
    """Placeholder until the full duplex object lands: keeps the raw socket."""

    def __init__(self, fd: int, head: bytes) -> None:
        self.raw = _socket.socket(fileno=fd)
        self.head = head
