#!/usr/bin/env bash
# What is running on this stack, and its logs.
#   scripts/status.sh           each service: up / down / stale, pid, address, log file (make status)
#   scripts/status.sh logs [NAME...] [-f]
#                               the last 40 lines of each service's log, or of NAME's; -f follows
#                               them all as they grow (make logs, make logs ARGS="origin -f")
# Exit status of `status`: 0 when every service of `make up` is up, 1 otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# name port: what `make up` starts, then the test brokers `make test` adds.
SERVICES=(
  "redis $REDIS_PORT" "mysql $MYSQL_PORT" "namesrv-dev $NAMESRV_PORT" "broker-dev $BROKER_PORT"
  "origin $ORIGIN_PORT" "consumer $CONSUMER_PORT" "prometheus $PROMETHEUS_PORT" "edge $EDGE_PORT"
  "namesrv-test ${TEST_NAMESRV_PORT:-9877}" "broker-test ${TEST_BROKER_PORT:-10921}"
  "namesrv-pair ${PAIR_NAMESRV_PORT:-9878}" "broker-pair ${PAIR_BROKER_PORT:-10961}"
  "broker-pair-b $((${PAIR_BROKER_PORT:-10961} + 20))"
)
CORE=8   # the first eight are the stack of `make up`

# state NAME PORT: up (pid alive and port open), stale (pid file of a dead process), starting
# (alive, port not open yet), foreign (port open without our process) or down.
state() {
  local pidfile="$SECKILL_PIDS/$1.pid" pid=""
  [[ -f "$pidfile" ]] && pid="$(cat "$pidfile")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    if port_open "$2"; then echo "up $pid"; else echo "starting $pid"; fi
  elif port_open "$2"; then
    echo "foreign -"
  elif [[ -n "$pid" ]]; then
    echo "stale $pid"
  else
    echo "down -"
  fi
}

cmd_status() {
  local i=0 missing=0 name port s pid
  printf '%-13s %-9s %-8s %-22s %s\n' SERVICE STATE PID ADDRESS LOG
  for entry in "${SERVICES[@]}"; do
    read -r name port <<<"$entry"
    read -r s pid < <(state "$name" "$port")
    printf '%-13s %-9s %-8s %-22s %s\n' "$name" "$s" "$pid" "$SECKILL_HOST:$port" "$SECKILL_LOGS/$name.log"
    if ((i < CORE)) && [[ "$s" != up ]]; then missing=1; fi
    i=$((i + 1))
  done
  return "$missing"
}

cmd_logs() {
  local follow=0 names=()
  for arg in "$@"; do
    case "$arg" in
      -f) follow=1 ;;
      -*) die "logs: unknown flag $arg (only -f)" ;;
      *) [[ -f "$SECKILL_LOGS/$arg.log" ]] || die "logs: no log named $arg in $SECKILL_LOGS"; names+=("$arg") ;;
    esac
  done
  if ((${#names[@]} == 0)); then
    for entry in "${SERVICES[@]}"; do
      read -r name _ <<<"$entry"
      [[ -f "$SECKILL_LOGS/$name.log" ]] && names+=("$name")
    done
  fi
  ((${#names[@]} > 0)) || die "no logs yet in $SECKILL_LOGS (make up first)"
  local files=()
  for name in "${names[@]}"; do files+=("$SECKILL_LOGS/$name.log"); done
  if ((follow)); then exec tail -n 40 -F "${files[@]}"; fi
  tail -n 40 "${files[@]}"
}

case "${1:-status}" in
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) die "usage: status.sh [status] | logs [NAME...] [-f]" ;;
esac
