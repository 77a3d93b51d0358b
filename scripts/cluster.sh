#!/usr/bin/env bash
# Three-node broker clusters on loopback, for the cluster tests and for trying Tidings against
# clusters on one machine.  Never touches the shared single-node servers of scripts/services.sh.
#
#   scripts/cluster.sh up     [rabbitmq|kafka]   start every node that is not running, form the cluster, wait
#   scripts/cluster.sh down   [rabbitmq|kafka]   stop every node (the data stays; `reset` wipes it)
#   scripts/cluster.sh status [rabbitmq|kafka]   one line per node; exit 1 if any is down
#   scripts/cluster.sh kill   rabbitmq|kafka N   SIGKILL node N (1-3), for failure tests
#   scripts/cluster.sh reset  [rabbitmq|kafka]   down, then wipe the data (the next `up` forms a new cluster)
#   (no name = both)
#
# Idempotent: `up` with every node running returns in a second; `up` after `kill` starts only the
# killed node, which rejoins with its data.  Needs root (the RabbitMQ nodes run as the rabbitmq
# user, as scripts/services.sh runs its node).  Binaries: those scripts/services.sh installs
# (rabbitmq-server from apt, the Kafka jars in $TIDINGS_STATE_DIR/kafka/libs).  Everything listens
# on 127.0.0.1 only:
#
#   rabbitmq  amqp://guest:guest@127.0.0.1:5701,127.0.0.1:5702,127.0.0.1:5703/
#             nodes tidings-c{1,2,3}@localhost, management 15701-15703, Erlang distribution 25701-25703
#             (quorum queues get a replica on every node)
#   kafka     kafka://127.0.0.1:19291,127.0.0.1:19292,127.0.0.1:19293
#             KRaft, three combined broker+controller nodes (controllers 19391-19393),
#             default.replication.factor=3, min.insync.replicas=2, unclean.leader.election.enable=false
#
# Environment: TIDINGS_STATE_DIR (default /var/lib/tidings; data under cluster/), CLUSTER_TIMEOUT (180 s),
# CLUSTER_KAFKA_HEAP (default "-Xmx512m -Xms256m" per broker).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${TIDINGS_STATE_DIR:-/var/lib/tidings}"
BASE="$STATE_DIR/cluster"
TIMEOUT="${CLUSTER_TIMEOUT:-180}"
NODES=(1 2 3)

RMQ_AMQP=(0 5701 5702 5703)
RMQ_HTTP=(0 15701 15702 15703)
RMQ_DIST=(0 25701 25702 25703)
KAFKA_PORT=(0 19291 19292 19293)
KAFKA_CONTROLLER=(0 19391 19392 19393)
KAFKA_LIBS="$STATE_DIR/kafka/libs"
KAFKA_HEAP="${CLUSTER_KAFKA_HEAP:--Xmx512m -Xms256m}"

say() { printf '%s\n' "$*"; }
die() { printf 'cluster: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { # the process exists and is no zombie
    local st
    st="$(sed -n 's/^.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}
pid_of() { # pidfile pattern: the pid if that process is alive and its command line matches
    local pid
    pid="$({ tr -d '[:space:]' <"$1"; } 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
    echo "$pid"
}
need_root() { [[ $EUID -eq 0 ]] || die "'$1' needs root (the RabbitMQ nodes run as the rabbitmq user)"; }

# ======================================================================
# RabbitMQ: tidings-c1..3@localhost
# ======================================================================
rmq_node() { echo "tidings-c$1@localhost"; }
rmq_dir() { echo "$BASE/rabbitmq/c$1"; }
rmq_pidfile() { echo "$(rmq_dir "$1")/node.pid"; }
rmq_pid() { pid_of "$(rmq_pidfile "$1")" beam; }
rmq_ctl() { local n="$1"; shift; (cd / && rabbitmqctl -n "$(rmq_node "$n")" "$@"); }

rmq_env() { # environment of node $1 for rabbitmq-server
    local n="$1" dir
    dir="$(rmq_dir "$n")"
    echo "RABBITMQ_NODENAME=$(rmq_node "$n")" \
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" "RABBITMQ_NODE_PORT=${RMQ_AMQP[$n]}" \
        "RABBITMQ_DIST_PORT=${RMQ_DIST[$n]}" "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
        "RABBITMQ_LOG_BASE=$dir/log" "RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
        "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" "RABBITMQ_PID_FILE=$dir/node.pid" \
        "ERL_EPMD_ADDRESS=127.0.0.1"
}

rmq_write_conf() {
    local n="$1" dir
    dir="$(rmq_dir "$n")"
    mkdir -p "$dir/log" "$dir/mnesia"
    cat >"$dir/rabbitmq.conf" <<EOF
# Written by tidings scripts/cluster.sh: node $n of the loopback test cluster.
listeners.tcp.default = 127.0.0.1:${RMQ_AMQP[$n]}
management.tcp.ip = 127.0.0.1
management.tcp.port = ${RMQ_HTTP[$n]}
loopback_users.guest = true
disk_free_limit.absolute = 200MB
collect_statistics_interval = 1000
# a fresh node joins whichever listed node runs (node 1 is started first); a node with data
# rejoins the cluster it belongs to
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = $(rmq_node 1)
cluster_formation.classic_config.nodes.2 = $(rmq_node 2)
cluster_formation.classic_config.nodes.3 = $(rmq_node 3)
EOF
    echo '[rabbitmq_management].' >"$dir/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$BASE/rabbitmq"
}

rmq_start() {
    local n="$1" dir
    dir="$(rmq_dir "$n")"
    rmq_write_conf "$n"
    for port in "${RMQ_AMQP[$n]}" "${RMQ_HTTP[$n]}" "${RMQ_DIST[$n]}"; do
        port_open "$port" && die "rabbitmq c$n: port $port on 127.0.0.1 is taken by another process"
    done
    # shellcheck disable=SC2046
    (cd / && env $(rmq_env "$n") \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none -kernel inet_dist_use_interface {127,0,0,1}" \
        setsid rabbitmq-server -detached </dev/null >>"$dir/log/start.log" 2>&1) ||
        die "rabbitmq c$n: rabbitmq-server -detached failed (logs in $dir/log)"
}

rmq_wait() {
    local n="$1"
    timeout "$((TIMEOUT + 5))" rabbitmqctl -n "$(rmq_node "$n")" -q wait --timeout "$TIMEOUT" "$(rmq_pidfile "$n")" \
        >/dev/null 2>&1 || {
        tail -n 20 "$(rmq_dir "$n")/log/"*.log >&2 2>/dev/null || true
        die "rabbitmq c$n: did not start within ${TIMEOUT}s (logs in $(rmq_dir "$n")/log)"
    }
    local deadline=$((SECONDS + TIMEOUT))
    until curl -fsS -m 5 -u guest:guest "http://127.0.0.1:${RMQ_HTTP[$n]}/api/overview" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "rabbitmq c$n: no management API on ${RMQ_HTTP[$n]} after ${TIMEOUT}s"
        sleep 0.3
    done
}

rmq_up() {
    local t0 n
    t0="$(now)"
    command -v rabbitmq-server >/dev/null 2>&1 || [[ -x /usr/sbin/rabbitmq-server ]] ||
        die "rabbitmq-server is not installed: run scripts/services.sh up rabbitmq once"
    # node 1 first, alone: on a new cluster the others find it running and join it; after `down`
    # it is the node stopped last, which boots without waiting for the others (RabbitMQ 3.10's
    # feature-flag sync can crash a node that boots while its peers boot too)
    if ! rmq_pid 1 >/dev/null; then
        say "rabbitmq: starting c1…"
        rmq_start 1
        local until_c1=$((SECONDS + 90))
        until rmq_http_ok 1 || ((SECONDS >= until_c1)); do sleep 0.5; done
    fi
    for n in 2 3; do rmq_pid "$n" >/dev/null || { say "rabbitmq: starting c$n…"; rmq_start "$n"; }; done
    for n in "${NODES[@]}"; do rmq_http_ok "$n" || rmq_wait "$n"; done
    local deadline=$((SECONDS + TIMEOUT)) running
    until running="$(rmq_running_count)" && ((running == 3)); do
        ((SECONDS < deadline)) || die "rabbitmq: only ${running:-0} of 3 nodes in the cluster after ${TIMEOUT}s"
        sleep 0.5
    done
    say "rabbitmq: cluster of 3 up at amqp://guest:guest@127.0.0.1:5701,127.0.0.1:5702,127.0.0.1:5703/ ($(since "$t0"))"
}

rmq_http_ok() { curl -fsS -m 5 -u guest:guest "http://127.0.0.1:${RMQ_HTTP[$1]}/api/overview" >/dev/null 2>&1; }

rmq_running_count() { # running cluster members, as any node answering sees them
    local n
    for n in "${NODES[@]}"; do
        if curl -fsS -m 5 -u guest:guest "http://127.0.0.1:${RMQ_HTTP[$n]}/api/nodes?columns=name,running" 2>/dev/null |
            python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin) if n.get("running")))'; then
            return 0
        fi
    done
    return 1
}

rmq_stop_node() {
    local n="$1" pid
    pid="$(rmq_pid "$n")" || return 1
    timeout "$((TIMEOUT + 5))" rabbitmqctl -n "$(rmq_node "$n")" -q shutdown --timeout "$TIMEOUT" >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    while alive "$pid"; do
        ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null || true; sleep 1; break; }
        sleep 0.3
    done
    rm -f "$(rmq_pidfile "$n")"
}

rmq_down() {
    local n
    # nodes 2 and 3 together, node 1 last: it is the one `up` starts first, alone, next time
    local pids=()
    for n in 3 2; do
        (if rmq_stop_node "$n"; then say "rabbitmq: c$n stopped"; else say "rabbitmq: c$n stopped (was not running)"; fi) &
        pids+=($!)
    done
    wait "${pids[@]}"
    if rmq_stop_node 1; then say "rabbitmq: c1 stopped"; else say "rabbitmq: c1 stopped (was not running)"; fi
}

rmq_status() {
    local n rc=0
    for n in "${NODES[@]}"; do
        if port_open "${RMQ_AMQP[$n]}" && curl -fsS -m 5 -u guest:guest "http://127.0.0.1:${RMQ_HTTP[$n]}/api/overview" >/dev/null 2>&1; then
            say "rabbitmq: c$n up    $(rmq_node "$n") amqp 127.0.0.1:${RMQ_AMQP[$n]} management ${RMQ_HTTP[$n]}"
        else
            say "rabbitmq: c$n down  $(rmq_node "$n") amqp 127.0.0.1:${RMQ_AMQP[$n]}"
            rc=1
        fi
    done
    return $rc
}

rmq_kill() {
    local pid
    pid="$(rmq_pid "$1")" || die "rabbitmq c$1 is not running"
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.1; done
    rm -f "$(rmq_pidfile "$1")"
    say "rabbitmq: c$1 killed (pid $pid)"
}

rmq_reset() { rmq_down; rm -rf "$BASE/rabbitmq"; say "rabbitmq: cluster data wiped"; }

# ======================================================================
# Kafka: three combined broker+controller nodes
# ======================================================================
kafka_dir() { echo "$BASE/kafka/b$1"; }
kafka_pid() { pid_of "$(kafka_dir "$1")/kafka.pid" 'kafka\.Kafka'; }
java_bin() { if [[ -n "${JAVA_HOME:-}" ]]; then echo "$JAVA_HOME/bin/java"; else command -v java; fi; }
kafka_class() { local cls="$1"; shift; "$(java_bin)" -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.xml" "$cls" "$@"; }
kafka_serving() { python3 "$SCRIPT_DIR/kafka/probe.py" "127.0.0.1:${KAFKA_PORT[$1]}" --timeout 3 >/dev/null 2>&1; }

kafka_write_conf() {
    local n="$1" dir
    dir="$(kafka_dir "$n")"
    mkdir -p "$dir/data"
    cat >"$dir/server.properties" <<EOF
# Written by tidings scripts/cluster.sh: node $n of the loopback test cluster (KRaft, broker+controller).
process.roles=broker,controller
node.id=$n
controller.quorum.voters=1@127.0.0.1:${KAFKA_CONTROLLER[1]},2@127.0.0.1:${KAFKA_CONTROLLER[2]},3@127.0.0.1:${KAFKA_CONTROLLER[3]}
listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT[$n]},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER[$n]}
advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT[$n]}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

# the guarantees: a write acknowledged with acks=all is on at least two brokers, and a replica
# that missed writes never becomes leader
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2

# a killed broker drops out of the ISR and is fenced within seconds, not the default 30 s / 9 s
replica.lag.time.max.ms=5000
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
group.initial.rebalance.delay.ms=0
group.coordinator.append.linger.ms=0
num.partitions=6
auto.create.topics.enable=false
delete.topic.enable=true

# keep the footprint small on a 2-core machine
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=104857600
EOF
}

kafka_format() { # all three with one cluster id, once
    local id n
    [[ -f "$(kafka_dir 1)/data/meta.properties" ]] && return 0
    id="$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    say "kafka: formatting storage of 3 nodes (cluster id $id)…"
    for n in "${NODES[@]}"; do
        kafka_write_conf "$n"
        kafka_class kafka.tools.StorageTool format -t "$id" -c "$(kafka_dir "$n")/server.properties" \
            >"$(kafka_dir "$n")/format.log" 2>&1 || { cat "$(kafka_dir "$n")/format.log" >&2; die "kafka b$n: format failed"; }
    done
}

kafka_start() {
    local n="$1" dir pid
    dir="$(kafka_dir "$n")"
    kafka_write_conf "$n"
    for port in "${KAFKA_PORT[$n]}" "${KAFKA_CONTROLLER[$n]}"; do
        port_open "$port" && die "kafka b$n: port $port on 127.0.0.1 is taken by another process"
    done
    ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
    # shellcheck disable=SC2086  # KAFKA_HEAP is a list of JVM options
    setsid nohup "$(java_bin)" $KAFKA_HEAP -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
        -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.xml" -Dkafka.logs.dir="$dir" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$dir/kafka.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/kafka.pid"
}

kafka_up() {
    local t0 n
    t0="$(now)"
    ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no Kafka jars in $KAFKA_LIBS: run scripts/services.sh up kafka once"
    kafka_format
    for n in "${NODES[@]}"; do kafka_pid "$n" >/dev/null || { say "kafka: starting b$n…"; kafka_start "$n"; }; done
    local deadline=$((SECONDS + TIMEOUT))
    for n in "${NODES[@]}"; do
        until kafka_serving "$n"; do
            kafka_pid "$n" >/dev/null || { tail -n 30 "$(kafka_dir "$n")/kafka.log" >&2; die "kafka b$n exited during startup"; }
            ((SECONDS < deadline)) || die "kafka b$n: not serving on ${KAFKA_PORT[$n]} after ${TIMEOUT}s"
            sleep 0.5
        done
    done
    say "kafka: cluster of 3 up at kafka://127.0.0.1:19291,127.0.0.1:19292,127.0.0.1:19293 ($(since "$t0"))"
}

kafka_down() {
    local n pid deadline
    local -A running=()
    for n in "${NODES[@]}"; do
        if pid="$(kafka_pid "$n")"; then running[$n]="$pid"; kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for n in "${NODES[@]}"; do
        if [[ -n "${running[$n]:-}" ]]; then
            pid="${running[$n]}"
            deadline=$((SECONDS + 60))
            while alive "$pid"; do
                ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null || true; sleep 1; break; }
                sleep 0.2
            done
            say "kafka: b$n stopped"
        else
            say "kafka: b$n stopped (was not running)"
        fi
        rm -f "$(kafka_dir "$n")/kafka.pid"
    done
}

kafka_status() {
    local n rc=0
    for n in "${NODES[@]}"; do
        if kafka_serving "$n"; then say "kafka: b$n up    127.0.0.1:${KAFKA_PORT[$n]} (node.id $n)"
        else say "kafka: b$n down  127.0.0.1:${KAFKA_PORT[$n]}"; rc=1; fi
    done
    return $rc
}

kafka_kill() {
    local pid
    pid="$(kafka_pid "$1")" || die "kafka b$1 is not running"
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.1; done
    rm -f "$(kafka_dir "$1")/kafka.pid"
    say "kafka: b$1 killed (pid $pid)"
}

kafka_reset() { kafka_down; rm -rf "$BASE/kafka"; say "kafka: cluster data wiped"; }

# ======================================================================
usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

main() {
    local action="${1:-}"
    [[ $# -gt 0 ]] && shift
    local -A fn=([rabbitmq]=rmq [rabbit]=rmq [kafka]=kafka)
    if [[ "$action" == kill ]]; then
        [[ $# -eq 2 && -n "${fn[$1]:-}" && "$2" =~ ^[123]$ ]] || usage
        need_root kill
        "${fn[$1]}_kill" "$2"
        return
    fi
    local services=("$@") s rc=0
    ((${#services[@]})) || services=(rabbitmq kafka)
    for s in "${services[@]}"; do [[ -n "${fn[$s]:-}" ]] || die "unknown cluster '$s' (known: rabbitmq kafka)"; done
    case "$action" in
        up | down | reset)
            need_root "$action"
            for s in "${services[@]}"; do "${fn[$s]}_$action"; done
            ;;
        status) for s in "${services[@]}"; do "${fn[$s]}_status" || rc=1; done; return $rc ;;
        *) usage ;;
    esac
}

main "$@"
