"""Typed access to response headers.

Response header dicts (``ResponseData.headers``, ``trailers``,
``StreamFactoryData.headers``, ``UpgradeData.headers``, ...) map lower-case
names to a ``str``, or to a ``list[str]`` when the name was repeated. These
two functions read one name without caring which: ``header()`` for one value,
``header_values()`` for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["header", "header_values"]


def header(headers: Mapping[str, str | list[str]], name: str) -> str | None:
    """The first value of ``name`` (any case), or ``None`` if it is absent.

    >>> header({"content-type": "text/plain"}, "Content-Type")
    'text/plain'
    >>> header({"set-cookie": ["a=1", "b=2"]}, "set-cookie")
    'a=1'
    """
    values = header_values(headers, name)
    return values[0] if values else None


def header_values(headers: Mapping[str, str | list[str]], name: str) -> list[str]:
    """Every value of ``name`` (any case), in the order received; ``[]`` if
    it is absent. The list is a new one: changing it leaves ``headers`` as it
    was.

    >>> header_values({"set-cookie": ["a=1", "b=2"]}, "Set-Cookie")
    ['a=1', 'b=2']
    >>> header_values({"content-type": "text/plain"}, "content-type")
    ['text/plain']
    """
    value = headers.get(name.lower())
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
