#!/usr/bin/env bash
# SQL benchmark: Quarry's query path against DuckDB on the same Parquet files
# (sql/benches/sql_vs_duckdb.rs; figures in BENCHMARKS.md).
#
# Installs DuckDB (pinned) from PyPI into a private venv, then runs
#   cargo bench -p quarry-sql --bench sql_vs_duckdb
# with that venv's python. Extra arguments go to cargo (e.g. --features, --offline).
#
# Environment (defaults are the sizes the issue asks for):
#   QUARRY_BENCH_OBJECTS        objects in the inventory (1000000; 0 skips that part)
#   QUARRY_BENCH_PARQUET_BYTES  bytes of Parquet (1073741824; 0 skips that part)
#   QUARRY_BENCH_PARQUET_FILES  files they are split into (16)
#   QUARRY_BENCH_RUNS           timed runs per query and side, after a warm-up (5)
#   QUARRY_BENCH_DIR            parent of the temporary directory (system temp dir);
#                               needs about 3 GiB free at the default sizes
#   QUARRY_BENCH_VENV           venv location (~/.cache/quarry/bench-venv)
#   QUARRY_BENCH_BOOT_PYTHON    python that creates the venv (python3)
#   CARGO_TARGET_DIR            as usual; a release build of DataFusion is long, so a
#                               target dir of its own keeps it from blocking debug builds
#
# Run it on an otherwise idle machine: both sides are timed alternately, but the
# ratio of two busy processes is still noisier than that of two idle ones.

set -euo pipefail

DUCKDB_VERSION=2.0.0

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/.." && pwd)
VENV=${QUARRY_BENCH_VENV:-$HOME/.cache/quarry/bench-venv}
BOOT_PYTHON=${QUARRY_BENCH_BOOT_PYTHON:-python3}

if ! "$VENV/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
    echo "[bench] installing duckdb==$DUCKDB_VERSION into $VENV" >&2
    "$BOOT_PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi

export QUARRY_BENCH_PYTHON="$VENV/bin/python"
cd "$REPO_ROOT"
exec cargo bench -p quarry-sql --bench sql_vs_duckdb "$@"
