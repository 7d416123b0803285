"""`stx-pipeline`: the same core as the Dagster assets, from a terminal.

Exit codes: 0 target reached / done, 75 stopped early and can resume (max pages, no
progress, rate limit exhausted, chain unsettled), 1 failure, 2 bad usage or configuration,
3 the audit found sealed history that drifted from the API (reopened for the next run). Every error
is one line on stderr that says what went wrong and what to do; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3
EXIT_RESUMABLE = 75

log = logging.getLogger("stx_pipeline")


class UsageError(Exception):
    """Bad flags or configuration: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def setup_logging(verbose: bool = False, log_file: Path | None = None) -> None:
    """The seed's `time | LEVEL | message` log (docs/architecture.md, "The seed algorithm"),
    to `$STX_PIPELINE_LOG_FILE` (`<project>/logs/backfill.log`) and the console."""
    fmt = logging.Formatter("%(asctime)s | %(levelname)s | %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(console)
    if log_file is None:
        from stx_pipeline import settings

        log_file = settings.current().log_file
    path = log_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    except OSError as exc:
        log.warning("cannot write the log file %s (%s); logging to the console only", path,
                    exc.strerror)
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stx-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bf = sub.add_parser("backfill", help="fetch history back to --days, resumably")
    bf.add_argument("--days", type=_positive_int, default=None,
                    help="target days ($STX_PIPELINE_TARGET_DAYS, else 180)")
    bf.add_argument("--max-pages", type=_positive_int, default=None,
                    help="pages per run ($STX_PIPELINE_MAX_PAGES, else 10000)")
    bf.add_argument("--force-refresh", action="store_true",
                    help="clear table and ledger once, then refetch")
    bf.add_argument("--workers", type=_positive_int, default=None,
                    help="concurrent fetchers (default: from the rate limit and latency)")
    bf.add_argument("--source", choices=("auto", "v3", "v1"), default=None,
                    help="transaction list to read ($HIRO_SOURCE, else auto: v3 where the"
                    " server serves it, else v1)")
    bf.add_argument("--until-complete", action="store_true",
                    help="repeat runs until complete, stopping on a stall (the seed's"
                    " monitor loop)")
    bf.add_argument("--max-runs", type=_positive_int, default=50)
    bf.add_argument("--wait-seconds", type=_non_negative_float, default=60.0)
    bf.add_argument("--timeout-minutes", type=_non_negative_float, default=360.0)
    bf.add_argument("--stall-timeout-seconds", type=_non_negative_float, default=300.0)
    _db_and_api(bf)

    st = sub.add_parser("status", help="backfill progress")
    st.add_argument("--days", type=_positive_int, default=None,
                    help="target days ($STX_PIPELINE_TARGET_DAYS, else 180)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--db", default=None)
    st.add_argument("--check", action="store_true",
                    help="health check for cron/systemd/uptime monitors: exit 1 when the"
                         " history is stale or incomplete, 0 when healthy")
    st.add_argument("--fresh-hours", type=_positive_float, default=None,
                    help="freshness SLA in hours ($STX_PIPELINE_FRESH_HOURS, 6)")

    au = sub.add_parser("audit", help="re-ask the API for the totals of sealed windows")
    au.add_argument("--days", type=_positive_int, default=None,
                    help="audit the last N days ($STX_PIPELINE_TARGET_DAYS, else 180)")
    au.add_argument("--sample", type=_positive_int, default=None,
                    help="check K random sealed windows (default: all)")
    au.add_argument("--json", action="store_true", help="machine-readable output")
    _db_and_api(au)

    me = sub.add_parser("metrics", help="compute the wallet metrics tables")
    me.add_argument("--db", default=None)

    da = sub.add_parser("dashboard", help="write the self-contained HTML dashboard")
    da.add_argument("--db", default=None)
    da.add_argument("--out", default=None, help="data/dashboards/wallet_metrics.html")

    si = sub.add_parser("simulate", help="run the offline Hiro simulator")
    from stx_pipeline.sim.cli_args import add_simulator_arguments

    add_simulator_arguments(si)

    de = sub.add_parser("demo", help="simulator + backfill + metrics + dashboard, offline")
    de.add_argument("--days", type=_positive_int, default=30)
    de.add_argument("--tx-per-day", type=_positive_int, default=3000)
    de.add_argument("--db", default=None)

    ex = sub.add_parser("export", help="write transactions to Parquet (by day) or CSV")
    ex.add_argument("--format", dest="fmt", default="parquet", choices=("parquet", "csv"),
                    help="parquet (default, a folder of day=YYYY-MM-DD/) or csv")
    ex.add_argument("--since", required=True, help="first UTC day, YYYY-MM-DD")
    ex.add_argument("--until", required=True, help="last UTC day, YYYY-MM-DD (inclusive)")
    ex.add_argument("--address", default=None,
                    help="only this principal's transactions (sender, sponsor or recipient)")
    ex.add_argument("--out", default=None, help="folder (parquet) or file (csv);"
                    " default data/exports/transactions_SINCE_UNTIL[.csv]")
    ex.add_argument("--include-orphaned", action="store_true",
                    help="also rows no longer on the canonical chain")
    ex.add_argument("--db", default=None)

    qu = sub.add_parser("query", help="run SQL on the read snapshot; never waits for a writer")
    qu.add_argument("sql", help='e.g. "SELECT count(*) FROM transactions"')
    qu.add_argument("--format", dest="fmt", default="table", choices=("table", "csv", "json"))
    qu.add_argument("--db", default=None)

    wh = sub.add_parser("warehouse", help="move the history between warehouses; compact a lake")
    whs = wh.add_subparsers(dest="warehouse_command", required=True, parser_class=_Parser)
    mi = whs.add_parser("migrate", help="copy a .duckdb file (or a DuckDB 2.x export folder)"
                        " into an empty warehouse, without refetching")
    mi.add_argument("--from", dest="source", required=True,
                    help="a .duckdb file written by DuckDB 1.5, or a folder exported by"
                         " deploy/export-duckdb2.sh")
    mi.add_argument("--to", dest="target", default=None,
                    help="the target warehouse, as STX_PIPELINE_WAREHOUSE takes it"
                         " (default: $STX_PIPELINE_WAREHOUSE; `duckdb` = the file at --db)")
    mi.add_argument("--db", default=None, help="the new DuckDB file when --to is duckdb")
    co = whs.add_parser("compact", help="merge a DuckLake's small Parquet files and delete"
                        " files no snapshot needs")
    co.add_argument("--keep-hours", type=_non_negative_float, default=24.0,
                    help="keep snapshots (time travel) this long (24)")

    ui = sub.add_parser("ui", help="simulator + dagster dev together")
    ui.add_argument("--port", type=_positive_int, default=3000)
    ui.add_argument("--sim-port", type=_positive_int, default=3999)
    ui.add_argument("--days", type=_positive_int, default=30)
    return parser


def _db_and_api(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="DuckDB file ($STX_PIPELINE_DB)")
    p.add_argument("--api-url", default=None, help="Hiro API base URL ($HIRO_API_URL)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from stx_pipeline import settings

    try:  # every variable, before anything starts: a typo is exit 2 in one line
        current = settings.current()
    except settings.SettingError as exc:
        print(f"stx-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(args.verbose, current.log_file)
    try:
        _settings_defaults(args, current)
        handler = {
            "backfill": cmd_backfill,
            "status": cmd_status,
            "audit": cmd_audit,
            "metrics": cmd_metrics,
            "dashboard": cmd_dashboard,
            "simulate": cmd_simulate,
            "demo": cmd_demo,
            "ui": cmd_ui,
            "export": cmd_export,
            "query": cmd_query,
            "warehouse": cmd_warehouse,
        }[args.command]
        return handler(args)
    except (UsageError, settings.SettingError) as exc:
        print(f"stx-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stx-pipeline: interrupted; committed work is kept, run again to resume",
              file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one line, no traceback
        from stx_pipeline.warehouse.db import WarehouseError

        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, WarehouseError):
            print(f"stx-pipeline: error: {text}", file=sys.stderr)
        else:
            log.debug("unexpected error", exc_info=True)
            print(f"stx-pipeline: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return EXIT_FAILURE


def _settings_defaults(args: argparse.Namespace, current: Any) -> None:
    """Flags left unset take the same settings as the Dagster launches (one target)."""
    if getattr(args, "days", 0) is None:
        args.days = current.target_days
    if getattr(args, "max_pages", 0) is None:
        args.max_pages = current.max_pages


# -- backfill ---------------------------------------------------------------------------
def _make_client(api_url: str | None) -> Any:
    from stx_pipeline.hiro.factory import client_from_env

    try:
        return client_from_env(base_url=api_url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _preflight(client: Any) -> None:
    """Unreachable or non-Stacks URLs are configuration errors (exit 2), said once."""
    import requests

    url = client.base_url.rstrip("/") + "/extended"  # the status route: any API version
    try:
        requests.get(url, timeout=(min(client.connect_timeout, 5.0), client.read_timeout),
                     headers={"Accept": "application/json"}, allow_redirects=False)
    except requests.ConnectionError:
        raise UsageError(
            f"cannot reach the Hiro API at {client.base_url}; check HIRO_API_URL / --api-url"
            " and the network"
        ) from None
    except requests.Timeout:
        pass  # slow is not misconfigured: the retries decide


def _check_db(db: str | None) -> None:
    from stx_pipeline.warehouse.db import WarehouseError, check_db_path_writable, resolve_db_path

    try:
        check_db_path_writable(resolve_db_path(db))
    except WarehouseError as exc:
        raise UsageError(str(exc)) from None


class _ProgressLine:
    """A one-line progress bar on a terminal, plain log lines every 10 s otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        eta = f"{p.eta_seconds / 60:.1f} min" if p.eta_seconds else "?"
        text = (
            f"{p.phase}: windows {p.windows_done}/{p.windows_planned} | rows +{p.rows_inserted:,}"
            f" | {p.rows_per_second:,.0f} rows/s | coverage {p.coverage_percent:.1f}%"
            f" (final {p.coverage_final_percent:.1f}%)"
            f" | ETA {eta}"
        )
        if self.tty:
            width = 30
            filled = int(width * min(p.coverage_percent, 100) / 100)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\x1b[K")
            sys.stderr.flush()
        else:
            log.info(text)

    def done(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")


def cmd_backfill(args: argparse.Namespace) -> int:
    from stx_pipeline.backfill import StopReason, ensure_transaction_history
    from stx_pipeline.backfill.until_complete import run_backfill_until_complete
    from stx_pipeline.hiro.source_choice import source_setting

    _check_db(args.db)
    try:
        source = source_setting(args.source)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    client = _make_client(args.api_url)
    _preflight(client)
    progress = _ProgressLine()
    try:
        if args.until_complete:
            outcome = run_backfill_until_complete(
                target_days=args.days,
                max_runs=args.max_runs,
                wait_seconds=args.wait_seconds,
                timeout_minutes=args.timeout_minutes,
                stall_timeout_seconds=args.stall_timeout_seconds,
                max_pages=args.max_pages,
                db_path=args.db,
                client=client,
                workers=args.workers,
                on_progress=progress,
                source=source,
            )
            progress.done()
            print(f"until-complete: {outcome.reason} after {outcome.runs} run(s)")
            if outcome.success:
                return EXIT_OK
            last = outcome.results[-1] if outcome.results else None
            if last is not None and last.stop_reason is StopReason.API_ERROR:
                return EXIT_FAILURE
            return EXIT_RESUMABLE
        result = ensure_transaction_history(
            max_days=args.days,
            force_refresh=args.force_refresh,
            max_pages=args.max_pages,
            db_path=args.db,
            client=client,
            workers=args.workers,
            on_progress=progress,
            source=source,
        )
    finally:
        from stx_pipeline.backfill.api_notice import record_api_notice

        record_api_notice(client.deprecation.to_dict())
        client.close()
    progress.done()
    print(
        f"{result.stop_reason.value}: {result.rows_total:,} rows, coverage"
        f" {result.coverage_percent:.2f}% of {args.days} days"
        f" ({result.coverage_final_percent:.2f}% final), +{result.rows_inserted:,} new,"
        f" {result.pages} pages in {result.elapsed_seconds:.1f}s (source {result.source})"
    )
    if result.stop_reason is StopReason.API_ERROR:
        print(f"stx-pipeline: error: {result.error}", file=sys.stderr)
        return EXIT_FAILURE
    if result.stop_reason is StopReason.RATE_LIMIT_EXHAUSTED:
        print(f"stx-pipeline: stopped: {result.error}", file=sys.stderr)
        return EXIT_RESUMABLE
    if result.stop_reason.resumable:
        print(f"stx-pipeline: stopped early ({result.stop_reason.value}); run again to resume",
              file=sys.stderr)
        return EXIT_RESUMABLE
    return EXIT_OK


# -- status -----------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    from stx_pipeline.backfill.status import check_backfill_progress

    progress = check_backfill_progress(args.days, args.db)
    if args.check:
        return _status_check(progress, args)
    if args.json:
        print(json.dumps(progress, indent=2, default=str))
        return EXIT_OK
    print(f"Status:    {progress['status']}")
    print(f"Rows:      {progress['rows']:,}")
    print(f"Oldest:    {progress['oldest']}")
    print(f"Newest:    {progress['newest']}")
    print(f"Coverage:  {float(progress['days_coverage'] or 0):.1f} days"
          f" (target {progress['target_days']})")
    if progress.get("source"):
        print(f"Source:    {progress['source']} (the transaction list the last run read)")
    if "windows_sealed" in progress:
        print(f"Windows:   {progress['windows_sealed']:,} sealed of"
              f" {progress.get('windows_total', 0):,} | {progress.get('percent_complete', 0)}%"
              f" sealed, {progress.get('percent_final', 0)}% final"
              f" | {progress.get('missing_days', 0)} days missing")
        print(f"Rows exp.: {progress.get('expected_rows', 0):,} expected,"
              f" {progress.get('loaded_rows', 0):,} loaded,"
              f" {progress.get('rejected_rows', 0):,} rejected")
        if progress.get("rows_per_second"):
            eta = progress.get("eta_seconds")
            print(f"Last run:  {progress['rows_per_second']} rows/s"
                  + (f", ETA {eta / 60:.1f} min" if eta else ""))
    quota = progress.get("quota") or (progress if progress.get("quota_left") is not None
                                      else None)
    if quota:
        limit = quota.get("quota_limit")
        print(f"API quota: {quota['quota_left']:,} requests left this month"
              + (f" (used {quota.get('quota_used') or 0:,} of {limit:,})" if limit else "")
              + (f", renews {quota['quota_reset_at']}" if quota.get("quota_reset_at") else ""))
    if progress.get("note"):
        print(f"Note:      {progress['note']}")
    from stx_pipeline.backfill.api_notice import api_notice_line

    notice = api_notice_line()
    if notice:
        print(f"API:       {notice}")
    print(f"Complete:  {progress['complete']}")
    return EXIT_OK


def _status_check(progress: dict[str, Any], args: argparse.Namespace) -> int:
    """`status --check`: one line per problem on stdout, exit 1 when there is any."""
    from stx_pipeline import health

    fresh = health.freshness(progress.get("newest"), args.fresh_hours)
    problems = health.health_problems(progress, fresh)
    if args.json:
        print(json.dumps({"healthy": not problems, "problems": problems,
                          "newest": progress.get("newest"), "lag_hours": fresh.lag_hours,
                          "fresh_hours": fresh.sla_hours, "complete": progress.get("complete"),
                          "missing_days": progress.get("missing_days")}, default=str))
    elif problems:
        for problem in problems:
            print(f"UNHEALTHY: {problem}")
    else:
        print(f"OK: complete ({progress.get('target_days')} days), {fresh.describe()}")
    return EXIT_FAILURE if problems else EXIT_OK


# -- audit ------------------------------------------------------------------------------
def cmd_audit(args: argparse.Namespace) -> int:
    from stx_pipeline.backfill.audit import audit_sealed_history
    from stx_pipeline.warehouse.db import resolve_db_path, warehouse_exists

    if not warehouse_exists(args.db):
        raise UsageError(f"no database at {resolve_db_path(args.db)}; run a backfill first")
    client = _make_client(args.api_url)
    _preflight(client)
    try:
        result = audit_sealed_history(args.days, args.sample, db_path=args.db, client=client)
    finally:
        client.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result.summary())
        for d in result.drifted:
            print(f"  {d.window_start.isoformat()} .. {d.window_end.isoformat()}"
                  f" {'final' if d.final else 'provisional'}: {d.reason} ({d.rows:+d} rows)")
    return EXIT_OK if result.ok else EXIT_DRIFT


# -- metrics and dashboard --------------------------------------------------------------
def cmd_metrics(args: argparse.Namespace) -> int:
    from stx_pipeline.metrics import build_wallet_metrics
    from stx_pipeline.warehouse.db import open_db

    con = open_db(args.db)
    try:
        summary = build_wallet_metrics(con)
    finally:
        con.close()
    print(summary.to_markdown())
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from stx_pipeline.dashboard import build_dashboard, default_dashboard_path
    from stx_pipeline.warehouse.db import open_db

    out = Path(args.out) if args.out else default_dashboard_path()
    con = open_db(args.db)
    try:
        result = build_dashboard(con, out)
    finally:
        con.close()
    print(f"dashboard written: {Path(result.path).resolve()}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from stx_pipeline.warehouse.export import (
        ExportError,
        check_address,
        export_transactions,
        parse_day,
    )
    from stx_pipeline.warehouse.readers import connect_readonly

    try:
        since = parse_day(args.since, "--since")
        until = parse_day(args.until, "--until")
        if args.address:
            check_address(args.address)
        con = connect_readonly(args.db)
        try:
            result = export_transactions(
                con, fmt=args.fmt, since=since, until=until,
                out=Path(args.out) if args.out else None, address=args.address,
                include_orphaned=args.include_orphaned)
        finally:
            con.close()
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    print(f"exported {result.rows:,} rows over {len(result.rows_per_day)} days"
          f" ({result.fmt}) to {result.path}")
    return EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from stx_pipeline.warehouse.readers import connect_readonly

    con = connect_readonly(args.db)
    try:
        cur = con.execute(args.sql)
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchall() if columns else []
    except duckdb.Error as exc:
        text = str(exc).strip().splitlines()[0]
        raise UsageError(f"the query failed: {text}") from None
    finally:
        con.close()
    _print_rows(columns, rows, args.fmt)
    return EXIT_OK


def cmd_warehouse(args: argparse.Namespace) -> int:
    from stx_pipeline.warehouse.db import current_warehouse
    from stx_pipeline.warehouse.setting import WarehouseSettingError, parse_warehouse

    if args.warehouse_command == "migrate":
        from stx_pipeline.warehouse.migrate import migrate

        try:
            target = parse_warehouse(args.target) if args.target else current_warehouse()
        except WarehouseSettingError as exc:
            raise UsageError(str(exc).replace("STX_PIPELINE_WAREHOUSE=", "--to ")) from None
        if not target.is_lake:
            _check_db(args.db)
        print(migrate(args.source, target, db_path=args.db).summary())
        print("next: `stx-pipeline metrics` rebuilds the metrics tables in the new warehouse")
        return EXIT_OK
    from stx_pipeline.warehouse.compaction import compact_warehouse

    done = compact_warehouse(keep_snapshots_hours=args.keep_hours)
    if done is None:
        raise UsageError("compaction is for a DuckLake warehouse (STX_PIPELINE_WAREHOUSE="
                         "ducklake:...); the DuckDB file compacts itself on checkpoint")
    print(f"compacted: {done['files_before']} -> {done['files_after']} data files"
          f" in {done['seconds']:.1f}s")
    return EXIT_OK


def _print_rows(columns: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    elif fmt == "csv":
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
    else:
        cells = [[("" if v is None else str(v)) for v in r] for r in rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


# -- simulator, demo, ui ----------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from stx_pipeline.sim.cli_args import config_from_args
    from stx_pipeline.sim.server import serve_forever

    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    serve_forever(config, args.port)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline offline: simulator, backfill, metrics, dashboard."""
    from stx_pipeline import settings
    from stx_pipeline.backfill import ensure_transaction_history
    from stx_pipeline.backfill.status import check_backfill_progress
    from stx_pipeline.dashboard import build_dashboard, default_dashboard_path
    from stx_pipeline.hiro.client import HiroClient
    from stx_pipeline.metrics import build_wallet_metrics
    from stx_pipeline.sim import run_simulator
    from stx_pipeline.warehouse.db import open_db, resolve_db_path

    _check_db(args.db)
    db = resolve_db_path(args.db)
    print(f"starting the Hiro simulator ({args.days + 2} days of history,"
          f" ~{args.tx_per_day:,} tx/day)...")
    with run_simulator(seed=42, history_days=args.days + 2, tx_per_day=args.tx_per_day) as sim:
        print(f"simulator at {sim.url}")
        client = HiroClient(sim.url, requests_per_minute=None, backoff_initial=0.1,
                            backoff_max=1.0)
        progress = _ProgressLine()
        try:
            result = ensure_transaction_history(
                max_days=args.days, db_path=str(db), client=client, on_progress=progress
            )
        finally:
            client.close()
        progress.done()
        target = int(result.target_time.timestamp()) if result.target_time else 0
        truth = {t["tx_id"] for t in sim.ground_truth(start_time=target) if t["canonical"]}
    con = open_db(db, read_only=True)
    try:
        loaded = [r[0] for r in con.execute(
            "SELECT tx_id FROM transactions WHERE canonical AND burn_block_time >= to_timestamp(?)",
            [target]).fetchall()]
    finally:
        con.close()
    exact = len(loaded) == len(set(loaded)) and set(loaded) == truth
    print(f"backfill: {result.stop_reason.value}, {result.rows_total:,} rows,"
          f" {result.pages} pages, {result.elapsed_seconds:.1f}s")
    print(f"check against the simulator's ground truth since the target: {len(loaded):,} loaded,"
          f" {len(truth):,} expected -> {'EXACT' if exact else 'MISMATCH'}")
    status = check_backfill_progress(args.days, db)
    print(f"status: {status['status']}, {status.get('percent_complete', 0)}% of windows sealed,"
          f" {status['days_coverage']:.1f} days of data")
    con = open_db(db)
    try:
        summary = build_wallet_metrics(con)
        dash = build_dashboard(con, default_dashboard_path())
    finally:
        con.close()
    print(summary.to_markdown())
    print(f"database:  {db.resolve()}")
    print(f"status:    {settings.current().status_file}")
    print(f"log:       {settings.current().log_file}")
    print(f"dashboard: {Path(dash.path).resolve()}")
    return EXIT_OK if result.complete else EXIT_RESUMABLE


def cmd_ui(args: argparse.Namespace) -> int:
    from stx_pipeline.devserver import run_ui

    return run_ui(port=args.port, sim_port=args.sim_port, days=args.days)


if __name__ == "__main__":
    raise SystemExit(main())
