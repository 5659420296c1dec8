#!/usr/bin/env bash
# make check: the fast tier, with no service running: `make lint` (rustfmt, clippy with
# warnings as errors), then the unit tests of every crate (the pure parts: protocol, the
# edge's decisions, the origin's rules and parsers, the harness's own helpers). About a minute
# on a warm build; `make test` runs these and everything that needs the real services.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

"$SECKILL_ROOT/scripts/lint.sh"
log "cargo test: unit and doc tests of every crate (no service needed)"
cargo test --quiet --workspace --lib --bins
cargo test --quiet --workspace --doc
log "make check passed"
