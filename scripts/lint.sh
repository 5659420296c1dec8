#!/usr/bin/env bash
# make lint: the habits gate. rustfmt (rustfmt.toml) and clippy with warnings as errors, over
# every crate and target, and over the edge as the Worker builds it (wasm32: worker_entry and
# the rest of the runtime glue exist only there). `make test` runs it before the tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

log "cargo fmt --all --check"
cargo fmt --all --check || die "cargo fmt --all --check: run cargo fmt --all"
ensure_toolchain
log "cargo clippy (workspace, all targets; the edge for wasm32) with -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings || die "clippy found problems (above)"
cargo clippy --quiet -p seckill-edge --target wasm32-unknown-unknown -- -D warnings ||
  die "clippy found problems in the edge's wasm build (above)"
