"""undipy's pytest plugin (loaded through the ``pytest11`` entry point when
undipy is installed; ``-p no:undipy`` turns it off): the ``mock_agent``
fixture.

``mock_agent`` is a ``MockAgent`` with net connect disabled, set as the
global dispatcher for one test (``undipy.request(url)`` and its siblings
go to it; dispatchers made by hand do not). A test that passes while
interceptions are still pending fails with the list of them. Afterwards the
previous global dispatcher is back and the mock is destroyed.

The fixture is a plain one: it works for sync tests and under any async
test runner (pytest-asyncio, anyio), since a ``MockAgent`` needs no event
loop until it is used."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from . import toplevel
from .mock_agent import MockAgent

__all__ = ["mock_agent"]

_TEARDOWN_TIMEOUT = 10.0
"""Seconds the teardown may wait for the mock's real ``Agent`` to go."""


@pytest.fixture
def mock_agent() -> Iterator[MockAgent]:
    """A ``MockAgent`` with net connect disabled, the global dispatcher for
    this test; the test fails if interceptions are left pending."""
    agent = MockAgent()
    agent.disable_net_connect()
    saved = toplevel._global, toplevel._made_here
    toplevel.set_global_dispatcher(agent)
    try:
        yield agent
    finally:
        toplevel._global, toplevel._made_here = saved
        _destroy(agent)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a test that passed: its ``mock_agent`` must have no pending
    interceptions (checked here, not at teardown, so the test fails rather
    than errors)."""
    result = yield  # re-raises what the test raised: then nothing is checked
    agent = getattr(item, "funcargs", {}).get("mock_agent")
    if isinstance(agent, MockAgent):
        report = agent._pending_report()
        if report is not None:
            pytest.fail(report, pytrace=False)  # the list says it all: no traceback
    return result


def _destroy(agent: MockAgent) -> None:
    """Destroys ``agent`` on a loop of its own: the test's loop has stopped
    (or never existed), and whatever the test left running is moot."""

    async def destroy() -> None:
        await asyncio.wait_for(agent.destroy(), _TEARDOWN_TIMEOUT)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(destroy())
    finally:
        loop.close()
