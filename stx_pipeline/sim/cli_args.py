"""argparse wiring for `stx-pipeline simulate`, kept here so the CLI stays thin."""

from __future__ import annotations

import argparse

from stx_pipeline.sim.faults import FAULT_KINDS
from stx_pipeline.sim.server import SimConfig


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --port, --seed, --history-days, --tx-per-day and the speed/fault/limit flags."""
    d = SimConfig()
    g = parser.add_argument_group("simulator")
    g.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = free port)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--history-days", type=float, default=d.history_days)
    g.add_argument("--tx-per-day", type=float, default=d.tx_per_day,
                   help="average user transactions per day")
    g.add_argument("--speed", type=float, default=d.speed, help="sim seconds per wall second")
    g.add_argument("--frozen", action="store_true", help="head moves only via /__sim__/advance")
    g.add_argument("--now", type=int, default=None, help="chain 'now' (unix s); default wall clock")
    f = parser.add_argument_group("simulator faults and limits")
    f.add_argument("--latency-ms", type=float, default=0.0)
    f.add_argument("--latency-jitter-ms", type=float, default=0.0)
    f.add_argument("--fault-rate", type=float, default=0.0, help="probability per request")
    f.add_argument("--malformed-rate", type=float, default=0.0,
                   help="share of transactions served malformed (chosen per tx_id)")
    f.add_argument("--fault-kinds", default=",".join(FAULT_KINDS),
                   help=f"comma list of {','.join(FAULT_KINDS)}")
    f.add_argument("--stall-seconds", type=float, default=d.stall_seconds)
    f.add_argument("--fault-seed", type=int, default=None)
    f.add_argument("--gone", action="store_true",
                   help="deprecated v1 route answers 410 Gone (v3 keeps working)")
    f.add_argument("--gone-after-requests", type=int, default=None,
                   help="v1 answers 410 once this many v1 requests were served")
    f.add_argument("--gone-at", type=float, default=None,
                   help="v1 answers 410 from this sim time on (unix seconds)")
    f.add_argument("--pre-v9", action="store_true",
                   help="an API before v9.0.0: no /extended/v3 routes, no v1 deprecation")
    f.add_argument("--wrong-content-type", action="store_true", help="answer 200 text/html")
    f.add_argument("--rate-limit-rpm", type=int, default=None, help="per-minute window")
    f.add_argument("--rate-limit-rps", type=int, default=None, help="per-second window")
    f.add_argument("--rate-limit-month", type=int, default=None,
                   help="monthly quota (spent: 429 without retry-after)")
    f.add_argument("--month-seconds", type=int, default=None,
                   help="length of a quota month (default: the UTC calendar month)")
    f.add_argument("--ratelimit-headers", choices=("both", "generic", "named"), default="both",
                   help="generic ratelimit-*, named x-ratelimit-*-stacks-*, or both")
    f.add_argument("--ratelimit-cost", type=int, default=1, help="x-ratelimit-cost-stacks")
    f.add_argument("--ratelimit-reset-form", choices=("seconds", "timestamp"), default="seconds")
    c = parser.add_argument_group("simulator: a recent past that changes (mainnet behaviour)")
    c.add_argument("--burn-time-disorder", type=float, default=0.0,
                   help="share of burn blocks timed before their parent (median-time-past rule)")
    c.add_argument("--burn-time-ahead", type=float, default=0.0,
                   help="share of burn blocks timed up to 2 h ahead of their Stacks blocks")
    c.add_argument("--reorg-after-requests", type=int, default=None,
                   help="fire one reorg once this many requests were served")
    c.add_argument("--reorg-depth", type=int, default=3, help="Stacks blocks that reorg orphans")
    c.add_argument("--reorg-burn-blocks", type=int, default=0,
                   help="make that reorg a Bitcoin fork this many burn blocks deep")
    f.add_argument("--quota-exhausted-seconds", type=int, default=None,
                   help="every request 429 with this retry-after")


def config_from_args(ns: argparse.Namespace) -> SimConfig:
    """Build the SimConfig from parsed arguments (see add_simulator_arguments)."""
    return SimConfig(
        seed=ns.seed,
        history_days=ns.history_days,
        tx_per_day=ns.tx_per_day,
        speed=ns.speed,
        frozen=ns.frozen,
        now=ns.now,
        port=ns.port,
        latency_ms=ns.latency_ms,
        latency_jitter_ms=ns.latency_jitter_ms,
        fault_rate=ns.fault_rate,
        malformed_rate=ns.malformed_rate,
        fault_kinds=tuple(k for k in ns.fault_kinds.split(",") if k),
        stall_seconds=ns.stall_seconds,
        fault_seed=ns.fault_seed,
        gone=ns.gone,
        gone_after_requests=ns.gone_after_requests,
        gone_at=ns.gone_at,
        wrong_content_type=ns.wrong_content_type,
        pre_v9=ns.pre_v9,
        rate_limit_rpm=ns.rate_limit_rpm,
        rate_limit_rps=ns.rate_limit_rps,
        rate_limit_month=ns.rate_limit_month,
        month_seconds=ns.month_seconds,
        ratelimit_headers=ns.ratelimit_headers,
        ratelimit_cost=ns.ratelimit_cost,
        ratelimit_reset_form=ns.ratelimit_reset_form,
        quota_exhausted_seconds=ns.quota_exhausted_seconds,
        burn_time_disorder=ns.burn_time_disorder,
        burn_time_ahead=ns.burn_time_ahead,
        reorg_after_requests=ns.reorg_after_requests,
        reorg_depth=ns.reorg_depth,
        reorg_burn_blocks=ns.reorg_burn_blocks,
    )
