#!/usr/bin/env bash
# S3 benchmark: Quarry's release build against a null server (same HTTP stack, no work),
# driven by the same SigV4 client at the same concurrency in the same run
# (bench/src/; figures in BENCHMARKS.md).
#
# Usage: bash bench/s3.sh [quarry-bench run options]
#   --seconds N         seconds per workload and server (10)
#   --small-objects N   1 KiB objects for the space, memory, listing and rebuild figures
#                       (200000; 0 with --only; 0 skips them)
#   --only TEXT         only the throughput rows whose name contains TEXT (repeatable), e.g.
#                       --only "PUT 64 MiB" --only "GET 64 MiB"
#   --dir DIR           parent of the temporary data directories (system temp dir);
#                       needs about 8 GiB free at the defaults
# Environment: CARGO_TARGET_DIR as usual (a release build of the whole stack is long on
# 2 cores: keep one release target dir warm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p quarry -p quarry-bench
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
exec "$TARGET_DIR/release/quarry-bench" run --quarry "$TARGET_DIR/release/quarry" "$@"
