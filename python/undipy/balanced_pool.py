"""``BalancedPool``: one ``Pool`` per upstream origin, chosen per request by
undici's weighted round-robin. An upstream starts at the full weight; each
connection error or socket error costs it ``error_penalty``, each new
connection wins it back, so a failing upstream gets fewer requests until it
recovers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from ._group import DispatcherGroup, ignore
from ._options import ClientOptions
from .client import Pool, PoolStats, _is_int, _options, _origin
from .dispatcher import Dispatcher
from .errors import BalancedPoolMissingUpstreamError, InvalidArgumentError, SocketError


@dataclass(eq=False)
class _Upstream:
    origin: str
    pool: Pool
    weight: int


class BalancedPool(DispatcherGroup):
    """Requests spread over upstream origins by weighted round-robin.

    ``BalancedPool(upstreams=(), max_weight_per_server=100, error_penalty=15,
    connections=None, **options)``: ``upstreams`` is an origin or a list of
    them; the other options go to each upstream's ``Pool``. With no upstream
    a request fails with ``BalancedPoolMissingUpstreamError``."""

    def __init__(
        self,
        upstreams: str | Sequence[str] = (),
        *,
        max_weight_per_server: int = 100,
        error_penalty: int = 15,
        connections: int | None = None,
        **opts: Unpack[ClientOptions],
    ) -> None:
        super().__init__()
        if not _is_int(max_weight_per_server, 1):
            raise InvalidArgumentError("invalid max_weight_per_server: a positive int")
        if not _is_int(error_penalty, 0):
            raise InvalidArgumentError("invalid error_penalty: an int, 0 or more")
        if connections is not None and not _is_int(connections, 1):
            raise InvalidArgumentError("invalid connections")
        _options(opts)
        self._max_weight = max_weight_per_server
        self._penalty = error_penalty
        self._pool_opts: dict[str, Any] = dict(opts, connections=connections)
        self._upstreams: list[_Upstream] = []
        self._index = -1
        self._current = 0
        self._gcd = max_weight_per_server
        for origin in [upstreams] if isinstance(upstreams, str) else upstreams:
            self.add_upstream(origin)

    # -- upstreams -----------------------------------------------------------

    def add_upstream(self, origin: str) -> BalancedPool:
        """Adds an upstream origin (nothing if it is there already)."""
        self._check_open()
        key = _origin(origin)[0]
        if any(u.origin == key for u in self._upstreams):
            return self
        up = _Upstream(key, Pool(key, **self._pool_opts), self._max_weight)

        def after(name: str, error: Any) -> None:
            if name == "connect":
                up.weight = min(self._max_weight, up.weight + self._penalty)
            elif name == "connection_error" or (
                name == "disconnect" and isinstance(error, SocketError)
            ):
                up.weight = max(1, up.weight - self._penalty)
            self._update_gcd()

        self._adopt(up.pool, after)
        self._upstreams.append(up)
        self._update_gcd()
        return self

    def remove_upstream(self, origin: str) -> BalancedPool:
        """Removes an upstream; its pool closes once its requests finished."""
        key = _origin(origin)[0]
        for i, up in enumerate(self._upstreams):
            if up.origin == key:
                del self._upstreams[i]
                up.pool.close(ignore)
                self._update_gcd()
                break
        return self

    def _update_gcd(self) -> None:
        self._gcd = math.gcd(*(u.weight for u in self._upstreams)) or self._max_weight

    @property
    def upstreams(self) -> list[str]:
        """The upstream origins."""
        return [u.origin for u in self._upstreams]

    @property
    def stats(self) -> PoolStats:
        """The upstreams' pools' stats, added up."""
        totals = [0] * 6
        for u in self._upstreams:
            s = u.pool.stats
            for i, v in enumerate((s.connected, s.free, s.pending, s.queued, s.running, s.size)):
                totals[i] += v
        return PoolStats(*totals)

    # -- choosing ------------------------------------------------------------

    def _next(self) -> Pool:
        """undici's weighted round-robin: walk the ring; each full turn
        lowers the bar by the weights' gcd; the first upstream whose weight
        reaches the bar is taken (after a fruitless turn: the heaviest)."""
        ups = self._upstreams
        if not ups:
            raise BalancedPoolMissingUpstreamError()
        heaviest = 0
        for _ in range(len(ups)):
            self._index = (self._index + 1) % len(ups)
            up = ups[self._index]
            if up.weight > ups[heaviest].weight:
                heaviest = self._index
            if self._index == 0:
                self._current -= self._gcd
                if self._current <= 0:
                    self._current = self._max_weight
            if up.weight >= self._current:
                return up.pool
        self._current = ups[heaviest].weight
        self._index = heaviest
        return ups[heaviest].pool

    # -- the dispatcher ------------------------------------------------------

    def _target(self, opts: dict[str, Any]) -> tuple[Dispatcher, dict[str, Any]]:
        self._check_open()
        return self._next(), opts

    def _children(self) -> Iterable[Dispatcher]:
        return [u.pool for u in self._upstreams]
