#!/usr/bin/env bash
# What is running on this stack, and its logs.
#   scripts/status.sh           each service: up / down / stale, pid, address, log file (make status)
#   scripts/status.sh logs [NAME...] [-f]
#                               the last 40 lines of each service's log, or of NAME's; -f follows
#                               them all as they grow (make logs, make logs ARGS="origin -f")
# Exit status of `status`: 0 when every service the stack's profile needs is up, 1 otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Every process of every profile (env.sh's service_registry); the stack's profile says which
# of them `make up` needs.
mapfile -t SERVICES < <(service_registry)
PROFILE="$(cat "$SECKILL_RUN/profile" 2>/dev/null || echo single)"

# needed WHEN: true if the stack that is up (its profile) needs a service of that WHEN.
needed() { [[ ",$1," == *,stack,* || ( "$PROFILE" == cluster && ",$1," == *,cluster,* ) ]]; }

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
  local missing=0 name port when s pid
  printf 'profile: %s\n' "$PROFILE"
  printf '%-19s %-9s %-8s %-8s %-20s %s\n' SERVICE STATE PID NEEDED ADDRESS LOG
  for entry in "${SERVICES[@]}"; do
    read -r name port when <<<"$entry"
    read -r s pid < <(state "$name" "$port")
    local need=-
    if needed "$when"; then need=yes; [[ "$s" == up ]] || missing=1; fi
    printf '%-19s %-9s %-8s %-8s %-20s %s\n' "$name" "$s" "$pid" "$need" "$SECKILL_HOST:$port" "$SECKILL_LOGS/$name.log"
  done
  broker_disks
  broker_roles
  return "$missing"
}

# The stack's brokers as their name servers and they themselves report them: role, and on
# each master whether its slave is in sync (`seckill-origin brokers`; needs the built origin).
broker_roles() {
  local bin="$CARGO_TARGET_DIR/debug/seckill-origin"
  [[ -x "$bin" ]] && port_open "$NAMESRV_PORT" || return 0
  printf '\n'
  ( eval "$("$SECKILL_ROOT/scripts/stack.sh" origin-env | sed 's/^/export /')"
    RUST_LOG=error timeout 20 "$bin" brokers ) || printf 'brokers: could not be read from the name servers\n'
}

# Each broker store's size and the use of the disk it is on, against the limit no broker is
# started past (BROKER_DISK_MAX_USED_PERCENT) and the broker's own (85 % and 90 %).
broker_disks() {
  local home shown=0 used
  for home in "$SECKILL_DATA"/broker-*; do
    [[ -d "$home/store" ]] || continue
    if ((shown == 0)); then
      printf '\n%-19s %-9s %s\n' BROKER-STORE SIZE "DISK USE, 1 - avail/size (no broker starts past $BROKER_DISK_MAX_USED_PERCENT %; the broker deletes unexpired files past 85 %, refuses writes past 90 %)"
      shown=1
    fi
    used="$(disk_used_pct "$home")"
    printf '%-19s %-9s %s %%\n' "$(basename "$home")" "$(du -sh "$home/store" 2>/dev/null | cut -f1)" "$used"
  done
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
      read -r name _ _ <<<"$entry"
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
