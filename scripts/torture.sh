#!/usr/bin/env bash
# make torture: one sale under every fault at once (two origins and two consumers killed and
# restarted, one broker master restarted and the other killed -9 and brought back, the run's own
# Redis restarted, failed over and flushed, every order message delivered twice, malformed
# requests mixed in), then every invariant checked. Report: .run/torture/.
#   scripts/torture.sh                 the full run (50,000 buys, 20,000 users, 1,000 units)
#   scripts/torture.sh --scale ci      the scaled-down run `make test` does
#   scripts/torture.sh --help          every flag
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"
"$SECKILL_ROOT/scripts/services.sh" install
"$SECKILL_ROOT/scripts/services.sh" start mysql
# The pair profile's brokers (two masters, each with a synchronous slave; the run's origins use
# them, its faults restart and kill their masters): level 16 (the unpaid-order cancel) is 3 s
# there, so units come back to the sale during the run. The run starts its own Redis.
"$SECKILL_ROOT/scripts/services.sh" start mq pair
eval "$("$SECKILL_ROOT/scripts/stack.sh" origin-env | sed 's/^/export /')"
export PAIR_NAMESRV_PORT="${PAIR_NAMESRV_PORT:-9878}"
export APP_ROCKETMQ__DELAY_LEVELS="$TEST_DELAY_LEVELS"
export RUST_LOG="${RUST_LOG:-error}"
log "building the origin and the torture (cargo target: $CARGO_TARGET_DIR)"
cargo build --quiet -p seckill-origin -p seckill-e2e --bins
exec "$CARGO_TARGET_DIR/debug/seckill-torture" "$@"
