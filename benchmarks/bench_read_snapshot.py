"""What publishing the read snapshot costs the writer: CHECKPOINT + copy + rename, at 1M
and 10M rows of `transactions`, after a commit group of 2,000 new rows.

    .venv/bin/python benchmarks/bench_read_snapshot.py [--rows 1000000 10000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from stx_pipeline.warehouse.db import open_db
from stx_pipeline.warehouse.readers import connect_readonly, publish_snapshot

FILL = """
INSERT INTO transactions SELECT
  md5(i::VARCHAR), 'contract_call', 'success', 'SP' || (i % 200000)::VARCHAR, false, NULL,
  'SP' || (i % 200000)::VARCHAR, (i % 5000)::BIGINT, (i % 300)::BIGINT, (i // 40)::BIGINT,
  md5((i // 40)::VARCHAR), NULL, (i % 40)::INTEGER, to_timestamp(1.7e9 + i * 0.5),
  to_timestamp(1.7e9 + i * 0.5), (i // 400)::BIGINT, true, 'SP1.c' || (i % 300)::VARCHAR,
  'f', NULL, NULL, now()
FROM range(?, ?) t(i)
"""


def measure(rows: int, tmp: Path) -> dict[str, float]:
    db = tmp / f"w{rows}.duckdb"
    con = open_db(db)
    con.execute(FILL, [0, rows])
    con.execute("CHECKPOINT")
    con.execute(FILL, [rows, rows + 2000])  # one commit group since the last publish
    t0 = time.perf_counter()
    publish_snapshot(con, db)
    publish = time.perf_counter() - t0
    con.close()
    t0 = time.perf_counter()
    reader = connect_readonly(db)
    reader.execute("SELECT count(*) FROM transactions").fetchone()
    reader.close()
    return {"rows": rows, "file_mb": round(db.stat().st_size / 1e6, 1),
            "publish_s": round(publish, 3), "reader_connect_and_count_s":
            round(time.perf_counter() - t0, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            print(measure(rows, Path(tmp)))


if __name__ == "__main__":
    main()
