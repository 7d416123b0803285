"""HiroClient against real HTTP servers on loopback: no mocks of the client or of HTTP.

A tiny scripted `http.server` (below) produces exact fault sequences the simulator is not
meant to (a given retry-after, a body cut mid-way, a server echoing the API key back) and
records what arrived (times, headers). Behaviour of a whole API (paging, rate limits,
quota, 410) is checked against the project's simulator.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from stx_pipeline.hiro import (
    BadResponse,
    EndpointGone,
    HiroClient,
    HiroRequestError,
    HiroUnavailable,
    RateLimiter,
    RateLimitExhausted,
    map_page,
)
from stx_pipeline_tests.loopback import LoopbackServer
from stx_pipeline_tests.samples import TESTNET_PAGE_2026

SECRET = "sk-TEST-9f2c7e1b-UNMISTAKABLE-KEY-4411"
ENVELOPE = {"limit": 50, "offset": 0, "total": 0, "results": []}
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}


# ---- a scripted loopback server -----------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: dict(ENVELOPE))  # dict/list -> JSON; str raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0
    action: str = ""  # "close": drop the connection; "short": promise more bytes than sent


@dataclass
class Seen:
    at: float
    path: str
    headers: dict[str, str]


class Scripted:
    """Serves `script` replies in order, then `default` forever; records every request."""

    def __init__(self, script: list[Reply] | None = None, default: Reply | None = None,
                 responder: Callable[[Seen], Reply] | None = None) -> None:
        self.script = list(script or [])
        self.default = default or Reply()
        self.responder = responder
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                seen = Seen(time.monotonic(), self.path, {k.lower(): v for k, v in
                                                          self.headers.items()})
                with outer.lock:
                    outer.seen.append(seen)
                    if outer.responder is not None:
                        reply = outer.responder(seen)
                    else:
                        reply = outer.script.pop(0) if outer.script else outer.default
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.action == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = reply.body
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                length = len(data) + (100 if reply.action == "short" else 0)
                self.send_header("Content-Length", str(length))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.action == "short":
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                if reply.action == "short":
                    self.wfile.flush()
                    self.close_connection = True

        self._server = LoopbackServer(Handler, poll_interval=0.05)
        self.url = self._server.url

    def __enter__(self) -> Scripted:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.seen)


@pytest.fixture
def serve() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def make(*args: Any, **kwargs: Any) -> Scripted:
        server = Scripted(*args, **kwargs).__enter__()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.__exit__()


def _client(url: str, **kwargs: Any) -> HiroClient:
    return HiroClient(url, **{**FAST, **kwargs})


def _page(n: int = 0, total: int = 0) -> dict[str, Any]:
    return {"limit": 50, "offset": 0, "total": total, "results": [{"i": i} for i in range(n)]}


# ---- retries ---------------------------------------------------------------------------


def test_retries_transient_faults_then_succeeds(serve, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="stx_pipeline.hiro")
    server = serve([
        Reply(503, {"error": "The database service is unavailable"}),
        Reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>",
              content_type="text/html"),
        Reply(action="close"),
        Reply(200, '{"limit": 50, "offset": 0, "total": 3, "resu'),  # truncated JSON
    ], default=Reply(200, _page(2, total=2), headers={"x-api-version": "v9.0.2 (main:abc)",
                                                      "warning": "299 - \"Deprecated\""}))
    with _client(server.url) as client:
        page = client.list_transactions(limit=50, offset=0, start_time=1700000000,
                                        end_time=1700003599, order="asc",
                                        sort_by="burn_block_time",
                                        types=["contract_call", "token_transfer"])
        stats = client.stats.snapshot()
    assert (page.total, len(page.results), page.limit, page.offset) == (2, 2, 50, 0)
    assert page.headers["x-api-version"].startswith("v9.0.2")
    assert "warning" in page.headers and page.elapsed_seconds > 0
    assert server.count == 5
    assert "start_time=1700000000" in server.seen[-1].path
    assert "type=contract_call%2Ctoken_transfer" in server.seen[-1].path
    assert stats["requests"] == 5 and stats["retries"] == 4
    assert stats["faults_by_kind"] == {"connection": 1, "http_5xx": 2, "malformed_json": 1}
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    warnings = [m for m in logged if "retrying" in m]
    assert len(warnings) == 4
    # the server's Warning: 299 header is said once, apart from the retries
    assert len([m for m in logged if "is deprecated" in m]) == 1 and len(logged) == 5
    assert "/extended/v1/tx?limit=50&offset=0" in warnings[0] and "HTTP 503" in warnings[0]
    assert "HTML error page" in warnings[1]


def test_gives_up_after_five_attempts(serve) -> None:
    server = serve(default=Reply(500, {"statusCode": 500, "error": "Internal Server Error",
                                       "message": "boom"}))
    with _client(server.url) as client, pytest.raises(HiroUnavailable) as info:
        client.list_transactions()
    assert server.count == 5
    assert info.value.attempts == 5
    assert "boom" in info.value.last_problem
    assert info.value.url_path.startswith("/extended/v1/tx?limit=50")
    assert "\n" not in str(info.value)


def test_missing_envelope_keys_are_retried_as_malformed(serve) -> None:
    server = serve([Reply(200, {"limit": 50, "offset": 0, "results": []}),
                    Reply(200, {"limit": 50, "offset": 0, "total": "7", "results": []}),
                    Reply(200, [1, 2]),
                    Reply(200, _page(1, 1), action="short")])
    with _client(server.url) as client:
        page = client.list_transactions()
        faults = client.stats.snapshot()["faults_by_kind"]
    assert page.total == 0 and server.count == 5
    assert faults["bad_shape"] == 3
    assert faults.get("truncated", 0) + faults.get("connection", 0) == 1


def test_read_timeout_is_retried(serve) -> None:
    server = serve([Reply(delay=1.0)], default=Reply(200, _page(1, 1)))
    with _client(server.url, read_timeout=0.2) as client:
        page = client.list_transactions()
        assert client.stats.snapshot()["faults_by_kind"] == {"timeout": 1}
    assert page.total == 1


def test_connection_refused_exhausts_attempts() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = _client(f"http://127.0.0.1:{port}", api_key=SECRET)
    with pytest.raises(HiroUnavailable) as info:
        client.get_status()
    assert info.value.attempts == 5 and "connection error" in info.value.last_problem
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


# ---- rate limiting ---------------------------------------------------------------------


def test_honours_retry_after(serve) -> None:
    server = serve([Reply(429, {"error": "Too Many Requests"}, headers={"retry-after": "1"})])
    with _client(server.url) as client:
        started = time.monotonic()
        client.list_transactions()
        elapsed = time.monotonic() - started
        stats = client.stats.snapshot()
    assert elapsed >= 1.0
    gap = server.seen[1].at - server.seen[0].at
    assert 1.0 <= gap < 2.5
    assert stats["responses_429"] == 1 and stats["retries"] == 1


def test_ratelimit_reset_in_seconds_when_no_retry_after(serve) -> None:
    server = serve([Reply(429, headers={"ratelimit-reset": "1", "ratelimit-remaining": "0",
                                        "ratelimit-limit": "6000"})])
    with _client(server.url) as client:
        client.list_transactions()
    assert server.seen[1].at - server.seen[0].at >= 0.95


@pytest.mark.parametrize("headers", [
    {"ratelimit-reset": str(int(time.time()) + 3 * 3600), "ratelimit-remaining": "0"},
    {"retry-after": "86400"},
])
def test_spent_quota_raises_at_once(serve, headers) -> None:
    server = serve(default=Reply(429, {"error": "Too Many Requests"}, headers=headers))
    with _client(server.url, max_rate_limit_wait=300) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitExhausted) as info:
            client.list_transactions()
        assert time.monotonic() - started < 2.0
    assert server.count == 1
    assert info.value.wait_seconds > 3000
    assert info.value.retry_at.tzinfo is not None


def test_429_blocks_every_thread_sharing_the_client(serve) -> None:
    server = serve([Reply(429, headers={"retry-after": "1"})])
    with _client(server.url) as client:
        first = threading.Thread(target=client.list_transactions)
        first.start()
        time.sleep(0.2)  # the 429 has arrived; now others try
        others = [threading.Thread(target=client.list_transactions) for _ in range(3)]
        for t in others:
            t.start()
        for t in [first, *others]:
            t.join(10)
    assert server.count == 5
    hit = server.seen[0].at
    assert all(s.at - hit >= 0.95 for s in server.seen[1:])


def test_limiter_spaces_concurrent_threads(serve) -> None:
    server = serve(default=Reply(200, _page()))
    rpm, threads, per_thread = 120, 8, 2
    with _client(server.url, requests_per_minute=rpm) as client:
        workers = [threading.Thread(target=lambda: [client.list_transactions()
                                                    for _ in range(per_thread)])
                   for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(30)
    times = sorted(s.at for s in server.seen)
    assert len(times) == threads * per_thread
    per_second = rpm / 60
    # Any 1-second window holds at most rate + 1 arrivals (spacing is exact, arrival jitter
    # is milliseconds), and the overall rate stays at or below the limit.
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= per_second + 1
    assert (len(times) - 1) / (times[-1] - times[0]) <= per_second * 1.05


def test_limiter_adopts_tighter_server_limit(serve) -> None:
    headers = {"ratelimit-limit": "100", "ratelimit-remaining": "90", "ratelimit-reset": "60"}
    server = serve(default=Reply(200, _page(), headers=headers))
    with _client(server.url, requests_per_minute=6000) as client:
        for _ in range(5):
            client.list_transactions()
        rpm = client.limiter.current_rpm
        waited = client.stats.snapshot()["rate_limit_wait_seconds"]
    assert rpm is not None and rpm <= 100
    # Paced by the server's limit (0.6 s a request), not ours (0.01 s, ~0.04 s of waits in
    # all): the limiter waited at least one server interval. Not judged by arrival gaps at
    # the server: one delayed request shortens the next gap, and after a stall the limiter
    # may catch up within the server's window (seen as a flake on a loaded machine).
    assert waited >= 60 / 100 * 0.9
    assert len(server.seen) == 5


def test_limiter_waits_when_server_says_nothing_remains(serve) -> None:
    server = serve([Reply(200, _page(), headers={"ratelimit-remaining": "0",
                                                 "ratelimit-reset": "1"})])
    with _client(server.url) as client:
        client.list_transactions()
        client.list_transactions()
        assert client.stats.snapshot()["responses_429"] == 0
    assert server.seen[1].at - server.seen[0].at >= 0.95


def test_rate_limiter_unit_behaviour() -> None:
    assert RateLimiter(None).current_rpm is None
    assert RateLimiter(0).current_rpm is None
    limiter = RateLimiter(600)
    assert limiter.current_rpm == pytest.approx(600)
    limiter.update_from_headers({"ratelimit-limit": "1000"})  # looser: never exceed ours
    assert limiter.current_rpm == pytest.approx(600)
    limiter.update_from_headers({"ratelimit-limit": "100"})
    assert limiter.current_rpm == pytest.approx(99)  # the server's limit less a 1% reserve
    started = time.monotonic()
    limiter.block_until(time.monotonic() + 0.3)
    limiter.acquire()
    assert time.monotonic() - started >= 0.29
    with pytest.raises(ValueError):
        RateLimiter(-1)


def test_limiter_ignores_far_resets_so_threads_do_not_hang() -> None:
    limiter = RateLimiter(None, max_block_seconds=300)
    limiter.update_from_headers({"ratelimit-remaining": "0", "ratelimit-reset": "10800"})
    limiter.update_from_headers({"ratelimit-remaining": "1",
                                 "ratelimit-reset": str(int(time.time()) + 10800)})
    started = time.monotonic()
    limiter.acquire()
    limiter.acquire()
    assert time.monotonic() - started < 0.1


def test_spent_quota_does_not_park_other_threads(serve) -> None:
    quota = {"retry-after": "10800", "ratelimit-remaining": "0", "ratelimit-reset": "10800"}
    server = serve(default=Reply(429, {"error": "Too Many Requests"}, headers=quota))
    errors: list[BaseException] = []

    def call(client: HiroClient) -> None:
        try:
            client.list_transactions()
        except RateLimitExhausted as exc:
            errors.append(exc)

    with _client(server.url) as client:
        started = time.monotonic()
        workers = [threading.Thread(target=call, args=(client,)) for _ in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(10)
        assert time.monotonic() - started < 2.0
    assert len(errors) == 4 and server.count == 4


# ---- non-retryable answers ---------------------------------------------------------------


def test_410_is_endpoint_gone(serve) -> None:
    gone = {"error": "Gone", "message": "This endpoint has been disabled. See https://docs"}
    server = serve(default=Reply(410, gone))
    with _client(server.url) as client, pytest.raises(EndpointGone) as info:
        client.list_transactions()
    assert server.count == 1
    assert "disabled" in str(info.value) and info.value.url_path == "/extended/v1/tx"


def test_400_carries_server_message_without_retry(serve) -> None:
    body = {"statusCode": 400, "code": "FST_ERR_VALIDATION", "error": "Bad Request",
            "message": "querystring/limit must be <= 50"}
    server = serve(default=Reply(400, body))
    with _client(server.url) as client, pytest.raises(HiroRequestError) as info:
        client.list_transactions()
    assert server.count == 1
    assert info.value.status == 400
    assert "querystring/limit must be <= 50" in info.value.server_message
    assert "querystring/limit must be <= 50" in str(info.value)


def test_old_error_body_shape(serve) -> None:
    server = serve(default=Reply(404, {"error": "No matching transaction found"}))
    with _client(server.url) as client, pytest.raises(HiroRequestError) as info:
        client.get_status()
    assert info.value.status == 404 and info.value.server_message == (
        "No matching transaction found")


def test_html_200_is_bad_response(serve) -> None:
    server = serve(default=Reply(200, "<!doctype html><html><title>Welcome</title></html>",
                                 content_type="text/html; charset=utf-8"))
    with _client(server.url) as client, pytest.raises(BadResponse) as info:
        client.list_transactions()
    assert server.count == 1
    assert "does not look like the Stacks API" in str(info.value)
    assert "\n" not in str(info.value)


def test_redirect_is_not_followed(serve) -> None:
    target = serve()
    server = serve(default=Reply(301, "", headers={"Location": target.url + "/extended/v1/tx"}))
    with _client(server.url, api_key=SECRET) as client, pytest.raises(BadResponse):
        client.list_transactions()
    assert target.count == 0  # the key never travelled to another host


def test_arguments_checked_before_sending(serve) -> None:
    server = serve()
    with _client(server.url) as client:
        for kwargs in ({"limit": 0}, {"limit": 51}, {"limit": True}, {"offset": -1},
                       {"order": "ASC"}, {"sort_by": "time"}, {"start_time": 0},
                       {"start_time": 1.5}, {"start_time": 20, "end_time": 10},
                       {"types": ["coinbase", "foo"]}):
            with pytest.raises(ValueError):
                client.list_transactions(**kwargs)
    assert server.count == 0


# ---- the API key -------------------------------------------------------------------------


def test_api_key_sent_but_never_shown(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f"invalid api key {SECRET}"
    server = serve([
        Reply(503, {"error": echo}),
        Reply(200, f"garbage {SECRET}"),
        Reply(429, {"error": echo}, headers={"retry-after": "0"}),
        Reply(403, {"statusCode": 403, "error": "Forbidden", "message": echo}),
        Reply(500, echo, content_type="text/plain"),
    ], default=Reply(500, {"error": echo}))
    errors: list[BaseException] = []
    with _client(server.url, api_key=SECRET) as client:
        with pytest.raises(HiroRequestError) as info:
            client.list_transactions()
        errors.append(info.value)
        with pytest.raises(HiroUnavailable) as info2:
            client.get_status()
        errors.append(info2.value)
        shown = [repr(client), str(client.stats.snapshot()), repr(client.stats)]
    assert all(s.headers.get("x-api-key") == SECRET for s in server.seen)
    for exc in errors:
        assert SECRET not in str(exc) and SECRET not in repr(exc)
        assert SECRET not in repr(vars(exc))
        # Raised `from None`: no requests exception (or its request headers) rides along.
        assert exc.__cause__ is None
        ctx = exc.__context__
        assert ctx is None or (exc.__suppress_context__ and SECRET not in str(ctx))
    assert "***" in str(errors[0])
    for text in shown:
        assert SECRET not in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrying" in logged and SECRET not in logged
    assert SECRET not in caplog.text


def test_invalid_key_is_refused_without_showing_it() -> None:
    with pytest.raises(ValueError) as info:
        HiroClient("http://127.0.0.1:1", api_key=SECRET[:6] + "\r\n" + SECRET[6:])
    assert "HIRO_API_KEY" in str(info.value)
    with pytest.raises(ValueError) as info:
        HiroClient("http://127.0.0.1:1", api_key=f"{SECRET} extra")
    assert SECRET not in str(info.value)


# ---- configuration -----------------------------------------------------------------------


def test_from_env_defaults_and_overrides() -> None:
    client = HiroClient.from_env({})
    assert client.base_url == "https://api.hiro.so"
    # No assumed rate, with or without a key: the server's headers decide (HIRO_RPM caps).
    assert client.limiter.configured_rpm is None and not client.has_api_key
    assert client.limiter.mode == "learning"
    assert (client.connect_timeout, client.read_timeout) == (10.0, 30.0)
    keyed = HiroClient.from_env({"HIRO_API_KEY": SECRET, "HIRO_API_URL": "http://x.test:3999/",
                                 "HIRO_CONNECT_TIMEOUT": "2", "HIRO_READ_TIMEOUT": "5.5"})
    assert keyed.limiter.configured_rpm is None and keyed.has_api_key
    assert keyed.base_url == "http://x.test:3999"
    assert (keyed.connect_timeout, keyed.read_timeout) == (2.0, 5.5)
    assert SECRET not in repr(keyed)
    assert HiroClient.from_env({"HIRO_RPM": "0"}).limiter.configured_rpm is None
    assert HiroClient.from_env({"HIRO_RPM": "120"}).limiter.configured_rpm == 120


@pytest.mark.parametrize(("env", "name"), [
    ({"HIRO_RPM": "fast"}, "HIRO_RPM"),
    ({"HIRO_RPM": "-1"}, "HIRO_RPM"),
    ({"HIRO_CONNECT_TIMEOUT": "0"}, "HIRO_CONNECT_TIMEOUT"),
    ({"HIRO_READ_TIMEOUT": "nan"}, "HIRO_READ_TIMEOUT"),
    ({"HIRO_MAX_RATE_LIMIT_WAIT": "-5"}, "HIRO_MAX_RATE_LIMIT_WAIT"),
    ({"HIRO_API_URL": "ftp://api.hiro.so"}, "HIRO_API_URL"),
    ({"HIRO_API_URL": "api.hiro.so"}, "HIRO_API_URL"),
    ({"HIRO_API_URL": "https://"}, "HIRO_API_URL"),
    ({"HIRO_API_URL": "https://user:pw@api.hiro.so"}, "HIRO_API_URL"),
    ({"HIRO_API_URL": "http://localhost:99999"}, "HIRO_API_URL"),
])
def test_from_env_rejects_bad_values(env: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError) as info:
        HiroClient.from_env(env)
    message = str(info.value)
    assert name in message and "\n" not in message
    assert "pw" not in message


def test_session_pool_is_large_enough_for_workers() -> None:
    client = HiroClient("http://127.0.0.1:1")
    adapter = client._session.get_adapter("http://127.0.0.1:1/")
    assert adapter._pool_maxsize >= 16


def test_real_sample_served_over_http_maps(serve) -> None:
    server = serve(default=Reply(200, TESTNET_PAGE_2026.read_text()))
    with _client(server.url) as client:
        page = client.list_transactions()
    from datetime import UTC, datetime

    rows, rejected = map_page(page.results, datetime.now(UTC))
    assert (page.total, len(rows), rejected) == (8, 8, [])


# ---- against the project's simulator ---------------------------------------------------


@pytest.fixture
def sim_factory(make_simulator: Callable[..., Any]) -> Callable[..., Any]:
    """`make_simulator` with this file's chain (seed 11, one day); keywords override."""
    return functools.partial(make_simulator, seed=11, history_days=1)


def _fetch_window(client: HiroClient, start: int, end: int) -> tuple[list[dict], int]:
    """Page a closed window in ascending order until offset >= total."""
    results: list[dict] = []
    offset, total = 0, None
    while total is None or offset < total:
        page = client.list_transactions(limit=50, offset=offset, start_time=start,
                                        end_time=end, order="asc", sort_by="burn_block_time")
        total = page.total
        results.extend(page.results)
        offset += page.limit
    return results, total


def _window(sim: Any, hours: int = 3) -> tuple[int, int, set[str]]:
    end = sim.now() - 3 * 3600
    start = end - hours * 3600 + 1
    truth = {t["tx_id"] for t in sim.ground_truth(start, end, include_orphaned=False)
             if t["canonical"]}
    return start, end, truth


def test_sim_window_is_fetched_exactly_and_every_row_maps(sim_factory) -> None:
    from datetime import UTC, datetime

    sim = sim_factory()
    start, end, truth = _window(sim)
    with _client(sim.url) as client:
        status = client.get_status()
        results, total = _fetch_window(client, start, end)
    assert status["status"] == "ready"
    assert total == len(truth) > 100
    assert {r["tx_id"] for r in results} == truth and len(results) == total
    rows, rejected = map_page(results, datetime.now(UTC))
    assert rejected == [] and len(rows) == total
    assert {r["tx_type"] for r in rows} >= {"coinbase", "contract_call", "token_transfer"}


def test_sim_faults_are_retried_without_losing_rows(sim_factory) -> None:
    sim = sim_factory(fault_rate=0.3, fault_kinds=("500", "502", "503", "truncated"))
    # 12 h: ~20 pages wherever the wall clock puts the head (3 h was sometimes 6 pages, and
    # the seeded fault rolls start with six passes)
    start, end, truth = _window(sim, hours=12)
    with _client(sim.url) as client:
        results, _total = _fetch_window(client, start, end)
        stats = client.stats.snapshot()
    served = sim.stats
    assert {r["tx_id"] for r in results} == truth
    assert served["faults_total"] > 0
    assert stats["retries"] == served["faults_total"]  # one retry per injected fault
    assert sum(stats["faults_by_kind"].values()) == served["faults_total"]
    assert stats["requests"] == served["requests"]


def test_sim_permanent_faults_give_up_after_five(sim_factory) -> None:
    sim = sim_factory(fault_rate=1.0, fault_kinds=("503",))
    with _client(sim.url) as client, pytest.raises(HiroUnavailable) as info:
        client.list_transactions()
    assert sim.stats["requests"] == 5 and info.value.attempts == 5
    assert "database service is unavailable" in info.value.last_problem


def test_sim_stall_is_a_timeout(sim_factory) -> None:
    sim = sim_factory(fault_rate=1.0, fault_kinds=("stall",), stall_seconds=1.0)
    with _client(sim.url, read_timeout=0.3, max_attempts=2) as client:
        with pytest.raises(HiroUnavailable) as info:
            client.list_transactions()
        assert client.stats.snapshot()["faults_by_kind"] == {"timeout": 2}
    assert "timeout" in info.value.last_problem


@pytest.mark.parametrize("reset_form", ["seconds", "timestamp"])
def test_sim_spent_quota_stops_fast(sim_factory, reset_form) -> None:
    sim = sim_factory(quota_exhausted_seconds=3 * 3600, ratelimit_reset_form=reset_form)
    with _client(sim.url) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitExhausted) as info:
            client.list_transactions()
        assert time.monotonic() - started < 2.0
    assert sim.stats["requests"] == 1
    assert info.value.wait_seconds == pytest.approx(3 * 3600, abs=5)


def test_sim_gone_and_wrong_content_type(sim_factory) -> None:
    sim = sim_factory(gone=True)
    with _client(sim.url) as client:
        with pytest.raises(EndpointGone):
            client.list_transactions()
        sim.set_faults(gone=False, wrong_content_type=True)
        with pytest.raises(BadResponse, match="does not look like the Stacks API"):
            client.list_transactions()
    assert sim.stats["requests"] == 2


def test_sim_concurrent_threads_stay_under_limit(sim_factory) -> None:
    rpm = 120
    sim = sim_factory(rate_limit_rpm=rpm)
    done: list[float] = []
    lock = threading.Lock()
    with _client(sim.url, requests_per_minute=rpm) as client:
        def work() -> None:
            for _ in range(2):
                client.list_transactions(limit=5)
                with lock:
                    done.append(time.monotonic())

        started = time.monotonic()
        workers = [threading.Thread(target=work) for _ in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(30)
        stats = client.stats.snapshot()
    elapsed = time.monotonic() - started
    assert len(done) == 16
    assert sim.stats["responses_429"] == 0 and stats["responses_429"] == 0
    assert elapsed >= 15 / (rpm / 60) * 0.95  # 16 requests spaced 0.5 s apart


def test_sim_tighter_server_limit_is_adopted(sim_factory) -> None:
    sim = sim_factory(rate_limit_rpm=100)
    with _client(sim.url, requests_per_minute=6000) as client:
        client.list_transactions(limit=1)
        assert client.limiter.current_rpm is not None and client.limiter.current_rpm <= 100
        started = time.monotonic()
        for _ in range(3):
            client.list_transactions(limit=1)
        # The first of the three goes at once (its slot was booked at our own rate); the
        # next two wait a full server-paced interval (60 / 90 s) each.
        assert time.monotonic() - started >= 2 * 0.6
    assert sim.stats["responses_429"] == 0
