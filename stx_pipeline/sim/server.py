"""The simulator as a real HTTP server on loopback: Hiro's `/extended/v1/tx`, the v3 cursor
lists and v2 block lists (`v3.py`), plus admin routes.

Tests, benchmarks and the demo talk to it over real HTTP, so the client's sessions, retries,
timeouts and header parsing are exercised exactly as against api.hiro.so. Everything that is
not Hiro API lives under `/__sim__/`.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stx_pipeline.sim.chain import Chain
from stx_pipeline.sim.faults import (
    ERROR_500_BODY,
    ERROR_503_BODY,
    FAULT_KINDS,
    FAULT_SETTING_NAMES,
    GONE_BODY,
    HTML_502,
    HTML_PAGE,
    FaultInjector,
    FaultSettings,
    json_bytes,
    malform,
    malformation,
)
from stx_pipeline.sim.params import ParamError, parse_tx_list
from stx_pipeline.sim.ratelimit import _UNSET, GatewayLimits
from stx_pipeline.sim.txjson import build_tx
from stx_pipeline.sim.v3 import V3Routes, serves

V1_TX_PATH = "/extended/v1/tx"
# Routes marked `deprecated: true` in the API (of those simulated): Warning header, and
# 410 Gone when the operator disables deprecated endpoints.
DEPRECATED_PATHS = frozenset({V1_TX_PATH})

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html"
DEPRECATION_WARNING = '299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"'
# SimConfig / set_faults key -> GatewayLimits.configure keyword
RATE_LIMIT_KEYS = {
    "rate_limit_rpm": "rpm",
    "rate_limit_rps": "rps",
    "rate_limit_month": "month",
    "month_seconds": "month_seconds",
    "month_used": "month_used",
    "ratelimit_reset_form": "reset_form",
    "ratelimit_headers": "headers",
    "ratelimit_cost": "cost",
    "quota_exhausted_seconds": "quota_exhausted_seconds",
}


@dataclass
class SimConfig:
    """Everything that shapes a simulator run. Fault and rate-limit fields can change live."""

    seed: int = 7
    history_days: float = 30.0
    tx_per_day: float = 6000.0  # average user txs per day
    speed: float = 1.0  # sim seconds per wall second
    frozen: bool = False  # True: the head moves only through advance()
    now: int | None = None  # the chain's "now" at start; default wall clock
    host: str = "127.0.0.1"
    port: int = 0  # 0 = a free port
    lookahead_days: float = 1.0  # chain generated ahead of now at start (extends lazily)
    # faults (see faults.py)
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    stall_seconds: float = 5.0
    gone: bool = False  # deprecated v1 route answers 410 (ENABLE_DEPRECATED_ENDPOINTS=false)
    gone_after_requests: int | None = None  # ... after this many v1 requests were served
    gone_at: float | None = None  # ... from this sim time on (unix seconds)
    wrong_content_type: bool = False
    fault_seed: int | None = None  # default: seed
    malformed_rate: float = 0.0  # share of transactions served malformed (per tx_id)
    # gateway rate limiting (off while no window and no quota_exhausted_seconds is set)
    rate_limit_rpm: int | None = None  # per-minute window
    rate_limit_rps: int | None = None  # per-second window
    rate_limit_month: int | None = None  # monthly quota (429 without retry-after when spent)
    month_seconds: int | None = None  # length of a "month" (None: the UTC calendar month)
    ratelimit_reset_form: str = "seconds"  # or "timestamp"
    ratelimit_headers: str = "both"  # or "generic" (ratelimit-*) or "named" (x-ratelimit-*)
    ratelimit_cost: int = 1  # x-ratelimit-cost-stacks of every request
    quota_exhausted_seconds: int | None = None
    api_version: str = "v9.0.2 (master:759c4a58)"
    # An API from before v9.0.0: no /extended/v3 routes, no deprecation Warning on v1.
    pre_v9: bool = False
    # the chain's recent past changing, as on mainnet (all off by default; see chain.py)
    burn_time_disorder: float = 0.0  # share of burn blocks timed before their parent
    burn_time_ahead: float = 0.0  # share of burn blocks timed ahead of their Stacks blocks
    reorg_after_requests: int | None = None  # one reorg, fired when this many were served
    reorg_depth: int = 3  # Stacks blocks orphaned by that reorg ...
    reorg_burn_blocks: int = 0  # ... or, when > 0, a Bitcoin fork this many burn blocks deep
    # keep (route, query) of every Hiro request in `Simulator.request_log` (tests that must
    # show what a run did not ask for)
    record_requests: bool = False

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_HOSTS:
            raise ValueError(f"the simulator binds loopback only, not {self.host!r}")
        if self.history_days <= 0 or self.tx_per_day < 0 or self.speed < 0:
            raise ValueError("history_days must be > 0, tx_per_day and speed >= 0")
        for name in ("burn_time_disorder", "burn_time_ahead"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1")
        self.fault_kinds = tuple(self.fault_kinds)

    def fault_settings(self) -> FaultSettings:
        kw = {f: getattr(self, f) for f in FAULT_SETTING_NAMES if f != "fault_seed"}
        return FaultSettings(**kw, fault_seed=self.seed if self.fault_seed is None else
                             self.fault_seed)


class SimClock:
    """Sim time = start + offset + elapsed wall time x speed (elapsed ignored when frozen)."""

    def __init__(self, start: int, speed: float, frozen: bool) -> None:
        self.start = start
        self.speed = speed
        self.frozen = frozen
        self._offset = 0.0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    def now(self) -> float:
        if self.frozen:
            return self.start + self._offset
        return self.start + self._offset + (time.monotonic() - self._t0) * self.speed

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


@dataclass
class SimStats:
    """Counters of what the Hiro routes answered (admin routes are counted apart)."""

    requests: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    responses_429: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    admin_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "by_status": dict(self.by_status),
                "responses_429": self.responses_429,
                "faults": dict(self.faults),
                "faults_total": sum(self.faults.values()),
                "by_route": dict(self.by_route),
                "admin_requests": self.admin_requests,
            }


class Simulator:
    """A simulated Hiro API on 127.0.0.1: `start()`, `.url`, `stop()` (or use `with`)."""

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        cfg = config or SimConfig()
        if overrides:
            cfg = SimConfig(**{**asdict(cfg), **overrides})
        self.config = cfg
        start = int(cfg.now if cfg.now is not None else time.time())
        self.clock = SimClock(start, cfg.speed, cfg.frozen)
        self.chain = Chain(
            cfg.seed, cfg.history_days, cfg.tx_per_day, start,
            burn_disorder=cfg.burn_time_disorder, burn_ahead=cfg.burn_time_ahead,
        )
        self._scheduled_reorg = cfg.reorg_after_requests
        self.reorgs: list[dict[str, Any]] = []
        self.chain.ensure_generated(start + cfg.lookahead_days * 86_400)
        self.faults = FaultInjector(cfg.fault_settings())
        self.limiter = GatewayLimits(
            cfg.rate_limit_rpm, cfg.ratelimit_reset_form, cfg.quota_exhausted_seconds,
            rps=cfg.rate_limit_rps, month=cfg.rate_limit_month, month_seconds=cfg.month_seconds,
            headers=cfg.ratelimit_headers, cost=cfg.ratelimit_cost,
        )
        self._stats = SimStats()
        self.request_log: list[tuple[str, dict[str, list[str]]]] = []
        self._deprecated_served = 0  # v1 requests answered before any 410 switch
        self._deprecated_lock = threading.Lock()
        self.v3 = V3Routes(self)
        self._server: ThreadingHTTPServer | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Simulator:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.config.port), _Handler)
        server.daemon_threads = True
        server.simulator = self  # type: ignore[attr-defined]
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"hiro-sim-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (still known after stop(), so a test can check it is closed)."""
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ chain control
    def now(self) -> int:
        """Current sim time (unix seconds); a tx is visible iff its block_time <= now()."""
        return math.floor(self.clock.now())

    def advance(self, seconds: float) -> int:
        """Move the head forward by `seconds` of sim time; returns the new sim now."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self.clock.advance(seconds)
        now = self.now()
        self.chain.ensure_generated(now + 3600)
        return now

    def reorg(self, depth: int = 1, burn_blocks: int = 0) -> dict[str, Any]:
        """Orphan the newest `depth` Stacks blocks, or (burn_blocks > 0) a Bitcoin fork."""
        info = self.chain.reorg(depth, self.now(), burn_blocks=burn_blocks)
        self.reorgs.append(info)
        return info

    def _maybe_scheduled_reorg(self) -> None:
        """The reorg of `reorg_after_requests`, fired once, in the middle of a client's run."""
        due = self._scheduled_reorg
        if due is None or self._stats.requests < due:
            return
        with self.chain.lock:
            if self._scheduled_reorg is None:
                return
            self._scheduled_reorg = None
            self.reorg(self.config.reorg_depth, self.config.reorg_burn_blocks)

    def tip(self) -> dict[str, Any]:
        return self.chain.tip(self.now())

    def malformed_kind(self, tx_id: str) -> str | None:
        """How the server currently breaks this transaction when serving it (None: intact)."""
        s = self.faults.settings
        return malformation(tx_id, s.malformed_rate, s.fault_seed)

    def ground_truth(
        self, start_time: int | None = None, end_time: int | None = None,
        include_orphaned: bool = True,
    ) -> list[dict[str, Any]]:
        """Every visible tx in [start_time, end_time] on burn_block_time, plus orphaned ones."""
        return self.chain.ground_truth(self.now(), start_time, end_time, include_orphaned)

    # ------------------------------------------------------------------ faults, limits, stats
    def set_faults(self, **kw: Any) -> dict[str, Any]:
        """Change fault settings (and/or rate-limit keys) at run time; returns all settings."""
        limit_kw = {k: kw.pop(k) for k in list(kw) if k in RATE_LIMIT_KEYS}
        if kw:
            self.faults.update(**kw)
        if limit_kw:
            self.limiter.configure(**{RATE_LIMIT_KEYS[k]: v for k, v in limit_kw.items()})
        return self.settings()

    def set_rate_limit(
        self, rpm: int | None, *, reset_form: str | None = None,
        quota_exhausted_seconds: Any = _UNSET, **windows: Any,
    ) -> None:
        """Set the per-minute limit (and any of `rps`, `month`, `month_used`, ...) live."""
        self.limiter.configure(
            rpm=rpm, reset_form=reset_form or self.limiter.reset_form,
            quota_exhausted_seconds=quota_exhausted_seconds, **windows,
        )

    def settings(self) -> dict[str, Any]:
        s = asdict(self.faults.settings)
        s["fault_kinds"] = list(s["fault_kinds"])
        lim = self.limiter
        s.update(
            rate_limit_rpm=lim.rpm,
            rate_limit_rps=lim.rps,
            rate_limit_month=lim.month,
            month_seconds=lim.month_seconds,
            month_used=lim.month_used,
            ratelimit_reset_form=lim.reset_form,
            ratelimit_headers=lim.headers,
            ratelimit_cost=lim.cost,
            quota_exhausted_seconds=lim.quota_exhausted_seconds,
        )
        return s

    @property
    def stats(self) -> dict[str, Any]:
        """Snapshot of counters: requests, by_status, responses_429, faults (by kind)."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats = SimStats()

    def deprecated_gone(self) -> bool:
        """Does this v1 request get 410? (`gone`, or past `gone_after_requests` / `gone_at`)."""
        s = self.faults.settings
        with self._deprecated_lock:
            gone = (
                s.gone
                or (s.gone_after_requests is not None
                    and self._deprecated_served >= s.gone_after_requests)
                or (s.gone_at is not None and self.clock.now() >= s.gone_at)
            )
            if not gone:
                self._deprecated_served += 1
            return gone

    def _count(self, status: int, fault: str | None = None, route: str = "") -> None:
        st = self._stats
        with st.lock:
            st.requests += 1
            st.by_status[str(status)] += 1
            if route:
                st.by_route[route] += 1
            if status == 429:
                st.responses_429 += 1
            if fault:
                st.faults[fault] += 1

    def info(self) -> dict[str, Any]:
        now = self.now()
        return {
            "sim_now": now,
            "genesis_time": self.chain.genesis_time,
            "generated_until": self.chain.generated_until,
            "visible_txs": self.chain.visible_rows(now),
            "chain_tip": self.tip(),
            "seed": self.config.seed,
            "frozen": self.clock.frozen,
            "speed": self.clock.speed,
            "settings": self.settings(),
        }


class _Response:
    def __init__(
        self, status: int, body: bytes = b"", content_type: str = JSON_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json_bytes(obj), JSON_TYPE, headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "hiro-sim"

    @property
    def sim(self) -> Simulator:
        return self.server.simulator  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats instead
        return

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        params = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            if path.startswith("/__sim__"):
                with self.sim._stats.lock:
                    self.sim._stats.admin_requests += 1
                self._send(self._admin(method, path, params, body))
            elif method == "GET" and self._is_hiro_route(path):
                self._hiro(path, params)
            else:
                self._send(_json(404, {
                    "message": f"Route {method}:{parts.path} not found",
                    "error": "Not Found", "statusCode": 404,
                }))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _is_hiro_route(self, path: str) -> bool:
        if path in (V1_TX_PATH, "/extended"):
            return True
        if self.sim.config.pre_v9 and path.startswith("/extended/v3/"):
            return False  # the v3 routes came with API v9.0.0
        return serves(path)

    def _send(self, resp: _Response) -> None:
        self.send_response(resp.status)
        self.send_header("content-type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(resp.body)))
        self.end_headers()
        if resp.body:
            self.wfile.write(resp.body)

    # ------------------------------------------------------------------ Hiro routes
    def _hiro(self, path: str, params: dict[str, list[str]]) -> None:
        sim = self.sim
        common = {
            "x-api-version": sim.config.api_version,
            "access-control-allow-origin": "*",
            "access-control-expose-headers": "X-API-Version",
        }
        route = _route_name(path)
        if sim.config.record_requests:
            with sim._stats.lock:
                sim.request_log.append((route, params))
        deprecated = path in DEPRECATED_PATHS and not sim.config.pre_v9
        if deprecated:
            common["warning"] = DEPRECATION_WARNING
        decision = sim.limiter.check()
        common.update({k: v for k, v in decision.headers.items() if k != "retry-after"})
        if not decision.allowed:
            if decision.retry_after is not None:  # none when the month is spent
                common["retry-after"] = str(decision.retry_after)
            sim._count(429, route=route)
            self._send(_json(429, {"error": "Too Many Requests"}, common))
            return
        delay = sim.faults.latency_seconds()
        if delay:
            time.sleep(delay)
        settings = sim.faults.settings
        if deprecated and sim.deprecated_gone():
            # The API's onRequest hook answers before the preHandler that sets X-API-Version;
            # the onSend hook still adds the Warning.
            sim._count(410, "gone", route)
            gone_headers = {k: v for k, v in common.items() if k != "x-api-version"}
            self._send(_json(410, GONE_BODY, gone_headers))
            return
        if settings.wrong_content_type:
            sim._count(200, "wrong_content_type", route)
            self._send(_Response(200, HTML_PAGE.encode(), HTML_TYPE, common))
            return
        fault = sim.faults.roll()
        if fault == "500":
            sim._count(500, fault, route)
            self._send(_json(500, ERROR_500_BODY, common))
            return
        if fault == "502":
            sim._count(502, fault, route)
            self._send(_Response(502, HTML_502.encode(), HTML_TYPE, common))
            return
        if fault == "503":
            sim._count(503, fault, route)
            self._send(_json(503, ERROR_503_BODY, common))
            return
        if path == V1_TX_PATH:
            resp = self._tx_list(params)
        elif path == "/extended":
            resp = self._status()
        else:
            answer = sim.v3.answer(path, params, self.headers.get("if-none-match"))
            resp = (_Response(304, b"", JSON_TYPE, answer.headers) if answer.body is None
                    else _json(answer.status, answer.body, answer.headers))
        resp.headers = {**common, **resp.headers}
        if fault == "truncated" and resp.status == 200 and resp.body:
            resp.body = resp.body[: max(1, len(resp.body) // 2)]
        sim._count(resp.status, fault, route)  # counted when decided, even if the client gives up
        if fault == "stall":
            time.sleep(settings.stall_seconds)
        self._send(resp)

    def _tx_list(self, params: dict[str, list[str]]) -> _Response:
        sim = self.sim
        chain = sim.chain
        now = sim.now()
        chain.ensure_generated(now + 3600)
        sim._maybe_scheduled_reorg()
        try:
            req = parse_tx_list(params, chain.wallet_of)
        except ParamError as e:
            return _json(400, e.body)
        with chain.lock:
            tip = chain.tip(now)
            etag = f'"{tip["index_block_hash"]}"'
            cache = {"cache-control": "public, no-cache, must-revalidate", "etag": etag}
            if self.headers.get("if-none-match") == etag:
                return _Response(304, b"", JSON_TYPE, cache)
            total, positions = chain.query(req.query, now)
            rows = [chain.row(p) for p in positions]
        results = [build_tx(r, exclude_function_args=req.exclude_function_args) for r in rows]
        settings = sim.faults.settings
        if settings.malformed_rate > 0:
            results = [_maybe_malform(tx, settings.malformed_rate, settings.fault_seed)
                       for tx in results]
        q = req.query
        return _json(
            200, {"limit": q.limit, "offset": q.offset, "total": total, "results": results}, cache
        )

    def _status(self) -> _Response:
        sim = self.sim
        return _json(200, {
            "server_version": f"stacks-blockchain-api {sim.config.api_version}",
            "status": "ready",
            "chain_tip": sim.tip(),
        })

    # ------------------------------------------------------------------ admin routes
    def _admin(
        self, method: str, path: str, params: dict[str, list[str]], body: bytes
    ) -> _Response:
        sim = self.sim

        def num(name: str, default: float | None = None) -> float | None:
            v = params.get(name, [""])[0]
            return float(v) if v not in ("",) else default

        try:
            if method == "GET" and path == "/__sim__/ground-truth":
                st, et = num("start_time"), num("end_time")
                inc = params.get("include_orphaned", ["true"])[0] != "false"
                rows = sim.ground_truth(
                    None if st is None else int(st), None if et is None else int(et), inc
                )
                return _json(200, {"sim_now": sim.now(), "count": len(rows), "transactions": rows})
            if method == "GET" and path == "/__sim__/stats":
                return _json(200, sim.stats)
            if method == "GET" and path == "/__sim__/info":
                return _json(200, sim.info())
            if method == "POST" and path == "/__sim__/reorg":
                return _json(200, sim.reorg(int(num("depth", 1) or 1),
                                            int(num("burn_blocks", 0) or 0)))
            if method == "POST" and path == "/__sim__/advance":
                return _json(200, {"sim_now": sim.advance(num("seconds", 0) or 0.0)})
            if method == "POST" and path == "/__sim__/faults":
                kw = json.loads(body or b"{}")
                if not isinstance(kw, dict):
                    raise ValueError("body must be a JSON object")
                return _json(200, sim.set_faults(**kw))
            if method == "POST" and path == "/__sim__/reset-stats":
                sim.reset_stats()
                return _json(200, sim.stats)
        except (ValueError, TypeError) as e:
            return _json(400, {"error": "Bad Request", "message": str(e)})
        return _json(404, {"error": "Not Found", "message": f"no admin route {method} {path}"})


def _route_name(path: str) -> str:
    """A short label per Hiro route for `stats["by_route"]`."""
    if path == V1_TX_PATH:
        return "v1_tx"
    if path == "/extended":
        return "status"
    if path.startswith("/extended/v3/blocks/"):
        return "v3_block_transactions"
    if path.startswith("/extended/v3/"):
        return "v3_transactions"
    if path.startswith("/extended/v2/burn-blocks"):
        return "v2_burn_blocks"
    if path.startswith("/extended/v2/blocks/by-block-time/"):
        return "v2_block_by_time"
    if path.startswith("/extended/v2/blocks/"):
        return "v2_block"
    return "v2_blocks"


def _maybe_malform(tx: dict[str, Any], rate: float, seed: int) -> dict[str, Any]:
    kind = malformation(tx["tx_id"], rate, seed)
    return malform(tx, kind) if kind else tx


@contextlib.contextmanager
def run_simulator(**config_kwargs: Any) -> Iterator[Simulator]:
    """`with run_simulator(seed=1, frozen=True) as sim: requests.get(sim.url + ...)`."""
    sim = Simulator(SimConfig(**config_kwargs)).start()
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimConfig, port: int | None = None) -> None:
    """Run in the foreground (the CLI's `simulate`), printing the URL; Ctrl-C stops it."""
    if port is not None:
        config = SimConfig(**{**asdict(config), "port": port})
    sim = Simulator(config).start()
    print(f"Hiro simulator listening on {sim.url}  (GET {sim.url}/extended/v1/tx,"
          f" {sim.url}/extended/v3/transactions)", flush=True)
    print(
        f"  seed={config.seed} history_days={config.history_days} "
        f"tx_per_day={config.tx_per_day} visible_txs={sim.chain.visible_rows(sim.now())}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


__all__ = ["SimConfig", "Simulator", "run_simulator", "serve_forever"]
