"""MockAgent (undici's, in Python) and its pytest plugin: matching in stages
(path with query, method, body, headers) by value, regex or callable; the
first registered interception left wins and is used up; replies through the
handler protocol as the engine delivers them (pause/resume, abort, errors);
net connect to a real loopback server; pending interceptions; call history;
every convenience and the global dispatcher over the mock; and the
``mock_agent`` fixture, run by pytest itself."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import undipy
from helpers import Recorder, settle, wait_until, within
from servers import HttpServer
from undipy import MockAgent, MockNotMatchedError
from undipy.interceptors import response_error
from undipy.mock_agent import CHUNK

pytest_plugins = ["pytester"]

ORIGIN = "http://api.test"


@pytest.fixture
async def mock() -> AsyncIterator[MockAgent]:
    agent = MockAgent()
    agent.disable_net_connect()
    yield agent
    await within(agent.destroy())


async def get(mock: MockAgent, path: str, **opts: Any) -> undipy.ResponseData:
    opts.setdefault("method", "GET")
    return await within(mock.request(origin=ORIGIN, path=path, **opts))


async def text(mock: MockAgent, path: str, **opts: Any) -> str:
    resp = await get(mock, path, **opts)
    return await within(resp.body.text())


async def not_matched(mock: MockAgent, path: str, **opts: Any) -> str:
    with pytest.raises(MockNotMatchedError) as caught:
        await get(mock, path, **opts)
    assert caught.value.code == "UND_MOCK_ERR_MOCK_NOT_MATCHED"
    return str(caught.value)


async def not_matched_at(origin: str, mock: MockAgent) -> str:
    with pytest.raises(MockNotMatchedError) as caught:
        await within(mock.request(origin=origin, path="/o", method="GET"))
    return str(caught.value)


# -- replies ------------------------------------------------------------------


async def test_reply_status_data_headers_trailers(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/raw").reply(
        201, b"raw", headers={"x-a": ["1", "2"], "X-B": "b"}, trailers={"x-t": "done"}
    )
    resp = await get(mock, "/raw")
    assert resp.status_code == 201
    assert resp.headers == {"x-a": ["1", "2"], "x-b": "b"}
    assert await within(resp.body.bytes()) == b"raw"
    assert resp.trailers == {"x-t": "done"}


async def test_dict_and_list_data_are_json(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/dict").reply(200, {"id": 1, "tags": ["a"]})
    o.intercept(path="/list").reply(200, [1, 2])
    o.intercept(path="/typed").reply(200, {"a": 1}, headers={"Content-Type": "application/x+json"})
    o.intercept(path="/text").reply(200, "héllo")
    resp = await get(mock, "/dict")
    assert resp.headers["content-type"] == "application/json"
    assert await within(resp.body.json()) == {"id": 1, "tags": ["a"]}
    resp = await get(mock, "/list")
    assert await within(resp.body.json()) == [1, 2]
    resp = await get(mock, "/typed")
    assert resp.headers == {"content-type": "application/x+json"}
    assert json.loads(await within(resp.body.text())) == {"a": 1}
    assert await text(mock, "/text") == "héllo"


async def test_sync_and_async_callback_replies(mock: MockAgent) -> None:
    seen: list[dict[str, Any]] = []

    def sync_reply(opts: dict[str, Any]) -> tuple[int, Any, dict[str, Any]]:
        seen.append(opts)
        return 200, {"echo": opts["body"].decode()}, {"headers": {"x-cb": "sync"}}

    async def async_reply(opts: dict[str, Any]) -> tuple[int, Any]:
        await asyncio.sleep(0)
        return 202, f"async {opts['path']}"

    o = mock.get(ORIGIN)
    o.intercept(path="/sync", method="POST").reply(sync_reply).times(2)
    o.intercept(path="/async").reply(async_reply)

    resp = await get(mock, "/sync", method="POST", body="one", headers=[("X-Id", "7")])
    assert resp.headers["x-cb"] == "sync"
    assert await within(resp.body.json()) == {"echo": "one"}
    # Called again for each request it answers.
    resp = await get(mock, "/sync", method="POST", body=b"two")
    assert await within(resp.body.json()) == {"echo": "two"}
    assert seen[0]["headers"] == {"x-id": "7"}  # normalised, whatever form was sent
    assert seen[0]["origin"] == ORIGIN and seen[0]["method"] == "POST"

    resp = await get(mock, "/async")
    assert resp.status_code == 202
    assert await within(resp.body.text()) == "async /async"


async def test_callback_errors_fail_the_request(mock: MockAgent) -> None:
    def boom(opts: dict[str, Any]) -> Any:
        raise KeyError("boom")

    async def wrong(opts: dict[str, Any]) -> Any:
        return {"status": 200}

    o = mock.get(ORIGIN)
    o.intercept(path="/boom").reply(boom)
    o.intercept(path="/wrong").reply(wrong)
    with pytest.raises(KeyError, match="boom"):
        await get(mock, "/boom")
    with pytest.raises(undipy.InvalidReturnValueError):
        await get(mock, "/wrong")


async def test_reply_with_error(mock: MockAgent) -> None:
    mock.get(ORIGIN).intercept(path="/down").reply_with_error(undipy.SocketError("reset"))
    with pytest.raises(undipy.SocketError, match="reset"):
        await get(mock, "/down")
    # It was used up like any interception.
    assert "0 interceptor(s) remaining out of 1 defined" in await not_matched(mock, "/down")


async def test_bad_registrations_are_refused(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    with pytest.raises(undipy.InvalidArgumentError):
        o.intercept(path=42)  # type: ignore[arg-type]
    with pytest.raises(undipy.InvalidArgumentError):
        o.intercept(path="/a?b=1", query={"b": "1"})
    with pytest.raises(undipy.InvalidArgumentError):
        o.intercept(path="/").reply(99)
    with pytest.raises(undipy.InvalidArgumentError):
        o.intercept(path="/").reply(200, object())  # type: ignore[call-overload]
    with pytest.raises(undipy.InvalidArgumentError):
        o.intercept(path="/").reply_with_error("no")  # type: ignore[arg-type]
    with pytest.raises(undipy.InvalidArgumentError):
        o.intercept(path="/").reply(200).times(0)
    with pytest.raises(undipy.InvalidArgumentError):
        mock.get("api.test")


# -- matching -------------------------------------------------------------------


async def test_path_by_value_regex_callable_and_query(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/exact").reply(200, "exact")
    o.intercept(path="/q?b=2&a=1").reply(200, "query in path")
    o.intercept(path=re.compile(r"^/users/\d+$")).reply(200, "regex")
    o.intercept(path=lambda p: p.startswith("/fn/")).reply(200, "callable")
    o.intercept(path="/search", query={"q": "x y", "n": 2}).reply(200, "query=")

    assert await text(mock, "/exact") == "exact"
    assert await text(mock, "/q?a=1&b=2") == "query in path"  # any order
    assert await text(mock, "/users/42") == "regex"
    assert await text(mock, "/fn/x") == "callable"
    assert await text(mock, "/search", query={"n": "2", "q": "x y"}) == "query="
    # A path without a query does not match a request with one.
    o.intercept(path="/exact").reply(200)
    assert "for path '/exact?z=1'" in await not_matched(mock, "/exact?z=1")


async def test_method_body_and_headers_matchers(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/m", method=re.compile("^P(UT|ATCH)$")).reply(200, "put or patch")
    o.intercept(path="/m", method=lambda m: m == "DELETE").reply(200, "delete")
    o.intercept(path="/b", method="POST", body=b'{"a":1}').reply(200, "bytes")
    o.intercept(path="/b", method="POST", body="text body").reply(200, "str")
    o.intercept(path="/b", method="POST", body=re.compile(r"id=\d+")).reply(200, "regex")

    def is_list_1(b: bytes) -> bool:  # it sees the other bodies too: no JSON error
        return b[:1] == b"[" and json.loads(b) == [1]

    o.intercept(path="/b", method="POST", body=is_list_1).reply(200, "fn")
    o.intercept(path="/h", headers={"Authorization": "Bearer t"}).reply(200, "auth")
    o.intercept(path="/h", headers={"x-v": re.compile(r"^v\d$")}).reply(200, "regex header")
    o.intercept(path="/h", headers={"x-absent": lambda v: v is None}).reply(200, "absent")
    o.intercept(path="/all", headers=lambda h: h.get("x-n") == "1").reply(200, "all headers")

    assert await text(mock, "/m", method="PATCH") == "put or patch"
    assert await text(mock, "/m", method="DELETE") == "delete"
    assert await text(mock, "/b", method="POST", body=bytearray(b'{"a":1}')) == "bytes"
    assert await text(mock, "/b", method="POST", body=b"text body") == "str"
    assert await text(mock, "/b", method="POST", body="x=1&id=77") == "regex"
    assert await text(mock, "/b", method="POST", body=memoryview(b"[1]")) == "fn"
    # Names in any case, other headers ignored, any form of headers=.
    headers = {"AUTHORIZATION": "Bearer t", "x-other": "1"}
    assert await text(mock, "/h", headers=headers) == "auth"
    assert await text(mock, "/h", headers=["X-V", "v7"]) == "regex header"
    assert await text(mock, "/h", headers=[("x-present", "1")]) == "absent"
    assert await text(mock, "/all", headers={"X-N": "1"}) == "all headers"


async def test_a_streamed_body_matches_only_callables(mock: MockAgent) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"streamed"

    o = mock.get(ORIGIN)
    o.intercept(path="/s", method="POST", body=b"streamed").reply(200, "value")
    o.intercept(path="/s", method="POST", body=lambda b: not isinstance(b, bytes)).reply(200, "fn")
    assert await text(mock, "/s", method="POST", body=chunks()) == "fn"


async def test_first_registered_wins_then_the_next(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/x").reply(200, "first")
    o.intercept(path=re.compile("^/x")).reply(200, "second")
    assert await text(mock, "/x") == "first"
    assert await text(mock, "/x") == "second"
    await not_matched(mock, "/x")


async def test_times_and_persist(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    twice = o.intercept(path="/twice").reply(200, "t").times(2)
    always = o.intercept(path="/always").reply(200, "a").persist()
    assert twice.remaining == 2
    assert [await text(mock, "/twice") for _ in range(2)] == ["t", "t"]
    assert twice.consumed and twice.remaining == 0
    await not_matched(mock, "/twice")
    assert [await text(mock, "/always") for _ in range(5)] == ["a"] * 5
    assert always.invocations == 5 and not always.consumed and always.remaining is None


async def test_origin_matchers_share_registration_order(mock: MockAgent) -> None:
    mock.get(re.compile(r"^http://.*\.test$")).intercept(path="/o").reply(200, "any .test")
    mock.get(f"{ORIGIN}:80/").intercept(path="/o").reply(200, "exact")  # canonical: ORIGIN
    assert await text(mock, "/o") == "any .test"  # registered first
    resp = await within(mock.request(origin="HTTP://API.test:80", path="/o", method="GET"))
    assert await within(resp.body.text()) == "exact"
    assert "http://other.example" in await not_matched_at("http://other.example", mock)


async def test_delay_holds_the_reply(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/slow").reply(200, "slow").delay(1.0)
    o.intercept(path="/fast").reply(200, "fast")
    finished: list[str] = []

    async def fetch(path: str) -> None:
        finished.append(await text(mock, path))

    slow = asyncio.ensure_future(fetch("/slow"))
    await fetch("/fast")
    await settle()
    assert finished == ["fast"]  # the delayed reply did not arrive yet
    await within(slow)
    assert finished == ["fast", "slow"]


# -- not matched, net connect -------------------------------------------------


async def test_mismatch_names_the_stage_and_the_counts(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/a", method="POST", body=b"yes", headers={"x-k": "1"}).reply(200)
    o.intercept(path="/used").reply(200)
    assert await text(mock, "/used") == ""

    msg = await not_matched(mock, "/nope")
    assert msg.startswith("Mock dispatch not matched for path '/nope'")
    assert "(closest: POST /a)" in msg
    assert (
        "subsequent request to origin http://api.test was not allowed (net connect disabled)" in msg
    )
    assert msg.endswith("1 interceptor(s) remaining out of 2 defined")

    msg = await not_matched(mock, "/a?z=1&b=2", method="POST")
    assert "for path '/a?b=2&z=1'" in msg  # as matched: query sorted
    assert "for method 'PUT' on path '/a'" in await not_matched(mock, "/a", method="PUT")
    msg = await not_matched(mock, "/a", method="POST", body=b"no")
    assert "for body b'no' on path '/a' (closest: POST /a)" in msg
    msg = await not_matched(mock, "/a", method="POST", body=b"yes", headers={"x-k": "2"})
    assert "for headers {'x-k': '2'} on path '/a'" in msg
    assert "net connect disabled" in msg


async def test_net_connect_passes_unmatched_requests_to_a_real_server(
    http_server: HttpServer,
) -> None:
    srv = http_server
    async with MockAgent() as mock:  # net connect is on by default, as undici
        mock.get(srv.origin).intercept(path="/mocked").reply(200, "mocked")
        resp = await within(mock.request(origin=srv.origin, path="/mocked", method="GET"))
        assert await within(resp.body.text()) == "mocked"
        resp = await within(mock.request(origin=srv.origin, path="/real", method="GET"))
        assert await within(resp.body.text()) == "hello"
        assert [r.path for r in srv.requests] == ["/real"]

        mock.disable_net_connect()
        with pytest.raises(MockNotMatchedError, match=r"\(net connect disabled\)"):
            await within(mock.request(origin=srv.origin, path="/real", method="GET"))

        host, port = srv.origin.removeprefix("http://").split(":")

        def by_callable(h: str) -> bool:  # given host:port
            return h == f"{host}:{port}"

        for allowed in [host, f"{host}:{port}", re.compile(rf":{port}$"), by_callable]:
            mock.disable_net_connect()
            mock.enable_net_connect(allowed)
            resp = await within(mock.request(origin=srv.origin, path="/real", method="GET"))
            assert await within(resp.body.text()) == "hello"

        mock.disable_net_connect()
        mock.enable_net_connect("elsewhere.test")
        with pytest.raises(MockNotMatchedError, match="not enabled for this host"):
            await within(mock.request(origin=srv.origin, path="/real", method="GET"))
        mock.enable_net_connect()
        resp = await within(mock.request(origin=srv.origin, path="/real", method="GET"))
        await within(resp.body.dump())
        assert len(srv.requests) == 6
    assert mock.closed


# -- pending, history ------------------------------------------------------------


async def test_pending_interceptors_and_their_assertion(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/done").reply(200)
    twice = o.intercept(path="/twice", method="POST").reply(200).times(2)
    o.intercept(path="/persist").reply(200).persist()
    mock.get("http://other.test:8080").intercept(path=re.compile("^/r")).reply(200)
    await text(mock, "/done")
    await text(mock, "/twice", method="POST")

    pending = mock.pending_interceptors()
    assert pending[0] is twice and len(pending) == 2
    with pytest.raises(AssertionError) as caught:
        mock.assert_no_pending_interceptors()
    assert str(caught.value) == (
        "2 interceptors are pending:\n"
        "  POST /twice on http://api.test: 1 of 2 call(s) left\n"
        "  GET re.compile('^/r') on http://other.test:8080: 1 of 1 call(s) left"
    )
    await text(mock, "/twice", method="POST")
    r = await within(mock.request(origin="http://other.test:8080", path="/r1", method="GET"))
    await within(r.body.dump())
    mock.assert_no_pending_interceptors()


async def test_call_history(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/a", query={"x": "1"}).reply(200).persist()
    o.intercept(path="/b", method="POST").reply(200)
    await text(mock, "/a", query={"x": 1}, headers={"X-Trace": "t1"})
    await text(mock, "/b", method="POST", body="payload")
    await not_matched(mock, "/c")

    h = mock.call_history
    assert len(h) == 3
    first = h.first_call()
    assert first is not None and first is h.nth_call(1)
    assert (first.method, first.path, first.query, first.target) == (
        "GET",
        "/a",
        {"x": "1"},
        "/a?x=1",
    )
    assert first.full_url == "http://api.test/a?x=1" and first.headers == {"x-trace": "t1"}
    assert (first.protocol, first.host, first.port) == ("http", "api.test", 80)
    last = h.last_call()
    assert last is not None and last.path == "/c"
    assert [c.body for c in h.filter_calls(method="POST")] == [b"payload"]
    assert [c.path for c in h.filter_calls(path=re.compile("^/[ab]$"))] == ["/a", "/b"]
    assert [c.path for c in h.filter_calls(lambda c: c.body is None, origin=ORIGIN)] == ["/a", "/c"]
    assert h.filter_calls(headers=lambda hd: "x-trace" in hd) == [first]
    with pytest.raises(undipy.InvalidArgumentError, match="unknown call fields"):
        h.filter_calls(url="x")
    mock.clear_call_history()
    assert h.calls() == [] and h.first_call() is None


# -- the conveniences and interceptors over the mock ----------------------------


async def test_request_stream_and_pipeline_through_the_mock(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    big = bytes(range(256)) * 1000  # several pieces
    o.intercept(path="/big").reply(200, big, trailers={"x-sum": "ok"}).times(2)
    o.intercept(path="/pipe", method="POST").reply(200, "piped")

    resp = await get(mock, "/big")
    assert await within(resp.body.bytes()) == big

    class Sink:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, chunk: bytes) -> None:
            self.chunks.append(chunk)

    sink = Sink()
    data = await within(
        mock.stream(lambda d: sink, origin=ORIGIN, path="/big", method="GET", opaque="o")
    )
    assert b"".join(sink.chunks) == big and len(sink.chunks) > 1
    assert data.trailers == {"x-sum": "ok"} and data.opaque == "o"

    dup = mock.pipeline(lambda d: d.body, origin=ORIGIN, path="/pipe", method="POST")
    await within(dup.end(b"ignored"))
    assert b"".join([c async for c in dup]) == b"piped"


async def test_interceptors_composed_above_the_mock_run(mock: MockAgent) -> None:
    mock.get(ORIGIN).intercept(path="/e").reply(404, {"why": "gone"})
    composed = mock.compose(response_error())
    with pytest.raises(undipy.ResponseError) as caught:
        await within(composed.request(origin=ORIGIN, path="/e", method="GET"))
    assert caught.value.status_code == 404 and caught.value.body == {"why": "gone"}


async def test_global_dispatcher(mock: MockAgent) -> None:
    mock.get(ORIGIN).intercept(path="/g?b=2&a=1").reply(200, "global")
    saved = undipy.toplevel._global, undipy.toplevel._made_here
    undipy.set_global_dispatcher(mock)
    try:
        resp = await within(undipy.request(f"{ORIGIN}/g?a=1&b=2"))
        assert await within(resp.body.text()) == "global"
    finally:
        undipy.toplevel._global, undipy.toplevel._made_here = saved


# -- the handler protocol ------------------------------------------------------------


@pytest.mark.loops
async def test_dispatch_delivers_like_the_engine_and_honours_pause(mock: MockAgent) -> None:
    body = b"x" * (2 * CHUNK + 10)
    mock.get(ORIGIN).intercept(path="/p").reply(
        200, body, headers={"x-h": "v"}, trailers=[("t", "1")]
    )
    h = Recorder(pause_on_data=True)
    assert mock.dispatch(h, origin=ORIGIN, path="/p", method="GET") is True
    assert h.kinds == ["connect"]  # the rest comes later, on the loop
    await h.wait_for("data")
    await settle()
    assert h.kinds == ["connect", "headers", "data"]  # paused after the first piece
    assert h.events[1][1:] == (200, [b"x-h", b"v"], "OK")
    h.pause_on_data = False
    assert h.resume is not None
    h.resume()
    await h.wait()
    assert h.kinds == ["connect", "headers", "data", "data", "data", "complete"]
    assert h.body == body and h.events[-1] == ("complete", [b"t", b"1"])


async def test_pause_in_on_headers(mock: MockAgent) -> None:
    mock.get(ORIGIN).intercept(path="/p").reply(200, b"body")
    h = Recorder(pause_on_headers=True)
    mock.dispatch(h, origin=ORIGIN, path="/p", method="GET")
    await h.wait_for("headers")
    await settle()
    assert h.kinds == ["connect", "headers"]
    assert h.resume is not None
    h.resume()
    await h.wait()
    assert h.kinds == ["connect", "headers", "data", "complete"]


@pytest.mark.loops
async def test_abort_ends_a_mocked_request_once(mock: MockAgent) -> None:
    o = mock.get(ORIGIN)
    o.intercept(path="/a").reply(200, b"never").times(3).delay(0.2)

    # In on_connect.
    h = Recorder(raise_in={"on_connect": undipy.RequestAbortedError()})
    mock.dispatch(h, origin=ORIGIN, path="/a", method="GET")
    await h.wait()
    await settle()
    assert isinstance(h.only_error, undipy.RequestAbortedError)

    # While the reply is delayed, with a reason, twice.
    h = Recorder()
    mock.dispatch(h, origin=ORIGIN, path="/a", method="GET")
    assert h.abort is not None
    h.abort(ValueError("mine"))
    h.abort()
    await h.wait()
    await asyncio.sleep(0.3)  # past the delay: nothing else comes
    assert h.kinds == ["connect", "error"] and isinstance(h.error, ValueError)

    # While paused, after headers.
    h = Recorder(pause_on_headers=True)
    mock.dispatch(h, origin=ORIGIN, path="/a", method="GET")
    await h.wait_for("headers")
    assert h.abort is not None
    h.abort()
    await h.wait()
    await settle()
    assert h.kinds == ["connect", "headers", "error"]
    assert isinstance(h.error, undipy.RequestAbortedError)


async def test_signal_and_cancel_abort_request(mock: MockAgent) -> None:
    mock.get(ORIGIN).intercept(path="/slow").reply(200).delay(10).times(2)
    controller = undipy.AbortController()
    call = asyncio.ensure_future(get(mock, "/slow", signal=controller.signal))
    await asyncio.sleep(0.05)
    controller.abort()
    with pytest.raises(undipy.RequestAbortedError):
        await within(call)

    task = asyncio.ensure_future(get(mock, "/slow"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)


async def test_a_handler_raising_fails_its_request(mock: MockAgent) -> None:
    mock.get(ORIGIN).intercept(path="/r").reply(200, b"data")
    h = Recorder(raise_in={"on_data": RuntimeError("handler bug")})
    mock.dispatch(h, origin=ORIGIN, path="/r", method="GET")
    await h.wait()
    await settle()
    assert h.kinds == ["connect", "headers", "data", "error"]
    assert str(h.error) == "handler bug"

    class AbortThenRaise(Recorder):
        def on_headers(self, *args: Any) -> bool:
            super().on_headers(*args)
            assert self.abort is not None
            self.abort()
            raise RuntimeError("after abort")

    mock.get(ORIGIN).intercept(path="/r").reply(200, b"data")
    h = AbortThenRaise()
    mock.dispatch(h, origin=ORIGIN, path="/r", method="GET")
    await h.wait()
    await settle()
    assert h.kinds == ["connect", "headers", "error"]  # once, with what it raised
    assert str(h.error) == "after abort"


async def test_unmatched_gets_only_on_error_and_upgrades_are_refused(mock: MockAgent) -> None:
    h = Recorder()
    mock.dispatch(h, origin=ORIGIN, path="/none", method="GET")
    assert h.kinds == []
    await h.wait()
    assert isinstance(h.only_error, MockNotMatchedError) and h.kinds == ["error"]

    mock.get(ORIGIN).intercept(path="/ws").reply(200)
    with pytest.raises(undipy.NotSupportedError):
        await within(mock.upgrade(origin=ORIGIN, path="/ws"))


# -- lifecycle ----------------------------------------------------------------------


async def test_close_waits_for_mocked_replies_and_destroy_fails_them() -> None:
    mock = MockAgent()
    mock.get(ORIGIN).intercept(path="/slow").reply(200, "late").delay(0.3)
    call = asyncio.ensure_future(text(mock, "/slow"))
    await wait_until(lambda: len(mock.call_history) == 1, "the request reaching the mock")
    await within(mock.close())
    assert call.done() and call.result() == "late"
    assert mock.closed
    with pytest.raises(undipy.ClientClosedError):
        await get(mock, "/slow")

    mock = MockAgent()
    mock.get(ORIGIN).intercept(path="/slow").reply(200).delay(10)
    call = asyncio.ensure_future(get(mock, "/slow"))
    await wait_until(lambda: len(mock.call_history) == 1, "the request reaching the mock")
    await within(mock.destroy())
    with pytest.raises(undipy.ClientDestroyedError):
        await within(call)
    assert mock.destroyed


# -- the pytest plugin ---------------------------------------------------------------


async def test_the_fixture_is_the_global_dispatcher(mock_agent: MockAgent) -> None:
    assert undipy.get_global_dispatcher() is mock_agent
    mock_agent.get(ORIGIN).intercept(path="/f").reply(200, "fixture")
    resp = await within(undipy.request(f"{ORIGIN}/f"))
    assert await within(resp.body.text()) == "fixture"
    with pytest.raises(MockNotMatchedError, match="net connect disabled"):
        await within(undipy.request(f"{ORIGIN}/f"))


PLUGIN_TESTS = """
import asyncio

import pytest
import undipy

@pytest.mark.asyncio
async def test_uses_its_interception(mock_agent):
    mock_agent.get("http://api.test").intercept(path="/ok").reply(200, "fine")
    resp = await undipy.request("http://api.test/ok")
    assert await resp.body.text() == "fine"

@pytest.mark.asyncio
async def test_leaves_one_pending(mock_agent):
    mock_agent.get("http://api.test").intercept(path="/never", method="PUT").reply(204)

@pytest.mark.asyncio
async def test_unmatched(mock_agent):
    with pytest.raises(undipy.MockNotMatchedError, match="net connect disabled"):
        await undipy.request("http://api.test/nothing")

@pytest.mark.asyncio
async def test_passes_through_where_allowed(mock_agent):
    async def serve(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(
            b"HTTP/1.1 200 OK\\r\\ncontent-length: 4\\r\\nconnection: close\\r\\n\\r\\nreal"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mock_agent.enable_net_connect("127.0.0.1")
    resp = await asyncio.wait_for(undipy.request(f"http://127.0.0.1:{port}/"), 5)
    assert await resp.body.text() == "real"
    server.close()  # the teardown destroys the mock's real Agent

def test_sync_test(mock_agent):
    assert undipy.get_global_dispatcher() is mock_agent

def test_the_global_is_back():
    assert not isinstance(undipy.toplevel._global, undipy.MockAgent)
"""


def test_the_plugin_under_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_plugin_use=PLUGIN_TESTS)
    # Exactly these plugins, whether or not an installed undipy's entry point would load it.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest(
        "-p",
        "pytest_asyncio.plugin",
        "-p",
        "undipy.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_leaves_one_pending _*",
            "1 interceptor is pending:",
            "  PUT /never on http://api.test: 1 of 1 call(s) left",
            "FAILED test_plugin_use.py::test_leaves_one_pending*",
        ]
    )
