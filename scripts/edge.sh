#!/usr/bin/env bash
# The edge: a Rust Worker (edge/) compiled to wasm and run locally under `wrangler dev`.
#
#   scripts/edge.sh install   npm ci, wasm-bindgen-cli + worker-build (cargo, into $SECKILL_TOOLS),
#                             the wasm32 target, crates for an offline build, Debian's chromium
#   scripts/edge.sh build     worker-build offline with local tools → edge/build/ (skipped if fresh)
#   scripts/edge.sh start     wrangler's dev server on $SECKILL_HOST:$EDGE_PORT (edge/dev-server.mjs),
#                             prebuilt, no DevTools inspector; waits until it answers
#   scripts/edge.sh stop      SIGINT to the dev server's process group (workerd goes with it)
#   scripts/edge.sh test      node tests in tests/edge against the test shop (scripts/test-shop.sh:
#                             an origin, consumer, Prometheus and edge of their own), never the
#                             operator's shop
#
# EDGE_NAME (default edge) names the instance's pid file, log and run directory, so the test
# shop's edge (EDGE_NAME=edge-test, its own EDGE_PORT and ORIGIN_URL) runs beside make up's.
# EDGE_DIRECT=1 runs it without wrangler's proxy process (edge/dev-server.mjs --direct; the bench).
# Every step is idempotent and quick when there is nothing to do.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

# The CLI versions must equal the library pins in edge/Cargo.toml, so read them from there.
pin() { sed -n "s/^$1 = \"=\(.*\)\"/\1/p" edge/Cargo.toml; }
WASM_BINDGEN_VERSION="$(pin wasm-bindgen)"
WORKER_BUILD_VERSION="$(pin worker)"
[[ -n "$WASM_BINDGEN_VERSION" && -n "$WORKER_BUILD_VERSION" ]] || die "no =pins for worker/wasm-bindgen in edge/Cargo.toml"

WASM_BINDGEN_BIN="$SECKILL_TOOLS/bin/wasm-bindgen"
WORKER_BUILD_BIN="$SECKILL_TOOLS/bin/worker-build"
WRANGLER="$SECKILL_ROOT/node_modules/.bin/wrangler"
# wasm builds get their own target dir: sharing the native one would serialize the two builds
# on cargo's lock (and they share no artifacts anyway).
EDGE_TARGET_DIR="$SECKILL_CACHE/target-edge"
EDGE_NAME="${EDGE_NAME:-edge}"
EDGE_RUN="$SECKILL_RUN/$EDGE_NAME"           # generated wrangler config, wrangler's .wrangler/ tmp
# --persist-to: the Cache API's local store. Every forwarded buy writes a flag there, and the
# local Cache API commits each write with an fsync on the runtime's only thread, stalling every
# request in flight (0.5-3 ms per write on this machine's disk). The store is thrown away at
# every start anyway, so it lives in RAM (tmpfs) when the machine has one.
if [[ -z "${EDGE_STATE:-}" ]]; then
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    EDGE_STATE="/dev/shm/seckill-$EDGE_NAME-$(id -u)-$EDGE_PORT"
  else
    EDGE_STATE="$EDGE_RUN/state"
  fi
fi
export ORIGIN_URL="${ORIGIN_URL:-http://$SECKILL_HOST:$ORIGIN_PORT}"
export EDGE_URL="${EDGE_URL:-http://$SECKILL_HOST:$EDGE_PORT}"

tool_version_is() { [[ -x "$1" ]] && "$1" --version 2>/dev/null | grep -qw -- "$2"; }

cargo_install_tool() {   # cargo_install_tool CRATE VERSION
  log "cargo install $1@$2 (several minutes when cold; log: $SECKILL_LOGS/cargo-install-$1.log)"
  # Not --locked: one dependency locked by wasm-bindgen-cli is gone from the index.
  CARGO_TARGET_DIR="$SECKILL_CACHE/tool-target-edge" nice -n 10 \
    cargo install --root "$SECKILL_TOOLS" "$1@$2" >"$SECKILL_LOGS/cargo-install-$1.log" 2>&1 \
    || die "cargo install $1@$2 failed; see $SECKILL_LOGS/cargo-install-$1.log"
}

cmd_install() {
  # npm: wrangler (and its esbuild), binaryen (wasm-opt), playwright-core. npm leaves
  # node_modules/.package-lock.json behind; older than the lock file means stale.
  if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json \
        || package.json -nt node_modules/.package-lock.json ]]; then
    log "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi

  tool_version_is "$WASM_BINDGEN_BIN" "$WASM_BINDGEN_VERSION" || cargo_install_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION"
  tool_version_is "$WORKER_BUILD_BIN" "$WORKER_BUILD_VERSION" || cargo_install_tool worker-build "$WORKER_BUILD_VERSION"

  ensure_toolchain

  # Download the crates now so that `build` can run with CARGO_NET_OFFLINE.
  cargo fetch --quiet

  if [[ ! -x /usr/bin/chromium ]]; then
    log "apt-get install chromium (for the browser test)"
    local sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
}

build_is_fresh() {
  [[ -f edge/build/index.js ]] || return 1
  [[ -z "$(find edge/src edge/Cargo.toml Cargo.lock -newer edge/build/index.js -print -quit)" ]]
}

cmd_build() {
  [[ -x "$WORKER_BUILD_BIN" && -x "$WASM_BINDGEN_BIN" && -x "$WRANGLER" ]] \
    || die "edge tools missing: run scripts/edge.sh install"
  if build_is_fresh && [[ "${1:-}" != "--force" ]]; then
    log "edge build is up to date (edge/build/)"
    return 0
  fi
  log "building the edge (worker-build --release → edge/build/)"
  local started=$SECONDS
  (
    cd edge
    # worker-build would download wasm-bindgen, wasm-opt and esbuild: point it at local ones.
    export WASM_BINDGEN_BIN ESBUILD_BIN="$SECKILL_ROOT/node_modules/.bin/esbuild" \
           WASM_OPT_BIN="$SECKILL_ROOT/node_modules/.bin/wasm-opt"
    export CARGO_TARGET_DIR="$EDGE_TARGET_DIR" CARGO_NET_OFFLINE=true
    # Size over speed for the wasm module; only this build sees these (own target dir).
    export CARGO_PROFILE_RELEASE_OPT_LEVEL=s CARGO_PROFILE_RELEASE_LTO=true \
           CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_STRIP=debuginfo
    "$WORKER_BUILD_BIN" --release
  ) >"$SECKILL_LOGS/edge-build.log" 2>&1 || { tail -n 40 "$SECKILL_LOGS/edge-build.log" >&2; die "edge build failed (log: $SECKILL_LOGS/edge-build.log)"; }
  touch edge/build/index.js   # the freshness mark, even if worker-build kept an older mtime
  log "edge built in $((SECONDS - started))s: $(du -h edge/build/index_bg.wasm 2>/dev/null | cut -f1) of wasm"
}

edge_answers() { curl -fsS -o /dev/null -m 2 "$EDGE_URL/" 2>/dev/null; }

cmd_start() {
  [[ -f edge/build/index.js ]] || die "the edge is not built: run scripts/edge.sh build"
  local pidfile="$SECKILL_PIDS/$EDGE_NAME.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    edge_answers && { log "edge already running: $EDGE_URL"; return 0; }
    stop_pidfile "$EDGE_NAME" INT
  fi
  ! port_open "$EDGE_PORT" || die "port $EDGE_PORT is taken by something else"

  mkdir -p "$EDGE_RUN"
  # The state holds cached flags and product lists and the waiting rooms' lines: dropping it
  # means a fresh stack (whose product ids start again at 1) never sees an old flag or room.
  # Passes already handed out stay valid (they are signed, not stored); a queued user queues again.
  rm -rf "$EDGE_STATE"
  # wrangler.toml without [build] (so wrangler does not rebuild at start), main made absolute,
  # the per-IP limit raised to $EDGE_IP_RATE_LIMIT (every local client is 127.0.0.1).
  awk -v main="$SECKILL_ROOT/edge/build/index.js" -v ip_limit="$EDGE_IP_RATE_LIMIT" '
    /^\[/ { skipping = ($0 == "[build]") }
    skipping { next }
    /^main *=/ { print "main = \"" main "\""; next }
    /^name *= *"IP_RATE_LIMITER"/ { in_ip = 1 }
    /^name *= *"USER_RATE_LIMITER"/ { in_ip = 0 }
    in_ip && /^simple *=/ { sub(/limit *= *[0-9]+/, "limit = " ip_limit) }
    { print }' wrangler.toml >"$EDGE_RUN/wrangler.toml"

  : >"$SECKILL_LOGS/$EDGE_NAME.log"
  # Not the `wrangler dev` CLI: it cannot run without its DevTools inspector, which makes every
  # fetch to the origin cost four relayed DevTools events (see edge/dev-server.mjs).
  # EDGE_DEVTOOLS=1 in the environment keeps the inspector, for a debugging session.
  # WRANGLER_LOG=warn: the proxy instance logs no line per request (each one an HTTP post to node).
  start_bg "$EDGE_NAME" env CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false \
    WRANGLER_SEND_ERROR_REPORTS=false WRANGLER_HIDE_BANNER=true WRANGLER_LOG=warn \
    node edge/dev-server.mjs --config "$EDGE_RUN/wrangler.toml" --ip "$SECKILL_HOST" --port "$EDGE_PORT" \
      --log-level=warn --persist-to "$EDGE_STATE" \
      --var "ORIGIN_URL:$ORIGIN_URL" --var "ORIGIN_URLS:${ORIGIN_URLS:-}" --var "EDGE_SECRET:$EDGE_SECRET" \
      --var "TOKEN_KEYS:$TOKEN_KEYS" --var "ENVIRONMENT:development" ${EDGE_DIRECT:+--direct}

  local pid i
  pid="$(cat "$pidfile")"
  for ((i = 0; i < 600; i++)); do
    edge_answers && { log "edge up: $EDGE_URL (forwarding to ${ORIGIN_URLS:-$ORIGIN_URL})"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 30 "$SECKILL_LOGS/$EDGE_NAME.log" >&2
  stop_pidfile "$EDGE_NAME" INT
  die "the edge did not answer on $EDGE_URL (log: $SECKILL_LOGS/$EDGE_NAME.log)"
}

cmd_stop() {
  # SIGINT is what wrangler handles to shut workerd down cleanly; stop_pidfile signals the
  # whole process group and escalates to KILL after 15 s.
  stop_pidfile "$EDGE_NAME" INT
  ! port_open "$EDGE_PORT" || log "warning: something still listens on port $EDGE_PORT"
  rm -rf "$EDGE_STATE"   # in RAM when on tmpfs; nothing in it outlives the edge
}

cmd_test() {
  # The test shop, not make up's: the tests create sales and buy, and the operator's shop must
  # show only the operator's sales. Stopped again however the tests end.
  "$SECKILL_ROOT/scripts/test-shop.sh" up
  trap '"$SECKILL_ROOT/scripts/test-shop.sh" down' EXIT
  eval "$("$SECKILL_ROOT/scripts/test-shop.sh" urls)"
  export EDGE_URL ORIGIN_URL PROMETHEUS_URL ADMIN_TOKEN EDGE_SECRET TOKEN_KEYS SHOP_MYSQL
  export TEST_OUTPUT="${TEST_OUTPUT:-$SECKILL_ROOT/test-output}"
  mkdir -p "$TEST_OUTPUT"
  # One file at a time: the tests read the origin's global buy counter, so nothing else may buy
  # while one runs.
  node --test --test-concurrency=1 --test-reporter=spec tests/edge/*.test.mjs
}

case "${1:-}" in
  install) cmd_install ;;
  build) shift; cmd_build "$@" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  test) cmd_test ;;
  *) echo "usage: $0 install|build [--force]|start|stop|test" >&2; exit 2 ;;
esac
