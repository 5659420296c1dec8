#!/usr/bin/env bash
# make bench: measures the running stack (`make up`) against its own ceilings in one run.
#   scripts/bench.sh [flags]      e.g. --requests 5000, --duration 10, --scenario origin
#   scripts/bench.sh --help       every flag
# Builds the release origin and bench, then runs the bench with the stack's origin settings
# (APP_*). The report goes to .run/bench/ (latest.md, bench-<time>.md, latency-<time>.svg).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"
eval "$("$SECKILL_ROOT/scripts/stack.sh" origin-env | sed 's/^/export /')"
log "building the origin and the bench (release; cargo target: $CARGO_TARGET_DIR)"
cargo build --release -p seckill-origin -p seckill-bench
exec "$CARGO_TARGET_DIR/release/seckill-bench" "$@"
