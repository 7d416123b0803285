"""Rate limits and quotas as the gateway sends them: the limiter, the client and the simulator.

Real parts only: the limiter is fed real header dicts, the client talks HTTP to the
project's simulator or to a scripted loopback server (tests/test_hiro_client.py's), and
the backfill runs for real against the simulator.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from stx_pipeline.hiro import HiroClient, RateLimiter, RateLimitExhausted
from stx_pipeline.hiro.errors import MonthlyQuotaExhausted, QuotaReserveReached
from stx_pipeline.hiro.factory import client_from_env
from stx_pipeline.hiro.limiter import next_month_start
from stx_pipeline_tests.test_hiro_client import Reply, serve  # noqa: F401 (fixture)

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05}
TX = "/extended/v1/tx"


def _named(second: int | None = None, minute: int | None = None, **extra: str) -> dict:
    headers = dict(extra)
    if second:
        headers["x-ratelimit-limit-stacks-second"] = str(second)
    if minute:
        headers["x-ratelimit-limit-stacks-minute"] = str(minute)
    return headers


# ---- the limiter: what the server grants, both ways -------------------------------------


def test_adopts_the_server_limit_upward_and_downward() -> None:
    limiter = RateLimiter(None)  # what a user gets with only HIRO_API_KEY
    assert limiter.mode == "learning" and limiter.current_rpm is None
    limiter.update_from_headers(_named(minute=900))
    assert limiter.current_rpm == pytest.approx(891)  # 900 less the 1% reserve
    limiter.update_from_headers(_named(minute=3000))  # a better plan: adopted upward
    assert limiter.current_rpm == pytest.approx(2970)
    limiter.update_from_headers({"ratelimit-limit": "7000"})  # generic header, per minute
    assert limiter.current_rpm == pytest.approx(2970)  # the named minute window still binds
    limiter.update_from_headers(_named(minute=300))
    assert limiter.current_rpm == pytest.approx(297)
    assert limiter.snapshot()["source"] == "server minute"


def test_configured_rpm_is_a_cap_not_a_default() -> None:
    limiter = RateLimiter(600)
    limiter.update_from_headers(_named(minute=3000))
    assert limiter.current_rpm == pytest.approx(600)
    assert limiter.snapshot()["source"] == "configured"
    limiter.update_from_headers(_named(minute=300))
    assert limiter.current_rpm == pytest.approx(297)


@pytest.mark.parametrize(("headers", "rpm"), [
    (_named(second=20, minute=900), 891),  # 14.85/s < 19/s: the minute binds
    (_named(second=10, minute=900), 540),  # 9/s < 14.85/s: the second binds
    (_named(second=20, minute=1200, **{"ratelimit-limit": "20"}), 1140),  # generic = second
    (_named(minute=900, **{"x-ratelimit-cost-stacks": "2"}), 445.5),  # each request costs 2
    ({"ratelimit-limit": "1200"}, 1188),  # generic only: per minute, as Hiro documents
])
def test_the_tightest_window_wins(headers: dict, rpm: float) -> None:
    limiter = RateLimiter(None)
    limiter.update_from_headers(headers)
    assert limiter.current_rpm == pytest.approx(rpm)


def test_a_server_that_announces_nothing_is_not_paced_after_the_first_answer() -> None:
    limiter = RateLimiter(None)
    limiter.observe(200, {"x-api-version": "v9"})
    assert limiter.mode == "unannounced" and limiter.current_rpm is None
    # ... until a 429/503 without retry-after: then half of what was observed
    for _ in range(40):
        limiter.acquire()
    limiter.observe(503, {})
    slowed = limiter.current_rpm
    assert slowed is not None and slowed <= 40 * 60 / 2
    assert limiter.snapshot()["source"] == "backoff"


def test_monthly_quota_is_tracked_and_its_reserve_is_never_spent() -> None:
    limiter = RateLimiter(None, quota_reserve=5)
    month = {"x-ratelimit-limit-stacks-month": "150000"}
    limiter.update_from_headers({**month, "x-ratelimit-remaining-stacks-month": "42000"})
    quota = limiter.quota
    assert quota is not None and (quota.limit, quota.remaining, quota.used) == (
        150000, 42000, 108000)
    assert quota.reset_at == next_month_start() and not quota.reset_known
    # answers arrive out of order: an older, higher count does not undo a lower one
    limiter.update_from_headers({**month, "x-ratelimit-remaining-stacks-month": "42010"})
    assert limiter.quota.remaining == 42000
    limiter.update_from_headers({**month, "x-ratelimit-remaining-stacks-month": "5"})
    with pytest.raises(QuotaReserveReached) as info:
        limiter.acquire()
    assert isinstance(info.value, RateLimitExhausted)
    assert info.value.retry_at == next_month_start()
    assert "HIRO_QUOTA_RESERVE" in str(info.value) and "\n" not in str(info.value)
    # the default reserve is 1% of the month, at least 100
    assert RateLimiter(None).quota_reserve(150_000) == 1500
    assert RateLimiter(None).quota_reserve(5000) == 100


# ---- the client over HTTP -----------------------------------------------------------------


def test_cautious_start_then_full_speed_against_a_server_without_limits(serve) -> None:  # noqa: F811
    server = serve(default=Reply(200, delay=0.2))
    with client_from_env({"HIRO_API_URL": server.url, "HIRO_API_KEY": "k"}) as client:
        threads = [threading.Thread(target=lambda: [client.list_transactions()
                                                    for _ in range(2)]) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert client.limiter.mode == "unannounced" and client.limiter.current_rpm is None
    seen = sorted(s.at for s in server.seen)
    assert len(seen) == 12
    assert seen[1] - seen[0] >= 0.18  # the first request went alone...
    # ... and afterwards the six threads overlapped: not paced to a guess
    overlapping = sum(1 for a, b in itertools.pairwise(seen[1:]) if b - a < 0.1)
    assert overlapping >= 4


def test_cautious_start_keeps_a_burst_of_workers_off_a_tight_limit(make_simulator) -> None:
    sim = make_simulator(rate_limit_rps=5)
    with client_from_env({"HIRO_API_URL": sim.url}) as client:  # no key, no HIRO_RPM
        threads = [threading.Thread(target=client.list_transactions, kwargs={"limit": 1})
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert client.limiter.current_rpm == pytest.approx(4 * 60)
    assert sim.stats["by_status"] == {"200": 8}  # 8 at once would have been 3 x 429


def test_sim_upward_adoption_beyond_the_old_default(make_simulator) -> None:
    sim = make_simulator(rate_limit_rpm=3000)
    with client_from_env({"HIRO_API_URL": sim.url, "HIRO_API_KEY": "k"}) as client:
        client.list_transactions(limit=1)
        assert client.limiter.current_rpm == pytest.approx(2970)  # was capped at 500
        sim.set_rate_limit(900)
        client.list_transactions(limit=1)
        assert client.limiter.current_rpm == pytest.approx(891)
        sim.set_rate_limit(7000)
        client.list_transactions(limit=1)
        assert client.limiter.current_rpm == pytest.approx(6930)
    assert sim.stats["responses_429"] == 0


def test_sim_second_and_minute_windows_together_give_no_429(make_simulator) -> None:
    sim = make_simulator(rate_limit_rps=8, rate_limit_rpm=300)
    with client_from_env({"HIRO_API_URL": sim.url, "HIRO_API_KEY": "k"}) as client:
        def work() -> None:
            for _ in range(5):
                client.list_transactions(limit=1)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert client.limiter.current_rpm == pytest.approx(297)  # 4.95/s < 7/s
    assert sim.stats["by_status"] == {"200": 30}


@pytest.mark.parametrize("reset_form", ["seconds", "timestamp"])
def test_sim_spent_month_is_rate_limit_exhausted_not_an_api_error(make_simulator, reset_form):
    sim = make_simulator(rate_limit_rpm=600, rate_limit_month=1000,
                         ratelimit_reset_form=reset_form)
    sim.set_faults(month_used=1000)  # spent by someone else this month
    with HiroClient(sim.url, **FAST) as client:
        started = time.monotonic()
        with pytest.raises(MonthlyQuotaExhausted) as info:
            client.list_transactions(limit=1)
        assert time.monotonic() - started < 5
        assert client.limiter.quota.remaining == 0
    assert sim.stats["requests"] == 1  # no retries against a spent month
    assert isinstance(info.value, RateLimitExhausted)
    assert abs((info.value.retry_at - next_month_start()).total_seconds()) < 5
    assert "rate limit exhausted" in str(info.value) and "quota is spent" in str(info.value)


def test_server_lowering_its_limit_mid_run_gets_no_429_storm(make_simulator, tmp_path):
    from stx_pipeline.backfill import ensure_transaction_history

    sim = make_simulator(seed=21, history_days=1.5, tx_per_day=3000, rate_limit_rps=20)
    lowered = threading.Event()

    def lower_after_a_while() -> None:
        while sim.stats["requests"] < 20:
            time.sleep(0.02)
        sim.set_faults(rate_limit_rps=10)
        lowered.set()

    watcher = threading.Thread(target=lower_after_a_while, daemon=True)
    watcher.start()
    with HiroClient(sim.url, **FAST) as client:
        result = ensure_transaction_history(
            max_days=1, db_path=str(tmp_path / "w.duckdb"), client=client,
            status_path=str(tmp_path / "s.json"),
            now=datetime.fromtimestamp(sim.now(), UTC),
        )
        final_rpm = client.limiter.current_rpm
    assert lowered.is_set() and result.complete, result.error
    assert final_rpm == pytest.approx(9 * 60)
    # only the requests already under way when the limit dropped may bounce
    assert sim.stats["responses_429"] <= 4
    assert result.requests > 50


# ---- the simulator's gateway -------------------------------------------------------------


def test_sim_sends_named_and_generic_headers_and_a_monthly_counter(make_simulator) -> None:
    sim = make_simulator(rate_limit_rps=2, rate_limit_rpm=3, rate_limit_month=4)
    now = [1_800_000_010.0]  # 10 s into a minute
    sim.limiter.clock = lambda: now[0]

    def get() -> requests.Response:
        return requests.get(sim.url + TX, params={"limit": 1}, timeout=10)

    r = get()
    assert r.status_code == 200
    assert r.headers["x-ratelimit-cost-stacks"] == "1"
    assert (r.headers["x-ratelimit-limit-stacks-second"],
            r.headers["x-ratelimit-remaining-stacks-second"]) == ("2", "1")
    assert (r.headers["x-ratelimit-limit-stacks-minute"],
            r.headers["x-ratelimit-remaining-stacks-minute"]) == ("3", "2")
    assert (r.headers["x-ratelimit-limit-stacks-month"],
            r.headers["x-ratelimit-remaining-stacks-month"]) == ("4", "3")
    # the generic set describes the minute window
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"],
            r.headers["ratelimit-reset"]) == ("3", "2", "50")
    assert get().status_code == 200
    r = get()  # third in the same second: the per-second window says no
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-reset"]) == ("2", "1")
    now[0] += 1
    assert get().status_code == 200
    r = get()  # fourth in the minute
    assert r.status_code == 429 and r.headers["ratelimit-limit"] == "3"
    assert r.headers["retry-after"] == "49"
    now[0] += 60
    assert get().status_code == 200  # the month's fourth
    r = get()
    month_end = int(next_month_start(datetime.fromtimestamp(now[0], UTC)).timestamp())
    assert r.status_code == 429 and "retry-after" not in r.headers
    assert r.headers["x-ratelimit-remaining-stacks-month"] == "0"
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("4", "0")
    assert int(r.headers["ratelimit-reset"]) == month_end - int(now[0])
    sim.set_faults(ratelimit_reset_form="timestamp")
    assert int(get().headers["ratelimit-reset"]) == month_end
    sim.set_faults(month_used=0)  # the month renews
    assert get().status_code == 200
    assert sim.settings()["month_used"] == 1


@pytest.mark.parametrize(("which", "present", "absent"), [
    ("generic", "ratelimit-limit", "x-ratelimit-limit-stacks-minute"),
    ("named", "x-ratelimit-limit-stacks-minute", "ratelimit-limit"),
])
def test_sim_header_sets(make_simulator, which: str, present: str, absent: str) -> None:
    sim = make_simulator(rate_limit_rpm=100, ratelimit_headers=which)
    r = requests.get(sim.url + TX, params={"limit": 1}, timeout=10)
    assert present in r.headers and absent not in r.headers


def test_sim_rejects_bad_limit_settings(make_simulator) -> None:
    sim = make_simulator()
    for bad in ({"rate_limit_rps": 0}, {"rate_limit_month": -1}, {"ratelimit_headers": "x"},
                {"month_used": -2}):
        with pytest.raises(ValueError):
            sim.set_faults(**bad)


# ---- one factory ----------------------------------------------------------------------------


@pytest.mark.parametrize("env", [
    {"HIRO_API_KEY": "sk-one"},
    {"HIRO_API_KEY": "sk-two", "HIRO_RPM": "450", "HIRO_READ_TIMEOUT": "12",
     "HIRO_QUOTA_RESERVE": "250", "HIRO_MAX_RATE_LIMIT_WAIT": "90"},
])
def test_cli_and_dagster_build_identical_clients(monkeypatch, env: dict[str, Any]) -> None:
    import dagster as dg

    from stx_pipeline import cli
    from stx_pipeline.defs.resources import resources

    for name in ("HIRO_API_URL", "HIRO_API_KEY", "HIRO_RPM", "HIRO_READ_TIMEOUT",
                 "HIRO_CONNECT_TIMEOUT", "HIRO_QUOTA_RESERVE", "HIRO_MAX_RATE_LIMIT_WAIT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_cli = cli._make_client(None)
    defs = resources()
    with dg.build_resources({"hiro": defs.resources["hiro"]}) as built:
        from_dagster = built.hiro.get_client()
    try:
        assert from_cli.describe() == from_dagster.describe()
        assert from_cli.describe()["api_key"] is True
        cap = float(env["HIRO_RPM"]) if "HIRO_RPM" in env else None
        assert from_cli.limiter.configured_rpm == cap
    finally:
        from_cli.close()
        from_dagster.close()


def test_factory_rejects_a_bad_reserve_in_one_line() -> None:
    for bad in ("-1", "many", "2.5"):
        with pytest.raises(ValueError) as info:
            client_from_env({"HIRO_QUOTA_RESERVE": bad})
        assert "HIRO_QUOTA_RESERVE" in str(info.value) and "\n" not in str(info.value)


def test_a_cap_stays_exact_under_a_looser_server_limit() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0], sleep=lambda s: None)
    limiter.update_from_headers(_named(minute=1200))
    assert [limiter.acquire() for _ in range(4)] == pytest.approx([0, 1, 2, 3])


def test_catch_up_bursts_stay_inside_the_server_window() -> None:
    now = [0.0]
    limiter = RateLimiter(None, clock=lambda: now[0], sleep=lambda s: None)
    limiter.update_from_headers(_named(minute=1200))
    interval = 60 / 1188
    waits = [limiter.acquire() for _ in range(10)]
    # after idling, up to 8 go back to back, then the pace resumes...
    assert waits[:8] == pytest.approx([0] * 8)
    assert waits[8:] == pytest.approx([interval, 2 * interval])
    # ... and a minute never holds more than the window's limit
    now[0] = 100.0
    starts = []
    for _ in range(1300):
        starts.append(now[0] + limiter.acquire())
    assert max(sum(1 for s in starts if t <= s < t + 60) for t in starts[::50]) <= 1200


# ---- planning the month: the CLI as a user runs it ------------------------------------------


def test_quota_plan_clean_stop_with_75_and_exact_resume_after_the_reset(make_simulator,
                                                                         tmp_path):
    import json

    import duckdb

    from stx_pipeline_tests.test_cli import _cli

    sim = make_simulator(seed=37, history_days=2, tx_per_day=3000, rate_limit_rpm=6000,
                         rate_limit_month=45)
    db = str(tmp_path / "w.duckdb")
    args = ("backfill", "--days", "1", "--api-url", sim.url, "--db", db)
    env = {"HIRO_QUOTA_RESERVE": "10"}
    started = time.monotonic()
    first = _cli(*args, tmp_path=tmp_path, **env)
    assert time.monotonic() - started < 60
    assert first.returncode == 75, first.stderr
    plan = [ln for ln in first.stderr.splitlines() if "quota: needs ~" in ln]
    assert len(plan) == 1, first.stderr
    assert "left this month: will stop near" in plan[0] and "resume after the reset" in plan[0]
    assert "rate limit exhausted" in first.stderr
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["stop_reason"] == "rate_limit_exhausted"
    assert status["retry_after"] == next_month_start().isoformat()
    assert status["quota_limit"] == 45 and status["quota_left"] <= 10
    assert status["quota_used"] == 45 - status["quota_left"]
    assert status["quota_needed"] > 45
    assert sim.stats["responses_429"] == 0  # stopped before the gateway had to say no
    spent = sim.settings()["month_used"]
    # the reserve, give or take the requests in flight when it was reached
    assert 45 - 10 - 4 <= spent <= 45 - 10 + 4, (spent, status, first.stderr[-2000:])

    # before the reset: stops again at once, at the cost of the one probe
    again = _cli(*args, tmp_path=tmp_path, **env)
    assert again.returncode == 75, again.stderr
    assert sim.settings()["month_used"] - spent <= 2

    shown = _cli("status", "--days", "1", "--db", db, tmp_path=tmp_path)
    assert "API quota:" in shown.stdout and "requests left this month" in shown.stdout
    page = tmp_path / "dash.html"
    drawn = _cli("dashboard", "--db", db, "--out", str(page), tmp_path=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    card = page.read_text().split('data-kpi="api_quota"', 1)[1][:400]
    latest = json.loads((tmp_path / "status.json").read_text())  # after the second run
    assert f">{latest['quota_left']:,}<" in card and "used " in card and " of 45" in card

    sim.set_faults(month_used=0, rate_limit_month=100_000)  # the month renews
    last = _cli(*args, tmp_path=tmp_path, **env)
    assert last.returncode == 0, last.stderr
    target = sim.now() - 86400
    truth = {t["tx_id"] for t in sim.ground_truth(start_time=target) if t["canonical"]}
    con = duckdb.connect(db, read_only=True)
    got = con.execute("SELECT tx_id FROM transactions WHERE canonical AND"
                      " burn_block_time >= to_timestamp(?)", [target]).fetchall()
    con.close()
    assert len(got) == len({r[0] for r in got}) == len(truth)
    assert {r[0] for r in got} == truth
