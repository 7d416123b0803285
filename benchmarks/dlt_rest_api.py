"""A plain dlt `rest_api` pipeline over the simulator: the comparison point for throughput.

Run by bench_backfill.py with the Python of a separate venv that has dlt (dlt is not a
project dependency):

    python3 -m venv .venv-dlt && .venv-dlt/bin/pip install "dlt[duckdb]"

What "plain" means: dlt's documented offset paginator over `/extended/v1/tx` for the
benchmark's time range (`start_time`/`end_time`, ascending burn time, 50 per page,
`total` from the body), written to DuckDB with dlt's defaults (nested fields normalised
into child tables, append). It prints one JSON line: wall seconds, rows, distinct tx_ids.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--start-time", type=int, required=True)
    ap.add_argument("--end-time", type=int, required=True)
    args = ap.parse_args()

    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {"base_url": args.url + "/"},
        "resources": [{
            "name": "transactions",
            "endpoint": {
                "path": "extended/v1/tx",
                "params": {"start_time": args.start_time, "end_time": args.end_time,
                           "order": "asc", "sort_by": "burn_block_time"},
                "data_selector": "results",
                "paginator": {"type": "offset", "limit": 50, "offset_param": "offset",
                              "limit_param": "limit", "total_path": "total"},
            },
        }],
    })
    with tempfile.TemporaryDirectory(prefix="dlt-bench-") as tmp:
        pipeline = dlt.pipeline(
            pipeline_name="hiro_bench", pipelines_dir=tmp,
            destination=dlt.destinations.duckdb(args.db), dataset_name="hiro",
        )
        t0 = time.monotonic()
        pipeline.run(source)
        wall = time.monotonic() - t0
    import duckdb

    con = duckdb.connect(args.db, read_only=True)
    rows, distinct = con.execute(
        "SELECT count(*), count(DISTINCT tx_id) FROM hiro.transactions").fetchone()
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'hiro'"
        " AND table_name NOT LIKE '_dlt%'").fetchall()]
    con.close()
    print(json.dumps({"contender": "dlt", "wall_seconds": wall, "rows": rows,
                      "distinct_tx_ids": distinct, "tables": len(tables),
                      "dlt": dlt.__version__}), flush=True)


if __name__ == "__main__":
    main()
