#!/usr/bin/env bash
# Export a warehouse file written by DuckDB 2.x (stx_pipeline before the DuckLake change)
# to a folder of Parquet files, for `stx-pipeline warehouse migrate --from FOLDER`.
# DuckDB 1.5 cannot read 2.x files, so this runs DuckDB 2.0.1 in a scratch venv of its own
# (pip install from PyPI, once); the file is opened read-only and left as it is.
#
#   deploy/export-duckdb2.sh data/cache/wallet_metrics.duckdb data/export-duckdb2
#   stx-pipeline warehouse migrate --from data/export-duckdb2 --to duckdb --db data/cache/new.duckdb
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 FILE.duckdb OUT_FOLDER" >&2; exit 2
fi
SRC="$1"; OUT="$2"
[ -f "$SRC" ] || { echo "export-duckdb2: no file at $SRC" >&2; exit 2; }
[ ! -e "$OUT" ] || { echo "export-duckdb2: $OUT exists; choose a new folder" >&2; exit 2; }
VENV="${STX_PIPELINE_DUCKDB2_VENV:-${TMPDIR:-/tmp}/stx_pipeline_duckdb2.$(id -u)}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
  echo "export-duckdb2: installing duckdb==2.0.1 into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q duckdb==2.0.1
fi
"$VENV/bin/python" - "$SRC" "$OUT" <<'PY'
import sys
import duckdb
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect(src, read_only=True)
con.execute("EXPORT DATABASE '" + out.replace("'", "''") + "' (FORMAT parquet)")
rows = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
print(f"exported {src} (DuckDB {duckdb.__version__}) to {out}: {rows:,} transactions")
PY
