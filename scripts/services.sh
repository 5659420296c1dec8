#!/usr/bin/env bash
# Installs and runs the backing services on 127.0.0.1: Redis, MariaDB, RocketMQ name server +
# broker (the Rust implementation, built from crates.io), and Prometheus scraping the origin.
#
#   services.sh install                 install what is missing (apt, cargo install)
#   services.sh start redis|mysql       start one service unless its port is already open
#   services.sh start mq PROFILE [2|2m-2s]  name server + broker of a profile (2: and its broker
#                                       b; 2m-2s: two name servers, brokers a and b each with a
#                                       synchronous slave)
#   services.sh start broker PROFILE[-b][-s]  one broker of a profile (broker b with -b, the
#                                       slave of a or b with -s)
#   services.sh start prometheus        Prometheus on $PROMETHEUS_PORT scraping serve and consume
#   services.sh stop redis|mysql|namesrv-dev|broker-dev|broker-dev-b|namesrv-test|broker-test|...
#   services.sh kill-broker PROFILE[-b][-s] SIGKILL a broker (for failure tests)
#
# Profiles: dev  = name server 9876, broker 10911, RocketMQ's default delay table.
#           test = name server 9877, broker 10921, a shrunk delay table (level 16 = 3 s).
#           pair = name servers 9878 and 9888, brokers a (10961) and b (10981) each with a
#                  synchronous slave (11001, 11021), the test delay table: the brokers of the
#                  failover tests, which kill masters and slaves, and of the torture.
#           bench = the pair's layout 80 ports up (name servers 9879 and 9889, brokers 11041,
#                  11061, slaves 11081, 11101) whose masters do not wait for their slaves
#                  (inSyncReplicas 1): `make bench` on PROFILE=cluster measures the wait
#                  against them.
# A profile's broker b listens 20 ports above its first broker: same cluster and name server,
# another broker name, so a topic's queues are on both and a producer can use either. A slave
# listens 40 ports above its master, with the master's broker name and brokerId 1; its master is
# then a SYNC_MASTER that answers SEND_OK only once the slave holds the message
# (BROKER_IN_SYNC_REPLICAS=1 makes the dev and pair masters stop waiting). A profile
# with slaves has a second name server 10 ports above its first; every broker and client is
# given both. docs/SCALING.md has the layout and the broker's replication traps.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

install() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
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
    bench) NS_PORT=${BENCH_NAMESRV_PORT:-9879}; BR_PORT=${BENCH_BROKER_PORT:-11041} ;;
    *) die "unknown profile '$1' (dev, test, pair or bench)" ;;
  esac
}

# start_namesrv PROFILE [2]: the profile's name server, or with 2 its second one.
start_namesrv() {
  local profile="$1" name="namesrv-$1"; profile_ports "$profile"
  if [[ "${2:-}" == 2 ]]; then name="namesrv-$profile-2"; NS_PORT=$((NS_PORT + 10)); fi
  if port_open "$NS_PORT"; then log "$name: port $NS_PORT already open, reusing it"; return; fi
  local home="$SECKILL_DATA/$name"; mkdir -p "$home"
  ROCKETMQ_HOME="$home" start_bg "$name" "$SECKILL_TOOLS/bin/rocketmq-namesrv-rust" \
    --bindAddress "$SECKILL_HOST" --listenPort "$NS_PORT" --rocketmqHome "$home" --kvConfigPath "$home/kvConfig.json"
  wait_port "$name" "$NS_PORT" 30
  log "$name up on $SECKILL_HOST:$NS_PORT"
}

# always_2m_2s PROFILE: true for the profiles that run 2m-2s whatever `start mq` is asked.
always_2m_2s() { [[ "$1" == pair || "$1" == bench ]]; }

# has_slaves PROFILE: true if the profile runs 2m-2s (pair and bench always; dev under
# PROFILE=cluster, which `start mq dev 2m-2s` records in its data folder).
has_slaves() { always_2m_2s "$1" || [[ -f "$SECKILL_DATA/broker-$1.2m-2s" ]]; }

# namesrv_addrs PROFILE: what brokers and clients of the profile are given ("a;b" with slaves).
namesrv_addrs() {
  profile_ports "$1"
  if has_slaves "$1"; then echo "$SECKILL_HOST:$NS_PORT;$SECKILL_HOST:$((NS_PORT + 10))"; else echo "$SECKILL_HOST:$NS_PORT"; fi
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
    die "$name: the disk holding $home is $used % full (1 - available / size, as the broker measures it), at or past the $BROKER_DISK_MAX_USED_PERCENT % this stack starts a broker at (BROKER_DISK_MAX_USED_PERCENT; the broker itself deletes its oldest files even if unexpired past 85 % and refuses every write past 90 %). Free space first: make clean-cache, or remove old stores under $SECKILL_DATA/broker-*."
  fi
  if (( free_kib * 1024 < 2 * file_bytes + 256 * 1024 * 1024 )); then
    die "$name: $((free_kib / 1024)) MiB free on the disk holding $home; a broker reserves two $((file_bytes / 1024 / 1024)) MiB commit-log files and needs room to write."
  fi
}

# start_broker PROFILE [a|b|a-s|b-s]: the profile's broker a (its first) or b, or the slave of
# either (-s). A master whose profile has slaves is a SYNC_MASTER; else an ASYNC_MASTER alone.
start_broker() {
  local profile="$1" which="${2:-a}"; profile_ports "$profile"
  local name="broker-$profile" broker_name="seckill-$profile"
  case "$which" in
    a | a-s) ;;
    b | b-s) name="broker-$profile-b"; broker_name="seckill-$profile-b"; BR_PORT=$((BR_PORT + 20)) ;;
    *) die "start broker: which broker? a, b, a-s or b-s, got '$which'" ;;
  esac
  local role=ASYNC_MASTER broker_id=0 replicas="" master_ha=$((BR_PORT + 1)) in_sync="$BROKER_IN_SYNC_REPLICAS"
  local flush="$BROKER_FLUSH_DISK_TYPE"
  # The bench profile is the pair's layout whose masters count only themselves: `make bench`
  # measures what waiting for the slave costs against it.
  [[ "$profile" == bench ]] && in_sync=1
  if has_slaves "$profile"; then
    # Waits for the slave only with both replicas counted (the default inSyncReplicas of 1
    # never waits); a slave later than slaveTimeout makes the send FLUSH_SLAVE_TIMEOUT.
    role=SYNC_MASTER
    # A SYNC_MASTER's SEND_OK also waits for its own flush: the ack frontier is the lesser of
    # its flushed offset and the slave's (rocketmq-store ha/ack_frontier.rs). So it flushes
    # synchronously: under ASYNC_FLUSH nothing wakes the waiting send when the background flush
    # lands, and it waits for the broker's 100 ms re-check (ha/group_transfer_service.rs,
    # PROGRESS_SAFETY_RECHECK_INTERVAL). `make bench` measured the broker ceiling at 3,789 msg/s,
    # 207 ms a batch, under ASYNC_FLUSH and 112,695 msg/s, 5.8 ms, under SYNC_FLUSH, whose put
    # path wakes it; the durability is the same, SEND_OK waited for the flush either way.
    flush=SYNC_FLUSH
    # Slaves flush in the background: only once 4 pages are dirty or every 10 s (the "thorough"
    # flush) by default; every 20 ms here (the broker refuses flushCommitLogLeastPages = 0).
    # slaveTimeout under the clients' send timeout (3 s): a send the slave does not confirm is
    # answered FLUSH_SLAVE_TIMEOUT (stored here, not replicated) instead of timing out unanswered.
    replicas="totalReplicas = 2
inSyncReplicas = $in_sync
slaveTimeout = 1000
flushIntervalCommitLog = 20
flushCommitLogThoroughInterval = 20"
  fi
  if [[ "$which" == *-s ]]; then
    [[ -n "$replicas" ]] || die "start broker $profile-$which: profile $profile has no slaves (make up PROFILE=cluster, or the pair profile)"
    name="$name-s"; role=SLAVE; broker_id=1; BR_PORT=$((BR_PORT + 40)); flush="$BROKER_FLUSH_DISK_TYPE"
    replicas="$replicas
# The master's replication port; without it the slave waits for the name server to name it.
haMasterAddress = \"$SECKILL_HOST:$master_ha\""
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
namesrvAddr = "$(namesrv_addrs "$profile")"
brokerIp1 = "$SECKILL_HOST"
listenPort = $BR_PORT
storePathRootDir = "$home/store"
autoCreateTopicEnable = true
# The role in both sections: a slave's start-up reads this one, the store reads [store]'s.
brokerRole = "$role"
# A slave serves no pulls. With reads on, a slave whose master is dead answers a pull of a queue
# with nothing new "retry at the master" (it does not learn that its master is gone), the client
# re-pulls at once, overruns its pull budget and drops pull requests, also of queues it must
# read from the master once that is back (docs/SCALING.md). Off, a pull there fails and waits.
slaveReadEnable = false
# Ask a producer about an undecided transaction message after 6 s, checking every 5 s, for up
# to an hour (720 rounds; the broker's 15 would discard a half message after ~75 s, and with it
# the order of a buy whose Redis deduction the check-back could not read in that time).
transactionTimeout = 6000
transactionCheckInterval = 5000
transactionCheckMax = 720
# A send runs holding one of as many permits as the machine has cores, a SYNC_MASTER's until its
# slave confirms (up to slaveTimeout); the others wait in the send queue, and one that waits
# longer than this is answered SYSTEM_BUSY, stored nowhere. The broker's 200 ms turned a 2m-2s
# pair on 2 busy cores into refused batches (a 503 for every buy in them); a second waits out one
# slow replica, and a wait plus a send (slaveTimeout) stays under the clients' 3 s timeout, so
# the refusal, when it comes, is still a clean "not stored" and not a timeout of unknown outcome.
waitTimeMillsInSendQueue = 1000

[broker.brokerServerConfig]
bindAddress = "$SECKILL_HOST"

[broker.brokerIdentity]
brokerName = "$broker_name"
brokerClusterName = "SeckillCluster"
brokerId = $broker_id

[store]
storePathRootDir = "$home/store"
flushDiskType = "$flush"
brokerRole = "$role"
# Replication listens on loopback like everything else (the broker's default is 0.0.0.0).
haListenAddress = "$SECKILL_HOST"
haListenPort = $((BR_PORT + 1))
$replicas
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
  log "$name up on $SECKILL_HOST:$BR_PORT ($role of $broker_name, registered with $(namesrv_addrs "$profile"); $flush)"
}

# The host's disk use for Prometheus (node_exporter's filesystem collector only): where the
# brokers keep their stores, which they stop writing to at 90 % (SeckillBrokerDiskFilling).
start_node_exporter() {
  if port_open "$NODE_EXPORTER_PORT"; then log "node-exporter: port $NODE_EXPORTER_PORT already open, reusing it"; return; fi
  start_bg node-exporter prometheus-node-exporter --web.listen-address="$SECKILL_HOST:$NODE_EXPORTER_PORT" \
    --collector.disable-defaults --collector.filesystem \
    --collector.filesystem.mount-points-exclude='^/(dev|proc|sys)($|/)' \
    --collector.filesystem.fs-types-exclude='^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|sysfs|tracefs|tmpfs)$'
  wait_port node-exporter "$NODE_EXPORTER_PORT" 30
  log "node-exporter up on $SECKILL_HOST:$NODE_EXPORTER_PORT (filesystems only)"
}

# Prometheus scraping `serve` and `consume` every 5 s, with config/prometheus/rules.yml. Its
# config is generated (the ports come from env.sh); its data lives in .run/data/prometheus.
# PROMETHEUS_NAME (default prometheus) names the instance's pid file, log and data directory;
# it scrapes $ORIGIN_PORT and $CONSUMER_PORT (the test shop starts one for its own origin).
start_prometheus() {
  local name="${PROMETHEUS_NAME:-prometheus}"
  start_node_exporter
  if port_open "$PROMETHEUS_PORT"; then
    log "$name already up on $SECKILL_HOST:$PROMETHEUS_PORT"
    return
  fi
  local dir="$SECKILL_DATA/$name"
  mkdir -p "$dir/tsdb"
  # Only the filesystem that holds the brokers' stores, labelled so the rules can name it.
  local store_mount; store_mount="$(df --output=target "$SECKILL_DATA" | tail -1)"
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
  - job_name: seckill-node
    static_configs:
      - targets: ["$SECKILL_HOST:$NODE_EXPORTER_PORT"]
    metric_relabel_configs:
      - source_labels: [__name__, mountpoint]
        regex: "node_filesystem_(avail|size)_bytes;$store_mount"
        action: keep
      - target_label: store
        replacement: brokers
YAML
  promtool check config "$dir/prometheus.yml" >>"$SECKILL_LOGS/$name.log" 2>&1 ||
    die "prometheus config does not check (see $SECKILL_LOGS/$name.log)"
  start_bg "$name" prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --storage.tsdb.retention.time=2d --web.listen-address="$SECKILL_HOST:$PROMETHEUS_PORT"
  wait_port "$name" "$PROMETHEUS_PORT" 30
  log "$name up on http://$SECKILL_HOST:$PROMETHEUS_PORT (scraping $SECKILL_HOST:$ORIGIN_PORT, :$CONSUMER_PORT and the disk of $store_mount)"
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
        always_2m_2s "$profile" && brokers=2m-2s
        [[ "$brokers" == 1 || "$brokers" == 2 || "$brokers" == 2m-2s ]] ||
          die "start mq $profile: brokers must be 1, 2 or 2m-2s, got '$brokers'"
        profile_ports "$profile"
        if [[ "$brokers" == 2m-2s ]]; then
          mkdir -p "$SECKILL_DATA"; touch "$SECKILL_DATA/broker-$profile.2m-2s"
        else
          rm -f "$SECKILL_DATA/broker-$profile.2m-2s"   # the layout asked for now
        fi
        start_namesrv "$profile"; has_slaves "$profile" && start_namesrv "$profile" 2
        start_broker "$profile" a
        [[ "$brokers" != 1 ]] && start_broker "$profile" b
        if [[ "$brokers" == 2m-2s ]]; then start_broker "$profile" a-s; start_broker "$profile" b-s; fi
        true ;;
      broker)
        case "${2:-dev}" in
          *-b-s) start_broker "${2%-b-s}" b-s ;;
          *-b) start_broker "${2%-b}" b ;;
          *-s) start_broker "${2%-s}" a-s ;;
          *) start_broker "${2:-dev}" a ;;
        esac ;;
      prometheus) start_prometheus ;;
      node-exporter) start_node_exporter ;;
      *) die "start what? redis | redis-cluster | mysql | mq dev|test|pair|bench [2|2m-2s] | broker <profile>[-b][-s] | prometheus" ;;
    esac ;;
  stop)
    [[ -n "${1:-}" ]] || die "stop what? redis | mysql | namesrv-<profile>[-2] | broker-<profile>[-b][-s]"
    stop_pidfile "$1" ;;
  kill-broker) stop_pidfile "broker-${1:-dev}" KILL ;;
  *) die "usage: services.sh install | start redis|mysql|mq <profile> [2|2m-2s]|broker <profile>[-b][-s] | stop NAME | kill-broker <profile>[-b][-s]" ;;
esac
