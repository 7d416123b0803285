"""`transactions_parquet`: the whole canonical history as Parquet, one folder per UTC day.

Read from the read snapshot (warehouse/readers.py), so it never waits for a writer; the
pool keeps it from running beside another DuckDB step all the same. Not automated: a
full rewrite on every backfill run would cost more than it gives; materialize it when a
consumer needs a fresh copy, or pass `since`/`until` for a slice.
"""

from datetime import date

import dagster as dg
from pydantic import Field

from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import WarehouseResource


class ParquetExportConfig(dg.Config):
    since: str | None = Field(default=None, description="First UTC day (default: the first)")
    until: str | None = Field(default=None, description="Last UTC day (default: the last)")
    include_orphaned: bool = Field(default=False, description="Also non-canonical rows.")


@dg.asset(
    deps=[settings.TRANSACTIONS_KEY],
    group_name="exports",
    kinds={"parquet", "duckdb"},
    pool=settings.DUCKDB_POOL,
    description="Canonical `transactions` as Parquet partitioned by UTC day of block_time "
    "(hive style: day=YYYY-MM-DD/), in $STX_PIPELINE_EXPORT_DIR.",
)
def transactions_parquet(
    context: dg.AssetExecutionContext, config: ParquetExportConfig, duckdb: WarehouseResource
) -> dg.MaterializeResult:
    from stx_pipeline.warehouse.export import data_span, export_transactions, parse_day
    from stx_pipeline.warehouse.readers import connect_readonly

    out = settings.export_path()
    con = connect_readonly(duckdb.database)
    try:
        span = data_span(con)
        if span is None:
            raise dg.Failure("`transactions` holds no canonical rows yet: backfill first")
        since: date = parse_day(config.since, "since") if config.since else span[0]
        until: date = parse_day(config.until, "until") if config.until else span[1]
        result = export_transactions(con, fmt="parquet", since=since, until=until, out=out,
                                     include_orphaned=config.include_orphaned)
    finally:
        con.close()
    context.log.info(f"exported {result.rows} rows over {len(result.rows_per_day)} days to {out}")
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(out)),
        "dagster/row_count": result.rows,
        "days": len(result.rows_per_day),
        "since": since.isoformat(),
        "until": until.isoformat(),
    })
