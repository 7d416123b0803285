"""Property-based tests: the planner never loses or double-fetches a second, and the whole
backfill ends exact on random chains under random interruptions, advances and reorgs, on
both sources (the `source` fixture)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stx_pipeline.backfill import StopReason, ensure_transaction_history
from stx_pipeline.backfill.finality import FinalityRules
from stx_pipeline.backfill.planner import (
    Window,
    WindowPlanner,
    covered_seconds,
    merge_intervals,
    uncovered,
)
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.sim import run_simulator
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent

# --------------------------------------------------------------------------- pure helpers

intervals_st = st.lists(
    st.tuples(st.integers(0, 300), st.integers(0, 60)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=12,
)


def _seconds(intervals: list[tuple[int, int]]) -> set[int]:
    return {s for a, b in intervals for s in range(a, b + 1)}


@settings(max_examples=500, deadline=None)
@given(intervals=intervals_st)
def test_merge_intervals_is_the_sorted_disjoint_union(intervals):
    merged = merge_intervals(intervals)
    assert _seconds(merged) == _seconds(intervals)
    for (_, b), (c, _) in itertools.pairwise(merged):
        assert c > b + 1, f"touching or overlapping intervals left unmerged: {merged}"
    assert all(a <= b for a, b in merged)


@settings(max_examples=500, deadline=None)
@given(lower=st.integers(0, 300), span=st.integers(-3, 200), covered=intervals_st)
def test_uncovered_is_the_exact_complement_newest_first(lower, span, covered):
    upper = lower + span
    gaps = uncovered(lower, upper, covered)
    want = set(range(lower, upper + 1)) - _seconds(covered)
    assert _seconds(gaps) == want
    assert all(lower <= a <= b <= upper for a, b in gaps)
    # newest first, disjoint and not touching (each gap is maximal)
    for (a, _), (_, d) in itertools.pairwise(gaps):
        assert d < a - 1, gaps
    assert covered_seconds(lower, upper, covered) == (
        len(set(range(lower, upper + 1)) & _seconds(covered))
    )


# --------------------------------------------------------------------------- the planner


@st.composite
def planner_cases(draw):
    """Random [lower, upper], disjoint ledger windows (sealed or partial) inside it."""
    lower = draw(st.integers(0, 10**9))
    span = draw(st.integers(0, 200_000))
    upper = lower + span
    n_cuts = draw(st.integers(0, 16))
    cuts = sorted(set(draw(st.lists(st.integers(lower, upper), min_size=n_cuts,
                                    max_size=n_cuts))))
    pairs = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    sealed: list[tuple[int, int]] = []
    partial: list[Window] = []
    for a, b in pairs:
        kind = draw(st.sampled_from(["sealed", "sealed_outside", "partial"]))
        if kind == "partial":
            partial.append(Window(a, b, next_offset=draw(st.integers(0, 500)) * 50,
                                  in_ledger=True))
        elif kind == "sealed_outside" and (a == lower or b == upper):
            # sealed windows may reach beyond the bounds (the margin below the target)
            sealed.append((a - 5000 if a == lower else a, b + 5000 if b == upper else b))
        else:
            sealed.append((a, b))
    boundary = draw(st.one_of(st.none(), st.integers(lower - 100, upper + 100)))
    density = draw(st.floats(1e-7, 50.0))
    rows_per_window = draw(st.sampled_from([1, 50, 1000, 5000]))
    min_seconds = draw(st.sampled_from([60, 600]))
    max_seconds = draw(st.sampled_from([600, 3600, 86_400]))
    return lower, upper, sealed, partial, boundary, density, rows_per_window, min_seconds, \
        max_seconds


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=planner_cases(),
    actions=st.lists(st.sampled_from(["done", "done", "done", "split", "retry"]), min_size=1,
                     max_size=40),
    totals=st.lists(st.integers(0, 200_000), min_size=1, max_size=20),
)
def test_planner_windows_tile_the_uncovered_span_newest_first(case, actions, totals):
    lower, upper, sealed, partial, boundary, density, rpw, min_s, max_s = case
    blocked = sealed + [(w.start, w.end) for w in partial]
    gaps = uncovered(lower, upper, blocked)
    planner = WindowPlanner(gaps, list(partial), density=density, rows_per_window=rpw,
                            min_seconds=min_s, max_seconds=max_s, boundary=boundary)
    target = sum(b - a + 1 for a, b in gaps) + sum(w.seconds for w in partial)
    assert planner.remaining_seconds() == target

    done: list[Window] = []
    done_seconds = 0
    last_remaining = target
    retries = splits = 0
    steps = 0
    # carved windows are >= min_seconds except the last of a gap and one cut at the boundary
    max_steps = sum((b - a + 1) // min_s + 2 for a, b in gaps) + len(partial) + 2 * 60 + 30 + 1
    while True:
        steps += 1
        assert steps <= max_steps, "the planner hands out too many windows (or never ends)"
        window = planner.next()
        if window is None:
            break
        assert window.end is not None and window.start <= window.end
        # what the queue still holds + this window + what is done == the whole uncovered span
        assert planner.remaining_seconds() + window.seconds + done_seconds == target
        action = actions[steps % len(actions)]
        # like the runner: only fresh windows split; ledger (resumed, retried) ones keep bounds
        if action == "split" and splits < 60 and not window.in_ledger and window.end > window.start:
            splits += 1
            newer, older = window.split()
            assert newer.end == window.end and older.start == window.start
            assert older.end + 1 == newer.start
            planner.push_front(newer, older)
            continue
        if action == "retry" and retries < 30:
            retries += 1
            planner.push_front(Window(window.start, window.end, 0, True))
            continue
        planner.observe(window, totals[steps % len(totals)])
        done.append(window)
        done_seconds += window.seconds
        remaining = planner.remaining_seconds()
        assert remaining == target - done_seconds
        assert remaining < last_remaining
        last_remaining = remaining

    assert planner.remaining_seconds() == 0 and len(planner) == 0
    assert planner.next() is None
    # each window within bounds, newest first, pairwise disjoint
    for w in done:
        assert lower <= w.start <= w.end <= upper, (w, lower, upper)
    for newer, older in itertools.pairwise(done):
        assert older.end < newer.start, f"not newest first / overlapping: {newer} then {older}"
    # windows + sealed == [lower, upper] exactly, with no second fetched twice
    union = merge_intervals([(w.start, w.end) for w in done] + sealed)
    clipped = [(max(a, lower), min(b, upper)) for a, b in union if b >= lower and a <= upper]
    assert clipped == [(lower, upper)]
    assert done_seconds == target
    assert sum(min(b, upper) - max(a, lower) + 1 for a, b in merge_intervals(sealed)
               if b >= lower and a <= upper) + done_seconds == upper - lower + 1
    # carved windows: never wider than max_seconds, never straddling the boundary
    resumed = {(w.start, w.end) for w in partial}
    for w in done:
        if (w.start, w.end) in resumed:
            continue
        assert w.seconds <= max_s
        if boundary is not None:
            assert not (w.start < boundary <= w.end), (w, boundary)
    # partial windows come back whole, with their offsets
    by_bounds = {(w.start, w.end): w for w in done}
    for w in partial:
        assert (w.start, w.end) in by_bounds


@settings(max_examples=200, deadline=None)
@given(density=st.floats(1e-9, 1e4), totals=st.lists(st.integers(0, 10**6), max_size=30))
def test_window_size_stays_within_limits_whatever_the_density(density, totals):
    planner = WindowPlanner([(0, 10**8)], [], density=density, rows_per_window=1000,
                            min_seconds=60, max_seconds=86_400)
    for total in totals:
        w = planner.next()
        assert w is not None
        assert 60 <= w.seconds <= 86_400 or w.start == 0
        planner.observe(w, total)
        assert planner.density > 0


# --------------------------------------------------------------------------- end to end


def _client(sim) -> HiroClient:
    return HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05)


def _safe_reorg_depth(sim, wanted: int) -> int:
    """Blocks whose burn time lies after the finality horizon: a deeper reorg is beyond the
    backfill's documented contract (final windows are re-read only by the audit)."""
    recent = sim.ground_truth(start_time=sim.now() - 6 * 3600, include_orphaned=False)
    if not recent:
        recent = sim.ground_truth(include_orphaned=False)
    head = max(t["burn_block_time"] for t in recent)
    recent = [t for t in recent if t["burn_block_time"] >= head - FinalityRules().span_seconds + 60]
    return min(wanted, len({t["block_height"] for t in recent}))


schedules = st.lists(
    st.tuples(
        st.integers(1, 25),  # max_pages of an interrupted run
        st.one_of(st.just(0), st.just(0), st.integers(1, 3 * 3600)),  # sim.advance after it
        st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, 6)),  # reorg depth
    ),
    max_size=4,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**31 - 1),
    history_days=st.sampled_from([1.0, 1.5, 2.0]),
    tx_per_day=st.sampled_from([0, 3, 40, 400, 3000, 12000]),
    max_days=st.sampled_from([0.25, 0.5, 1.0]),
    schedule=schedules,
    final_advance=st.one_of(st.just(0), st.integers(1, 3600)),
)
def test_random_chains_and_interruptions_end_exact(
    source, seed, history_days, tx_per_day, max_days, schedule, final_advance
):
    with tempfile.TemporaryDirectory(prefix="stx-prop-") as tmp, run_simulator(
        seed=seed, history_days=history_days, tx_per_day=tx_per_day, frozen=True
    ) as sim:
        db = Path(tmp) / "w.duckdb"
        status = Path(tmp) / "status.json"

        def run(**kw):
            with _client(sim) as client:
                result = ensure_transaction_history(
                    max_days=max_days, db_path=str(db), client=client,
                    status_path=str(status), **kw,
                )
            assert result.source == source, (result.source, source)
            return result

        for max_pages, advance, reorg_depth in schedule:
            result = run(max_pages=max_pages)
            assert result.error is None, result.error
            assert result.stop_reason in (StopReason.MAX_PAGES, StopReason.TARGET_REACHED,
                                          StopReason.START_OF_CHAIN), result.stop_reason
            event(f"interrupted run: {result.stop_reason.value}")
            if not result.complete:
                assert result.stop_reason is StopReason.MAX_PAGES
                assert result.pages >= max_pages
            if advance:
                sim.advance(advance)
            if reorg_depth:
                depth = _safe_reorg_depth(sim, reorg_depth)
                if depth:
                    event("reorg")
                    sim.reorg(depth)
        if final_advance:
            sim.advance(final_advance)

        final = run()
        assert final.complete, (final.stop_reason, final.error, final.missing_days)
        assert final.coverage_percent == 100.0 and final.missing_days == 0
        target = int(final.target_time.timestamp())
        assert_exact(sim, db, target)
        assert_ledger_consistent(db)
        # every orphaned row the DB kept is one the simulator orphaned, never a live one
        truth = sim.ground_truth(start_time=target)
        orphaned = {t["tx_id"] for t in truth if not t["canonical"]}
        con = duckdb.connect(str(db), read_only=True)
        try:
            stale = {r[0] for r in con.execute(
                "SELECT tx_id FROM transactions WHERE NOT canonical"
                " AND burn_block_time >= to_timestamp(?)", [target]).fetchall()}
        finally:
            con.close()
        assert stale <= orphaned
        # and a further run changes nothing
        again = run()
        assert again.complete
        assert again.rows_inserted == 0 and again.rows_orphaned == 0
        assert_exact(sim, db, int(again.target_time.timestamp()))
