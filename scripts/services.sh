#!/usr/bin/env bash
# Installs and runs the backing services on 127.0.0.1: Redis, MariaDB, RocketMQ name server +
# broker (the Rust implementation, built from crates.io), and Prometheus scraping the origin.
#
#   services.sh install                 install what is missing (apt, cargo install)
#   services.sh start redis|mysql       start one service unless its port is already open
#   services.sh start mq PROFILE [2]    name server + broker of a profile (2: and its broker b)
#   services.sh start broker PROFILE[-b]  one broker of a profile (broker b with -b)
#   services.sh start prometheus        Prometheus on $PROMETHEUS_PORT scraping serve and consume
#   services.sh stop redis|mysql|namesrv-dev|broker-dev|broker-dev-b|namesrv-test|broker-test|...
#   services.sh kill-broker PROFILE[-b] SIGKILL a broker (for failure tests)
#
# Profiles: dev  = name server 9876, broker 10911, RocketMQ's default delay table.
#           test = name server 9877, broker 10921, a shrunk delay table (level 16 = 3 s).
#           pair = name server 9878, broker 10961, the test delay table: two brokers of their
#                  own for the broker-failover test, which kills one.
# A profile's broker b listens 20 ports above its first broker: same cluster and name server,
# another broker name, so a topic's queues are on both and a producer can use either.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

install() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v prometheus >/dev/null || missing+=(prometheus)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt)"
    local sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  local bin="$SECKILL_TOOLS/bin"
  if [[ ! -x "$bin/rocketmq-namesrv-rust" || ! -x "$bin/rocketmq-broker-rust" ]]; then
    log "building the RocketMQ name server and broker $ROCKETMQ_VERSION (about 20 min cold on 2 cores; cached in $SECKILL_TOOLS)"
    CARGO_TARGET_DIR="$SECKILL_CACHE/tool-target" cargo install --quiet \
      "rocketmq-namesrv@$ROCKETMQ_VERSION" "rocketmq-broker@$ROCKETMQ_VERSION" --root "$SECKILL_TOOLS"
  fi
}

start_redis() {
  if port_open "$REDIS_PORT"; then log "redis: port $REDIS_PORT already open, reusing it"; return; fi
  mkdir -p "$SECKILL_DATA/redis"
  start_bg redis redis-server --bind "$SECKILL_HOST" --port "$REDIS_PORT" --daemonize no \
    --dir "$SECKILL_DATA/redis" --appendonly yes --appendfsync "$REDIS_APPENDFSYNC" --save "" --logfile ""
  wait_port redis "$REDIS_PORT" 20
  log "redis up on $SECKILL_HOST:$REDIS_PORT (appendfsync $REDIS_APPENDFSYNC)"
}

# redis_cluster_ok PORT: the cluster that node PORT belongs to serves every slot.
redis_cluster_ok() { redis-cli -h "$SECKILL_HOST" -p "$1" cluster info 2>/dev/null | grep -q "cluster_state:ok"; }

# redis_cluster_replicated PORT: how many masters of node PORT's cluster have a replica in sync.
redis_cluster_replicated() {
  redis-cli -h "$SECKILL_HOST" -p "$1" cluster nodes 2>/dev/null |
    awk '$3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected" { print $4 }' | sort -u | wc -l
}

# wait_redis_cluster_ok PORT TENTHS: poll redis_cluster_ok for up to TENTHS tenths of a second.
wait_redis_cluster_ok() {
  local i
  for ((i = 0; i < $2; i++)); do
    redis_cluster_ok "$1" && return 0
    sleep 0.1
  done
  return 1
}

# Three masters and one replica each: six redis-servers with --cluster-enabled on
# REDIS_CLUSTER_PORTS and REDIS_CLUSTER_REPLICA_PORTS, joined by `redis-cli --cluster create
# --cluster-replicas 1` once (it picks which node serves which; later starts reuse the data).
# A master that dies is replaced by its replica after --cluster-node-timeout; a node that
# comes back rejoins as a replica.
start_redis_cluster() {
  local port ports=() seeds=()
  read -r -a ports <<<"$REDIS_CLUSTER_PORTS $REDIS_CLUSTER_REPLICA_PORTS"
  for port in "${ports[@]}"; do
    seeds+=("$SECKILL_HOST:$port")
    if port_open "$port"; then log "redis-cluster: port $port already open, reusing it"; continue; fi
    mkdir -p "$SECKILL_DATA/redis-cluster-$port"
    start_bg "redis-cluster-$port" redis-server --bind "$SECKILL_HOST" --port "$port" --daemonize no \
      --dir "$SECKILL_DATA/redis-cluster-$port" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --appendonly yes --appendfsync "$REDIS_APPENDFSYNC" --save "" --logfile ""
    wait_port "redis-cluster-$port" "$port" 20
  done
  # A restarted node loads its AOF first (LOADING) and then finds its peers again from
  # nodes.conf: wait for both before deciding that the cluster was never created.
  local i
  for port in "${ports[@]}"; do
    for ((i = 0; i < 300; i++)); do
      [[ "$(redis-cli -h "$SECKILL_HOST" -p "$port" ping 2>/dev/null)" == PONG ]] && break
      sleep 0.1
    done
  done
  # A node that already knows every node (its nodes.conf) only needs time to find them again.
  local known
  known="$(grep -cE 'master|slave' "$SECKILL_DATA/redis-cluster-${ports[0]}/nodes.conf" 2>/dev/null || true)"
  if [[ "${known:-0}" -ge "${#ports[@]}" ]]; then
    wait_redis_cluster_ok "${ports[0]}" 100 || true
  elif [[ "${known:-0}" -gt 1 ]]; then
    die "redis-cluster: $SECKILL_DATA/redis-cluster-${ports[0]} holds a cluster of ${known} nodes, not ${#ports[@]}; make down, remove $SECKILL_DATA/redis-cluster-*, start again"
  fi
  if ! redis_cluster_ok "${ports[0]}"; then
    redis-cli --cluster create "${seeds[@]}" --cluster-replicas 1 --cluster-yes >>"$SECKILL_LOGS/redis-cluster.log" 2>&1 ||
      die "redis-cluster: create failed (log: $SECKILL_LOGS/redis-cluster.log)"
  fi
  wait_redis_cluster_ok "${ports[0]}" 100 ||
    die "redis-cluster: the cluster is not ok (log: $SECKILL_LOGS/redis-cluster.log)"
  # Replicas attach by a full sync after the create: wait until every master has its replica.
  for ((i = 0; i < 300; i++)); do
    [[ "$(redis_cluster_replicated "${ports[0]}")" -ge "$(wc -w <<<"$REDIS_CLUSTER_PORTS")" ]] && break
    sleep 0.1
  done
  log "redis-cluster up: ${seeds[*]} (3 masters with a replica each, 16384 slots)"
}

mysql_cli() { mariadb --no-defaults -S "$SECKILL_DATA/mysql/mysql.sock" -u root "$@"; }

start_mysql() {
  if port_open "$MYSQL_PORT"; then log "mysql: port $MYSQL_PORT already open, reusing it"; return; fi
  local dir="$SECKILL_DATA/mysql"
  if [[ ! -d "$dir/mysql" ]]; then
    log "mysql: initialising a data folder in $dir"
    mkdir -p "$dir"
    mariadb-install-db --no-defaults --datadir="$dir" --user="$(id -un)" \
      --auth-root-authentication-method=socket >"$SECKILL_LOGS/mysql-install.log" 2>&1
  fi
  start_bg mysql mariadbd --no-defaults --datadir="$dir" --socket="$dir/mysql.sock" \
    --pid-file="$dir/mariadb.pid" --bind-address="$SECKILL_HOST" --port="$MYSQL_PORT" \
    --user="$(id -un)" --skip-name-resolve --max-connections=500 \
    --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit="$MYSQL_FLUSH_LOG_AT_TRX_COMMIT" --log-error="$SECKILL_LOGS/mysql.err"
  wait_port mysql "$MYSQL_PORT" 60
  mysql_cli <<SQL
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
-- ALL on *.*: the end-to-end tests create a fresh database per test.
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost';
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4;
SQL
  log "mysql up on $SECKILL_HOST:$MYSQL_PORT (database $MYSQL_DATABASE, user $MYSQL_USER; innodb_flush_log_at_trx_commit $MYSQL_FLUSH_LOG_AT_TRX_COMMIT)"
}

profile_ports() {
  case "$1" in
    dev) NS_PORT=$NAMESRV_PORT; BR_PORT=$BROKER_PORT ;;
    test) NS_PORT=${TEST_NAMESRV_PORT:-9877}; BR_PORT=${TEST_BROKER_PORT:-10921} ;;
    pair) NS_PORT=${PAIR_NAMESRV_PORT:-9878}; BR_PORT=${PAIR_BROKER_PORT:-10961} ;;
    *) die "unknown profile '$1' (dev, test or pair)" ;;
  esac
}

start_namesrv() {
  local profile="$1"; profile_ports "$profile"
  if port_open "$NS_PORT"; then log "namesrv-$profile: port $NS_PORT already open, reusing it"; return; fi
  local home="$SECKILL_DATA/namesrv-$profile"; mkdir -p "$home"
  ROCKETMQ_HOME="$home" start_bg "namesrv-$profile" "$SECKILL_TOOLS/bin/rocketmq-namesrv-rust" \
    --bindAddress "$SECKILL_HOST" --listenPort "$NS_PORT" --rocketmqHome "$home" --kvConfigPath "$home/kvConfig.json"
  wait_port "namesrv-$profile" "$NS_PORT" 30
  log "namesrv-$profile up on $SECKILL_HOST:$NS_PORT"
}

# The size of a broker's commit-log files (it reserves two up front): 128 MiB for a new store,
# else the size its files already have (the broker refuses to load files of another size).
COMMITLOG_FILE_BYTES=$((128 * 1024 * 1024))
commitlog_file_bytes() {
  local first
  first="$(find "$1/store/commitlog" -maxdepth 1 -type f -size +0 2>/dev/null | sort | head -n 1)"
  if [[ -n "$first" ]]; then stat -c %s "$first"; else echo "$COMMITLOG_FILE_BYTES"; fi
}

# check_broker_disk NAME HOME FILE_BYTES: refuses (exit 1, naming the threshold) to start or reuse
# a broker whose disk is past BROKER_DISK_MAX_USED_PERCENT, or without room for its two files.
check_broker_disk() {
  local name="$1" home="$2" file_bytes="$3" used free_kib
  used="$(disk_used_pct "$home")"
  free_kib="$(df -P "$home" | awk 'NR == 2 { print $4 }')"
  if [[ "$used" -ge "$BROKER_DISK_MAX_USED_PERCENT" ]]; then
    die "$name: the disk holding $home is $used % full, at or past the $BROKER_DISK_MAX_USED_PERCENT % this stack starts a broker at (BROKER_DISK_MAX_USED_PERCENT; the broker itself deletes files it still needs past 75 % and then refuses every write until restarted). Free space first: make clean-cache, or remove old stores under $SECKILL_DATA/broker-*."
  fi
  if (( free_kib * 1024 < 2 * file_bytes + 256 * 1024 * 1024 )); then
    die "$name: $((free_kib / 1024)) MiB free on the disk holding $home; a broker reserves two $((file_bytes / 1024 / 1024)) MiB commit-log files and needs room to write."
  fi
}

# start_broker PROFILE [b]: the profile's first broker, or with b its second.
start_broker() {
  local profile="$1" which="${2:-}"; profile_ports "$profile"
  local name="broker-$profile" broker_name="seckill-$profile"
  if [[ "$which" == b ]]; then
    name="broker-$profile-b"; broker_name="seckill-$profile-b"; BR_PORT=$((BR_PORT + 20))
  fi
  local home="$SECKILL_DATA/$name"; mkdir -p "$home"
  local file_bytes; file_bytes="$(commitlog_file_bytes "$home")"
  # Checked for a running broker too: one past the limit refuses every write anyway.
  check_broker_disk "$name" "$home" "$file_bytes"
  if port_open "$BR_PORT"; then log "$name: port $BR_PORT already open, reusing it"; return; fi
  local delay_line=""
  if [[ "$profile" != dev ]]; then
    delay_line="messageDelayLevel = \"$TEST_DELAY_LEVELS\""   # env.sh says why
  fi
  cat >"$home/broker.toml" <<TOML
[broker]
namesrvAddr = "$SECKILL_HOST:$NS_PORT"
brokerIp1 = "$SECKILL_HOST"
listenPort = $BR_PORT
storePathRootDir = "$home/store"
autoCreateTopicEnable = true
# Ask a producer about an undecided transaction message after 6 s, checking every 5 s.
transactionTimeout = 6000
transactionCheckInterval = 5000

[broker.brokerServerConfig]
bindAddress = "$SECKILL_HOST"

[broker.brokerIdentity]
brokerName = "$broker_name"
brokerClusterName = "SeckillCluster"
brokerId = 0

[store]
storePathRootDir = "$home/store"
flushDiskType = "$BROKER_FLUSH_DISK_TYPE"
haListenPort = $((BR_PORT + 1))
# Small commit-log files (the broker reserves two up front; 1 GiB each by default), kept a day:
# old files go whole, a file at a time, at the daily clean-up or when the disk fills.
mappedFileSizeCommitLog = $file_bytes
fileReservedTime = 24
# One pull may carry a few of the order writer's batches (rocketmq.writer_batch_max, 256):
# the defaults (32 messages / 256 KiB from memory, 8 / 64 KiB from disk) would starve it.
maxTransferCountOnMessageInMemory = 1024
maxTransferBytesOnMessageInMemory = 1048576
maxTransferCountOnMessageInDisk = 512
maxTransferBytesOnMessageInDisk = 524288
$delay_line
TOML
  # warn: at info the broker logs every delayed message's countdown ten times a second.
  RUST_LOG="${SECKILL_BROKER_LOG:-warn}" ROCKETMQ_HOME="$home" \
    start_bg "$name" "$SECKILL_TOOLS/bin/rocketmq-broker-rust" -c "$home/broker.toml"
  wait_port "$name" "$BR_PORT" 60
  log "$name up on $SECKILL_HOST:$BR_PORT (registered with $SECKILL_HOST:$NS_PORT; $BROKER_FLUSH_DISK_TYPE)"
}

# Prometheus scraping `serve` and `consume` every 5 s, with config/prometheus/rules.yml. Its
# config is generated (the ports come from env.sh); its data lives in .run/data/prometheus.
# PROMETHEUS_NAME (default prometheus) names the instance's pid file, log and data directory;
# it scrapes $ORIGIN_PORT and $CONSUMER_PORT (the test shop starts one for its own origin).
start_prometheus() {
  local name="${PROMETHEUS_NAME:-prometheus}"
  if port_open "$PROMETHEUS_PORT"; then
    log "$name already up on $SECKILL_HOST:$PROMETHEUS_PORT"
    return
  fi
  local dir="$SECKILL_DATA/$name"
  mkdir -p "$dir/tsdb"
  cat >"$dir/prometheus.yml" <<YAML
# Generated by scripts/services.sh start prometheus; edit config/prometheus/rules.yml instead.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $SECKILL_ROOT/config/prometheus/rules.yml
scrape_configs:
  - job_name: seckill-serve
    static_configs:
      - targets: ["$SECKILL_HOST:$ORIGIN_PORT"]
  - job_name: seckill-consume
    static_configs:
      - targets: ["$SECKILL_HOST:$CONSUMER_PORT"]
YAML
  promtool check config "$dir/prometheus.yml" >>"$SECKILL_LOGS/$name.log" 2>&1 ||
    die "prometheus config does not check (see $SECKILL_LOGS/$name.log)"
  start_bg "$name" prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --storage.tsdb.retention.time=2d --web.listen-address="$SECKILL_HOST:$PROMETHEUS_PORT"
  wait_port "$name" "$PROMETHEUS_PORT" 30
  log "$name up on http://$SECKILL_HOST:$PROMETHEUS_PORT (scraping $SECKILL_HOST:$ORIGIN_PORT and :$CONSUMER_PORT)"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install) install ;;
  start)
    case "${1:-}" in
      redis) start_redis ;;
      redis-cluster) start_redis_cluster ;;
      mysql) start_mysql ;;
      mq)
        profile="${2:-dev}"; brokers="${3:-1}"
        [[ "$profile" == pair ]] && brokers=2
        [[ "$brokers" == 1 || "$brokers" == 2 ]] || die "start mq $profile: brokers must be 1 or 2, got '$brokers'"
        start_namesrv "$profile"; start_broker "$profile"
        [[ "$brokers" == 2 ]] && start_broker "$profile" b
        true ;;
      broker)
        case "${2:-dev}" in
          *-b) start_broker "${2%-b}" b ;;
          *) start_broker "${2:-dev}" ;;
        esac ;;
      prometheus) start_prometheus ;;
      *) die "start what? redis | redis-cluster | mysql | mq dev|test|pair [2] | broker <profile>[-b] | prometheus" ;;
    esac ;;
  stop)
    [[ -n "${1:-}" ]] || die "stop what? redis | mysql | namesrv-<profile> | broker-<profile>[-b]"
    stop_pidfile "$1" ;;
  kill-broker) stop_pidfile "broker-${1:-dev}" KILL ;;
  *) die "usage: services.sh install | start redis|mysql|mq <profile> [2]|broker <profile>[-b] | stop NAME | kill-broker <profile>[-b]" ;;
esac
