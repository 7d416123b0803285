"""The SQL behind the wallet metrics (DuckDB dialect).

Everything is computed inside DuckDB so the Python side only ever sees aggregates,
however large `transactions` grows. Statements run in order inside one transaction:
first a few connection-local staging tables (`_mx_*`, dropped before commit), then
one `CREATE OR REPLACE TABLE metrics_*` per user-visible table.

Definitions are documented in docs/metrics.md; the comments here say how, not what.
"""

from __future__ import annotations

from stx_pipeline.backfill.coverage import sealed_islands_sql, seconds_per_day_sql

# Transaction types produced by the chain itself, never by a wallet (design §6).
SYSTEM_TX_TYPES: tuple[str, ...] = ("coinbase", "tenure_change")

# Day offsets of the retention curve and horizons of value per wallet (days).
RETENTION_DAYS: tuple[int, ...] = (1, 7, 14, 30, 60, 90)
WALTV_DAYS: tuple[int, ...] = (15, 30, 60, 90, 180)

# Funnel thresholds over a wallet's first 30 days.
FUNNEL_WINDOW_DAYS = 30
FUNNEL_ACTIVE_MIN_TXS = 3
FUNNEL_VALUE_MIN_FEES_USTX = 1_000_000

USTX_PER_STX = 1_000_000

# Bumped whenever a metrics table changes shape or meaning: readers (the dashboard)
# rebuild tables written by an older version instead of misreading them.
METRICS_VERSION = 2  # 2: metrics_backfill_health.final_seconds/final_pct

# Top contracts kept: union of the top N by calls and the top N by distinct callers.
TOP_CONTRACTS_N = 100

METRICS_TABLES: tuple[str, ...] = (
    "metrics_run",
    "metrics_daily_activity",
    "metrics_activity_mix",
    "metrics_fee_payer_daily",
    "metrics_cohort_retention",
    "metrics_monthly_growth",
    "metrics_wallet_value",
    "metrics_funnel",
    "metrics_top_contracts",
    "metrics_backfill_health",
)

_SYSTEM_LIST = ", ".join(f"'{t}'" for t in SYSTEM_TX_TYPES)


def _staging(as_of_literal: str) -> list[str]:
    """Staging tables shared by several metrics; `as_of_literal` is a SQL TIMESTAMPTZ or NULL."""
    return [
        # Canonical rows only (orphaned rows are history, not activity), cut at as_of.
        f"""
        CREATE OR REPLACE TEMP TABLE _mx_tx AS
        SELECT tx_type, tx_status, sender_address AS sender, fee_payer, sponsored,
               fee_ustx, nonce, contract_id,
               (block_time AT TIME ZONE 'UTC')::DATE AS day,
               tx_type IN ({_SYSTEM_LIST}) AS is_system
        FROM transactions
        WHERE canonical AND ({as_of_literal} IS NULL OR block_time <= {as_of_literal})
        """,
        # A view, not a copy: at 10M rows a copy of the wallet rows cost GBs of memory.
        "CREATE OR REPLACE TEMP VIEW _mx_wtx AS SELECT * FROM _mx_tx WHERE NOT is_system",
        # One row per wallet and day it sent something: the basis of every activity count.
        """
        CREATE OR REPLACE TEMP TABLE _mx_wallet_days AS
        SELECT sender, day, count(*) AS tx_count FROM _mx_wtx GROUP BY sender, day
        """,
        # Each wallet-day with the wallet's next active day: the basis of WAU/MAU.
        """
        CREATE OR REPLACE TEMP TABLE _mx_wallet_days_next AS
        SELECT day, lead(day) OVER (PARTITION BY sender ORDER BY day) AS nxt FROM _mx_wallet_days
        """,
        # Activation = the day of the wallet's nonce-0 transaction (its true first).
        """
        CREATE OR REPLACE TEMP TABLE _mx_act AS
        SELECT sender, min(day) AS act_day FROM _mx_wtx WHERE nonce = 0 GROUP BY sender
        """,
        # Fees by the wallet that paid them (sponsor if sponsored, else sender).
        """
        CREATE OR REPLACE TEMP TABLE _mx_payer_days AS
        SELECT fee_payer AS wallet, day, count(*) AS tx_count,
               count(*) FILTER (WHERE sponsored) AS sponsored_tx_count,
               sum(fee_ustx)::BIGINT AS fees_ustx
        FROM _mx_wtx GROUP BY fee_payer, day
        """,
        f"""
        CREATE OR REPLACE TEMP TABLE _mx_ledger AS
        SELECT * FROM coverage_ledger
        WHERE {as_of_literal} IS NULL OR window_start <= {as_of_literal}
        """,
        # Sealed windows merged into islands (backfill/coverage.py decides coverage).
        f"CREATE OR REPLACE TEMP TABLE _mx_islands AS"
        f" {sealed_islands_sql('_mx_ledger', as_of_literal)}",
        # Calendar: every UTC day from the first to the last day seen in data or ledger,
        # so a day without rows is a visible zero (and partial), not a missing point.
        f"""
        CREATE OR REPLACE TEMP TABLE _mx_days AS
        WITH b AS (
            SELECT least((SELECT min(day) FROM _mx_tx),
                         (SELECT min((window_start AT TIME ZONE 'UTC')::DATE)
                          FROM _mx_ledger)) AS d0,
                   least(greatest((SELECT max(day) FROM _mx_tx),
                                  (SELECT max((window_end AT TIME ZONE 'UTC')::DATE)
                                   FROM _mx_ledger)),
                         ({as_of_literal} AT TIME ZONE 'UTC')::DATE) AS d1
        )
        SELECT t.d::DATE AS day FROM b, range(b.d0, b.d1 + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d)
        """,
        # Coverage per day. With sealed windows in the ledger a day is complete only when
        # the islands cover all 86 400 s of it. Without any (rows loaded by other means)
        # coverage is unknown: only the first and last day of data are assumed partial.
        f"""
        CREATE OR REPLACE TEMP TABLE _mx_cov AS
        WITH c AS ({seconds_per_day_sql('_mx_days', '_mx_islands', '_mx_ledger')}
        ), mode AS (
            SELECT (SELECT count(*) FROM _mx_islands) > 0 AS has_ledger,
                   (SELECT min(day) FROM _mx_tx) AS first_data_day,
                   (SELECT max(day) FROM _mx_tx) AS last_data_day
        )
        SELECT c.day, c.covered_seconds, c.final_seconds,
               CASE WHEN mode.has_ledger THEN c.covered_seconds < 86400
                    ELSE c.day <= mode.first_data_day OR c.day >= mode.last_data_day
                         OR mode.first_data_day IS NULL
               END AS partial
        FROM c, mode
        """,
        """
        CREATE OR REPLACE TEMP TABLE _mx_info AS
        SELECT (SELECT min(day) FROM _mx_days) AS first_day,
               (SELECT max(day) FROM _mx_days) AS last_day,
               (SELECT max(day) FROM _mx_cov WHERE NOT partial) AS last_complete_day,
               CASE WHEN (SELECT count(*) FROM _mx_islands) > 0 THEN 'ledger' ELSE 'data' END
                   AS coverage_mode
        """,
    ]


def _trailing(n_days: int, name: str) -> str:
    """Distinct wallets active in the trailing `n_days` calendar days, for every day.

    A wallet is counted on day d iff its latest active day <= d is within n - 1 days.
    So each sender-day row counts on [day, min(day + n, next active day) - 1]; these
    spans are disjoint per wallet, and the count is a running sum of +1/-1 events:
    exact, linear in wallet-days, and it needs only the one `lead` of `_mx_wallet_days_next`
    (a window over wallet-days is the expensive part: share it, don't redo it).
    """
    return f"""
        {name}_ev AS (
            SELECT day, sum(delta) AS delta FROM (
                SELECT day, 1 AS delta FROM _mx_wallet_days_next
                UNION ALL
                SELECT least(day + {n_days}, coalesce(nxt, day + {n_days})) AS day, -1 AS delta
                FROM _mx_wallet_days_next
            ) GROUP BY day
        ), {name} AS (
            SELECT d.day, sum(coalesce(ev.delta, 0))
                              OVER (ORDER BY d.day ROWS UNBOUNDED PRECEDING)::BIGINT AS n
            FROM _mx_days d LEFT JOIN {name}_ev ev USING (day)
        )"""


def _retention_columns() -> str:
    cols = []
    for d in RETENTION_DAYS:
        matured = f"cohort_end + {d} <= (SELECT last_complete_day FROM _mx_info)"
        cols.append(
            f"CASE WHEN {matured} THEN count(DISTINCT r.sender) FILTER (WHERE r.k = {d}) END"
            f"::BIGINT AS d{d}_active"
        )
        cols.append(
            f"CASE WHEN {matured} THEN count(DISTINCT r.sender) FILTER (WHERE r.k = {d})"
            f" / count(DISTINCT m.sender) END AS d{d}_retention"
        )
    return ",\n               ".join(cols)


def _waltv_columns() -> str:
    cols = []
    for n in WALTV_DAYS:
        matured = f"cohort_end + {n - 1} <= (SELECT last_complete_day FROM _mx_info)"
        cols.append(
            f"CASE WHEN {matured} THEN avg(f{n}) / {USTX_PER_STX} END AS waltv_{n}_stx"
        )
    return ",\n               ".join(cols)


def _cohort_members() -> str:
    """Activated wallets tagged with their day and ISO-week (Monday) cohorts."""
    return """
        members AS (
            SELECT 'day' AS cohort_grain, act_day AS cohort_start, act_day AS cohort_end,
                   sender, act_day FROM _mx_act
            UNION ALL
            SELECT 'week', date_trunc('week', act_day)::DATE,
                   date_trunc('week', act_day)::DATE + 6, sender, act_day FROM _mx_act
        )"""


def metric_statements() -> list[tuple[str, str]]:
    """(table, CREATE OR REPLACE statement) for each user-visible metrics table, in order."""
    n_ret = ", ".join(str(d) for d in RETENTION_DAYS)
    waltv_fees = ",\n                   ".join(
        f"coalesce(sum(p.fees_ustx) FILTER (WHERE p.day < m.act_day + {n}), 0) AS f{n}"
        for n in WALTV_DAYS
    )
    max_n = max(WALTV_DAYS)
    fw = FUNNEL_WINDOW_DAYS
    stmts: list[tuple[str, str]] = []

    stmts.append((
        "metrics_daily_activity",
        f"""
        CREATE OR REPLACE TABLE metrics_daily_activity AS
        WITH agg_tx AS (
            SELECT day,
                   count(DISTINCT sender) FILTER (WHERE nonce = 0) AS new_wallets,
                   count(*) AS tx_total,
                   count(*) FILTER (WHERE tx_status = 'success') AS tx_success,
                   count(*) FILTER (WHERE tx_status <> 'success') AS tx_failed,
                   sum(fee_ustx) AS fees_ustx,
                   median(fee_ustx) AS median_fee_ustx,
                   count(*) FILTER (WHERE sponsored) AS sponsored_tx,
                   coalesce(sum(fee_ustx) FILTER (WHERE sponsored), 0) AS sponsored_fees_ustx
            FROM _mx_wtx GROUP BY day
        ), agg AS (
            -- distinct senders / fee payers per day, counted from the wallet-day tables
            -- already built (a count(DISTINCT) over every transaction was the slow part)
            SELECT agg_tx.*, dau.n AS dau, payers.n AS fee_payers
            FROM agg_tx
            LEFT JOIN (SELECT day, count(*) AS n FROM _mx_wallet_days GROUP BY day) dau USING (day)
            LEFT JOIN (SELECT day, count(*) AS n FROM _mx_payer_days GROUP BY day) payers
                USING (day)
        ), sys AS (
            SELECT day, count(*) AS system_tx FROM _mx_tx WHERE is_system GROUP BY day
        ), fs AS (
            SELECT first_day AS day, count(*) AS first_seen_wallets
            FROM (SELECT sender, min(day) AS first_day FROM _mx_wallet_days GROUP BY sender)
            GROUP BY first_day
        ), {_trailing(7, "wau")}, {_trailing(30, "mau")}
        SELECT d.day,
               coalesce(agg.dau, 0)::BIGINT AS dau,
               coalesce(agg.new_wallets, 0)::BIGINT AS new_wallets,
               coalesce(fs.first_seen_wallets, 0)::BIGINT AS first_seen_wallets,
               wau.n AS wau,
               mau.n AS mau,
               coalesce(agg.dau, 0) / nullif(mau.n, 0) AS stickiness,
               coalesce(agg.tx_total, 0)::BIGINT AS tx_total,
               coalesce(agg.tx_success, 0)::BIGINT AS tx_success,
               coalesce(agg.tx_failed, 0)::BIGINT AS tx_failed,
               agg.tx_success / nullif(agg.tx_total, 0) AS success_rate,
               coalesce(agg.fees_ustx, 0)::BIGINT AS fees_ustx,
               coalesce(agg.fees_ustx, 0) / {USTX_PER_STX} AS fees_stx,
               agg.fees_ustx / nullif(agg.dau, 0) / {USTX_PER_STX} AS fee_per_active_wallet_stx,
               agg.median_fee_ustx AS median_fee_ustx,
               coalesce(agg.fee_payers, 0)::BIGINT AS fee_payers,
               coalesce(agg.sponsored_tx, 0)::BIGINT AS sponsored_tx,
               coalesce(agg.sponsored_fees_ustx, 0)::BIGINT AS sponsored_fees_ustx,
               coalesce(sys.system_tx, 0)::BIGINT AS system_tx,
               cov.partial,
               -- trailing windows that reach before the data or over a partial day undercount
               d.day - 6 >= i.first_day AND sum(cov.partial::INT) OVER (
                   ORDER BY d.day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) = 0 AS wau_complete,
               d.day - 29 >= i.first_day AND sum(cov.partial::INT) OVER (
                   ORDER BY d.day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW) = 0 AS mau_complete
        FROM _mx_days d
        CROSS JOIN _mx_info i
        JOIN _mx_cov cov USING (day)
        LEFT JOIN agg USING (day)
        LEFT JOIN sys USING (day)
        LEFT JOIN fs USING (day)
        LEFT JOIN wau USING (day)
        LEFT JOIN mau USING (day)
        ORDER BY d.day
        """,
    ))

    stmts.append((
        "metrics_activity_mix",
        f"""
        CREATE OR REPLACE TABLE metrics_activity_mix AS
        SELECT t.day, t.tx_type, t.tx_status, t.is_system,
               count(*)::BIGINT AS tx_count,
               sum(t.fee_ustx)::BIGINT AS fees_ustx,
               sum(t.fee_ustx) / {USTX_PER_STX} AS fees_stx,
               cov.partial
        FROM _mx_tx t JOIN _mx_cov cov USING (day)
        GROUP BY t.day, t.tx_type, t.tx_status, t.is_system, cov.partial
        ORDER BY t.day, t.tx_type, t.tx_status
        """,
    ))

    stmts.append((
        "metrics_fee_payer_daily",
        f"""
        CREATE OR REPLACE TABLE metrics_fee_payer_daily AS
        SELECT p.day, p.wallet AS fee_payer, p.tx_count::BIGINT AS tx_count,
               p.sponsored_tx_count::BIGINT AS sponsored_tx_count,
               p.fees_ustx, p.fees_ustx / {USTX_PER_STX} AS fees_stx
        FROM _mx_payer_days p
        ORDER BY p.day, p.fees_ustx DESC, p.wallet
        """,
    ))

    stmts.append((
        "metrics_cohort_retention",
        f"""
        CREATE OR REPLACE TABLE metrics_cohort_retention AS
        WITH {_cohort_members()}, r AS (
            SELECT wd.sender, wd.day - a.act_day AS k
            FROM _mx_act a JOIN _mx_wallet_days wd USING (sender)
            WHERE wd.day - a.act_day IN ({n_ret})
        )
        SELECT m.cohort_grain, m.cohort_start, m.cohort_end,
               count(DISTINCT m.sender)::BIGINT AS cohort_size,
               {_retention_columns()}
        FROM members m LEFT JOIN r ON r.sender = m.sender
        GROUP BY m.cohort_grain, m.cohort_start, m.cohort_end
        ORDER BY m.cohort_grain, m.cohort_start
        """,
    ))

    stmts.append((
        "metrics_monthly_growth",
        """
        CREATE OR REPLACE TABLE metrics_monthly_growth AS
        WITH ma AS (
            SELECT DISTINCT sender, date_trunc('month', day)::DATE AS month FROM _mx_wallet_days
        ), months AS (
            SELECT date_trunc('month', day)::DATE AS month,
                   bool_or(partial) AS any_partial_day,
                   min(day) AS first_day, max(day) AS last_day
            FROM _mx_cov GROUP BY 1
        ), first_month AS (
            SELECT min(month) AS first_month FROM months
        ), cur AS (
            SELECT c.month, c.sender,
                   p.sender IS NOT NULL AS in_prev,
                   coalesce(date_trunc('month', a.act_day)::DATE = c.month, false) AS is_new
            FROM ma c
            LEFT JOIN ma p ON p.sender = c.sender
                          AND p.month = (c.month - INTERVAL 1 MONTH)::DATE
            LEFT JOIN _mx_act a ON a.sender = c.sender
        ), agg AS (
            SELECT month, count(*) AS active,
                   count(*) FILTER (WHERE is_new) AS new,
                   count(*) FILTER (WHERE NOT is_new AND in_prev) AS retained,
                   count(*) FILTER (WHERE NOT is_new AND NOT in_prev) AS resurrected
            FROM cur GROUP BY month
        ), churn AS (
            SELECT (p.month + INTERVAL 1 MONTH)::DATE AS month, count(*) AS churned
            FROM ma p
            LEFT JOIN ma c ON c.sender = p.sender
                          AND c.month = (p.month + INTERVAL 1 MONTH)::DATE
            WHERE c.sender IS NULL
            GROUP BY 1
        )
        SELECT mo.month,
               coalesce(agg.active, 0)::BIGINT AS active,
               coalesce(agg.new, 0)::BIGINT AS new,
               CASE WHEN mo.month > fm.first_month THEN coalesce(agg.retained, 0) END::BIGINT
                   AS retained,
               CASE WHEN mo.month > fm.first_month THEN coalesce(agg.resurrected, 0) END::BIGINT
                   AS resurrected,
               CASE WHEN mo.month > fm.first_month THEN coalesce(churn.churned, 0) END::BIGINT
                   AS churned,
               CASE WHEN mo.month > fm.first_month THEN
                   (coalesce(agg.new, 0) + coalesce(agg.resurrected, 0))
                   / nullif(coalesce(churn.churned, 0), 0) END AS quick_ratio,
               mo.any_partial_day
                   OR mo.first_day > mo.month
                   OR mo.last_day < (mo.month + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE
                   AS partial
        FROM months mo CROSS JOIN first_month fm
        LEFT JOIN agg ON agg.month = mo.month
        LEFT JOIN churn ON churn.month = mo.month
        ORDER BY mo.month
        """,
    ))

    stmts.append((
        "metrics_wallet_value",
        f"""
        CREATE OR REPLACE TABLE metrics_wallet_value AS
        WITH {_cohort_members()}, per_wallet AS (
            SELECT m.cohort_grain, m.cohort_start, m.cohort_end, m.sender,
                   {waltv_fees}
            FROM members m
            LEFT JOIN _mx_payer_days p ON p.wallet = m.sender AND p.day >= m.act_day
                               AND p.day < m.act_day + {max_n}
            GROUP BY m.cohort_grain, m.cohort_start, m.cohort_end, m.sender, m.act_day
        )
        SELECT cohort_grain, cohort_start, cohort_end, count(*)::BIGINT AS cohort_size,
               {_waltv_columns()}
        FROM per_wallet
        GROUP BY cohort_grain, cohort_start, cohort_end
        ORDER BY cohort_grain, cohort_start
        """,
    ))

    stmts.append((
        "metrics_funnel",
        f"""
        CREATE OR REPLACE TABLE metrics_funnel AS
        WITH tx AS (
            SELECT a.sender, sum(wd.tx_count) AS n
            FROM _mx_act a JOIN _mx_wallet_days wd ON wd.sender = a.sender
                AND wd.day >= a.act_day AND wd.day < a.act_day + {fw}
            GROUP BY a.sender
        ), fee AS (
            SELECT a.sender, sum(p.fees_ustx) AS f
            FROM _mx_act a JOIN _mx_payer_days p ON p.wallet = a.sender
                AND p.day >= a.act_day AND p.day < a.act_day + {fw}
            GROUP BY a.sender
        ), w AS (
            SELECT date_trunc('month', a.act_day)::DATE AS month,
                   a.act_day + {fw - 1} <= (SELECT last_complete_day FROM _mx_info) AS matured,
                   coalesce(tx.n, 0) >= {FUNNEL_ACTIVE_MIN_TXS} AS is_active,
                   coalesce(fee.f, 0) >= {FUNNEL_VALUE_MIN_FEES_USTX} AS pays
            FROM _mx_act a LEFT JOIN tx USING (sender) LEFT JOIN fee USING (sender)
        )
        SELECT month,
               count(*)::BIGINT AS activated,
               count(*) FILTER (WHERE matured)::BIGINT AS matured,
               count(*) FILTER (WHERE matured AND is_active)::BIGINT AS active,
               count(*) FILTER (WHERE matured AND is_active AND pays)::BIGINT AS value,
               count(*) FILTER (WHERE matured AND is_active)
                   / nullif(count(*) FILTER (WHERE matured), 0) AS active_rate,
               count(*) FILTER (WHERE matured AND is_active AND pays)
                   / nullif(count(*) FILTER (WHERE matured), 0) AS value_rate
        FROM w GROUP BY month ORDER BY month
        """,
    ))

    stmts.append((
        "metrics_top_contracts",
        f"""
        CREATE OR REPLACE TABLE metrics_top_contracts AS
        SELECT contract_id,
               count(*)::BIGINT AS calls,
               count(DISTINCT sender)::BIGINT AS distinct_callers,
               count(*) FILTER (WHERE tx_status = 'success')::BIGINT AS success_calls,
               count(*) FILTER (WHERE tx_status <> 'success')::BIGINT AS failed_calls,
               sum(fee_ustx) / {USTX_PER_STX} AS fees_stx,
               min(day) AS first_day, max(day) AS last_day,
               row_number() OVER (ORDER BY count(*) DESC, contract_id) AS rank_by_calls,
               row_number() OVER (ORDER BY count(DISTINCT sender) DESC, contract_id)
                   AS rank_by_callers
        FROM _mx_wtx
        WHERE tx_type = 'contract_call' AND contract_id IS NOT NULL
        GROUP BY contract_id
        QUALIFY rank_by_calls <= {TOP_CONTRACTS_N} OR rank_by_callers <= {TOP_CONTRACTS_N}
        ORDER BY rank_by_calls
        """,
    ))

    stmts.append((
        "metrics_backfill_health",
        """
        CREATE OR REPLACE TABLE metrics_backfill_health AS
        WITH l AS (
            SELECT (window_start AT TIME ZONE 'UTC')::DATE AS day,
                   count(*) AS windows,
                   count(*) FILTER (WHERE status = 'sealed') AS sealed_windows,
                   sum(expected) AS expected_rows,
                   sum(loaded) AS loaded_rows
            FROM _mx_ledger GROUP BY 1
        ), t AS (
            SELECT day, count(*) AS canonical_rows FROM _mx_tx GROUP BY day
        )
        SELECT d.day,
               coalesce(l.windows, 0)::BIGINT AS windows,
               coalesce(l.sealed_windows, 0)::BIGINT AS sealed_windows,
               l.expected_rows::BIGINT AS expected_rows,
               coalesce(l.loaded_rows, 0)::BIGINT AS loaded_rows,
               100.0 * l.loaded_rows / nullif(l.expected_rows, 0) AS loaded_pct,
               cov.covered_seconds,
               100.0 * cov.covered_seconds / 86400 AS coverage_pct,
               cov.final_seconds,
               100.0 * cov.final_seconds / 86400 AS final_pct,
               coalesce(t.canonical_rows, 0)::BIGINT AS canonical_rows,
               cov.partial
        FROM _mx_days d
        JOIN _mx_cov cov USING (day)
        LEFT JOIN l USING (day)
        LEFT JOIN t USING (day)
        ORDER BY d.day
        """,
    ))

    stmts.append((
        "metrics_run",
        f"""
        CREATE OR REPLACE TABLE metrics_run AS
        SELECT now() AS built_at,
               {METRICS_VERSION} AS metrics_version,
               CAST(? AS TIMESTAMPTZ) AS as_of,
               i.first_day, i.last_day, i.last_complete_day, i.coverage_mode,
               (SELECT count(*) FROM _mx_tx)::BIGINT AS canonical_rows,
               (SELECT count(*) FROM _mx_wtx)::BIGINT AS wallet_txs,
               (SELECT count(*) FROM _mx_tx WHERE is_system)::BIGINT AS system_txs,
               (SELECT count(*) FROM transactions WHERE NOT canonical)::BIGINT
                   AS orphaned_rows_ignored,
               (SELECT count(DISTINCT sender) FROM _mx_wallet_days)::BIGINT AS wallets,
               (SELECT count(*) FROM _mx_act)::BIGINT AS activated_wallets,
               (SELECT count(*) FROM _mx_cov WHERE partial)::BIGINT AS partial_days
        FROM _mx_info i
        """,
    ))
    return stmts


def staging_statements(as_of_literal: str) -> list[str]:
    """Staging statements for a given as_of (a SQL TIMESTAMPTZ expression, possibly NULL)."""
    return _staging(as_of_literal)


STAGING_VIEWS: tuple[str, ...] = ("_mx_wtx",)
STAGING_TABLES: tuple[str, ...] = (
    "_mx_tx", "_mx_wallet_days", "_mx_wallet_days_next", "_mx_act", "_mx_payer_days",
    "_mx_ledger", "_mx_islands", "_mx_days", "_mx_cov", "_mx_info",
)
