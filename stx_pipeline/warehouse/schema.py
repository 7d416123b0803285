"""DuckDB schema of the warehouse file and its forward migrations.

The schema version lives in the file itself so that an older file is migrated
forward on open and a foreign or newer file is refused instead of damaged.
"""

from __future__ import annotations

SCHEMA_VERSION = 5

# Column order of `transactions`; the row mapper (hiro/rows.py) produces exactly these keys.
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "tx_id",
    "tx_type",
    "tx_status",
    "sender_address",
    "sponsored",
    "sponsor_address",
    "fee_payer",
    "fee_ustx",
    "nonce",
    "block_height",
    "block_hash",
    "index_block_hash",
    "tx_index",
    "block_time",
    "burn_block_time",
    "burn_block_height",
    "canonical",
    "contract_id",
    "function_name",
    "token_recipient",
    "token_amount_ustx",
    "ingested_at",
)

# No PRIMARY KEY on tx_id, on purpose: DuckDB keeps a primary key's ART index in memory,
# which made the backfill's memory grow with the table (+114 MB per million rows) and
# slowed every insert. Uniqueness is kept by the one writer instead (an upsert that looks
# for the tx_id among rows with a nearby burn_block_time, where a transaction can only
# be), and verified by the `unique_tx_id` asset check, which can therefore really fail.
TRANSACTIONS_DDL = """
CREATE TABLE IF NOT EXISTS transactions (
    tx_id              VARCHAR NOT NULL,
    tx_type            VARCHAR NOT NULL,
    tx_status          VARCHAR NOT NULL,
    sender_address     VARCHAR NOT NULL,
    sponsored          BOOLEAN NOT NULL,
    sponsor_address    VARCHAR,
    fee_payer          VARCHAR NOT NULL,
    fee_ustx           BIGINT NOT NULL,
    nonce              BIGINT,            -- NULL only in pre-2021 answers
    block_height       BIGINT NOT NULL,
    block_hash         VARCHAR NOT NULL,
    index_block_hash   VARCHAR,           -- fork-unique; v3 answers carry it, v1 ones do not
    tx_index           INTEGER NOT NULL,
    block_time         TIMESTAMPTZ NOT NULL,
    burn_block_time    TIMESTAMPTZ NOT NULL,
    burn_block_height  BIGINT,
    canonical          BOOLEAN NOT NULL,
    contract_id        VARCHAR,
    function_name      VARCHAR,
    token_recipient    VARCHAR,
    token_amount_ustx  BIGINT,
    ingested_at        TIMESTAMPTZ NOT NULL
)
"""

# One row per closed time window on burn_block_time, [window_start, window_end] inclusive
# unix seconds. `next_offset` makes a window resumable mid-way: rows and ledger row are
# committed together, so the ledger never claims rows the table does not hold.
# A sealed window is `final` once the chain can no longer change it (it ended before the
# finality horizon of the run that last verified it, see backfill/finality.py); until then
# it is provisional and every run re-verifies it. `verified_head` is the head burn time
# that run saw.
# The same windows are filled by either source (backfill/source_v1.py, source_v3.py), so a
# sealed window means the same whoever sealed it: every transaction with its burn time in
# the window is stored once. `cursor` is where a v3 walk of the window resumes (committed
# with the rows it produced, as `next_offset` is for v1); `source` says who last wrote it.
LEDGER_COLUMNS: tuple[str, ...] = (
    "window_start", "window_end", "expected", "loaded", "rejected", "next_offset", "status",
    "fetched_at", "attempts", "pages", "final", "verified_head", "cursor", "source",
)
COVERAGE_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS coverage_ledger (
    window_start   TIMESTAMPTZ PRIMARY KEY,
    window_end     TIMESTAMPTZ NOT NULL,
    expected       BIGINT,
    loaded         BIGINT NOT NULL DEFAULT 0,
    rejected       BIGINT NOT NULL DEFAULT 0,
    next_offset    BIGINT NOT NULL DEFAULT 0,
    status         VARCHAR NOT NULL,      -- 'partial' | 'sealed'
    fetched_at     TIMESTAMPTZ NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 1,
    pages          INTEGER NOT NULL DEFAULT 0,
    final          BOOLEAN NOT NULL DEFAULT false,
    verified_head  TIMESTAMPTZ,
    cursor         VARCHAR,
    source         VARCHAR NOT NULL DEFAULT 'v1'
)
"""

REJECTED_ROWS_DDL = """
CREATE TABLE IF NOT EXISTS rejected_rows (
    raw_hash       VARCHAR PRIMARY KEY,   -- md5 of the raw JSON: a retried page is harmless
    tx_id          VARCHAR,
    burn_block_time TIMESTAMPTZ,
    reason         VARCHAR NOT NULL,
    raw_json       VARCHAR NOT NULL,
    rejected_at    TIMESTAMPTZ NOT NULL
)
"""

# One row per backfill run: the figures behind rows/s and ETA in the status report.
BACKFILL_RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "started_at", "finished_at", "target_days", "stop_reason", "pages", "requests",
    "rows_inserted", "rows_updated", "rows_orphaned", "windows_sealed", "elapsed_seconds",
    "source",
)
BACKFILL_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS backfill_runs (
    run_id          VARCHAR PRIMARY KEY,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    target_days     DOUBLE,
    stop_reason     VARCHAR,
    pages           BIGINT,
    requests        BIGINT,
    rows_inserted   BIGINT,
    rows_updated    BIGINT,
    rows_orphaned   BIGINT,
    windows_sealed  BIGINT,
    elapsed_seconds DOUBLE,
    source          VARCHAR               -- 'v1' | 'v3': the list the run ended on
)
"""

META_DDL = """
CREATE TABLE IF NOT EXISTS pipeline_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
)
"""

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)
"""

ALL_DDL: tuple[str, ...] = (
    SCHEMA_VERSION_DDL,
    TRANSACTIONS_DDL,
    COVERAGE_LEDGER_DDL,
    REJECTED_ROWS_DDL,
    BACKFILL_RUNS_DDL,
    META_DDL,
)


def schema_ddl(*, lake: bool = False) -> tuple[str, ...]:
    """The DDL for the embedded file, or for DuckLake, which has no PRIMARY KEY (nor any
    index): there the one writer's upserts (UPDATE, then INSERT where absent, in one
    transaction) keep the keys unique, as they do on the file."""
    if not lake:
        return ALL_DDL
    return tuple(ddl.replace(" PRIMARY KEY", "") for ddl in ALL_DDL)
