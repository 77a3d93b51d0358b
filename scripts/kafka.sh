#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft, broker+controller) on 127.0.0.1:9092
# for Tidings development and CI.  No docker, no tarball download: the jars
# come from Maven Central through scripts/kafka/pom.xml and are cached outside
# the repository.
#
#   scripts/kafka.sh start     fetch jars if needed, format storage once, start, wait until it serves
#   scripts/kafka.sh stop      stop the broker (SIGTERM, then SIGKILL after a timeout)
#   scripts/kafka.sh restart
#   scripts/kafka.sh status    exit 0 if the broker serves requests
#   scripts/kafka.sh tool CLASS ARGS...   run a Kafka tool class with the broker's classpath, e.g.
#        scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#   scripts/kafka.sh reset     stop and wipe the data directory (next start formats anew)
#
# Environment:
#   TIDINGS_STATE_DIR   default /var/lib/tidings (Kafka lives in $TIDINGS_STATE_DIR/kafka)
#   KAFKA_HEAP_OPTS     default "-Xmx1g -Xms256m"
#   KAFKA_START_TIMEOUT default 180 (seconds)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$SCRIPT_DIR/kafka"
STATE_DIR="${TIDINGS_STATE_DIR:-/var/lib/tidings}"
KAFKA_HOME="$STATE_DIR/kafka"
LIBS="$KAFKA_HOME/libs"
DATA_DIR="$KAFKA_HOME/data"
PROPS="$KAFKA_HOME/server.properties"
PIDFILE="$KAFKA_HOME/kafka.pid"
LOGFILE="$KAFKA_HOME/kafka.log"
BOOTSTRAP="127.0.0.1:9092"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms256m}"

log() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: ERROR: %s\n' "$*" >&2; exit 1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# true if the process exists and is not a zombie (a killed daemon stays a
# zombie until PID 1 reaps it, and kill -0 still succeeds on zombies)
alive() {
    local st
    st="$(sed -n 's/^.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        echo "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        return 1
    fi
}

# ---------------------------------------------------------------- jars
pom_stamp() { sha256sum "$TEMPLATES/pom.xml" | cut -d' ' -f1; }

libs_ok() {
    [[ -f "$LIBS/.stamp" && "$(cat "$LIBS/.stamp")" == "$(pom_stamp)" ]]
}

ensure_java() {
    if ! java_bin >/dev/null; then
        log "installing a Java runtime (openjdk-17-jre-headless)…"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null
    fi
    local v
    v="$("$(java_bin)" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
    [[ "${v%%.*}" -ge 17 ]] 2>/dev/null || die "Kafka 4 needs Java >= 17, found '$v'"
}

ensure_libs() {
    libs_ok && return 0
    command -v mvn >/dev/null 2>&1 || {
        log "installing maven…"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends maven >/dev/null
    }
    local t0 tmp
    t0="$(now)"
    log "fetching jars from Maven Central (scripts/kafka/pom.xml)…"
    mkdir -p "$KAFKA_HOME"
    tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
    chmod 755 "$tmp"
    if ! mvn -q -B -U -Dstyle.color=never -f "$TEMPLATES/pom.xml" \
            dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
        tail -n 30 "$KAFKA_HOME/mvn.log" >&2
        rm -rf "$tmp"
        die "maven could not fetch the Kafka jars (full log: $KAFKA_HOME/mvn.log)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar after maven run"; }
    pom_stamp >"$tmp/.stamp"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "jars ready: $(basename "$(ls "$LIBS"/kafka_2.13-*.jar)") ($(since "$t0"))"
}

kafka_version() {
    local jars=("$LIBS"/kafka_2.13-*.jar) j
    [[ -f "${jars[0]}" ]] || return 0
    j="${jars[0]##*/kafka_2.13-}"
    echo "${j%.jar}"
}

run_class() {
    local cls="$1"
    shift
    "$(java_bin)" -Xmx512m -cp "$LIBS/*" \
        -Dlog4j2.configurationFile="$TEMPLATES/log4j2.xml" \
        "$cls" "$@"
}

# ---------------------------------------------------------------- config/storage
render_config() {
    mkdir -p "$DATA_DIR"
    local tmp
    tmp="$(mktemp "$KAFKA_HOME/server.properties.XXXXXX")"
    sed "s|@DATA_DIR@|$DATA_DIR|g" "$TEMPLATES/server.properties.template" >"$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$PROPS"
}

ensure_formatted() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local t0 cluster_id
    t0="$(now)"
    # 16 random bytes, url-safe base64 without padding = a Kafka cluster id
    cluster_id="$(python3 -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    log "formatting storage in $DATA_DIR (cluster id $cluster_id)…"
    run_class kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >"$KAFKA_HOME/format.log" 2>&1 || {
        cat "$KAFKA_HOME/format.log" >&2
        die "storage format failed"
    }
    log "storage formatted ($(since "$t0"))"
}

# ---------------------------------------------------------------- process
running_pid() {
    # prints the pid and succeeds if our broker process is alive
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

serving() { python3 "$TEMPLATES/probe.py" "$BOOTSTRAP" --timeout 3 >/dev/null 2>&1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
    local t0 pid
    t0="$(now)"
    if pid="$(running_pid)"; then
        if serving; then
            log "up at $BOOTSTRAP (pid $pid, already running)"
            return 0
        fi
        log "process $pid is running but not serving yet; waiting…"
    else
        [[ $EUID -eq 0 || -w "$STATE_DIR" ]] || die "needs root (or write access to $STATE_DIR)"
        mkdir -p "$KAFKA_HOME"
        ensure_java
        ensure_libs
        render_config
        ensure_formatted
        if port_in_use 9092 || port_in_use 9093; then
            die "port 9092 or 9093 on 127.0.0.1 is already taken by another process"
        fi
        log "starting Kafka $(kafka_version)…"
        # setsid + no inherited stdio: the broker must not keep the caller's
        # terminal or pipes open, and must survive the caller's exit.
        : >>"$LOGFILE"
        ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
        # shellcheck disable=SC2086  # HEAP_OPTS is a list of JVM options
        setsid nohup "$(java_bin)" $HEAP_OPTS \
            -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$TEMPLATES/log4j2.xml" \
            -Dkafka.logs.dir="$KAFKA_HOME" \
            -cp "$LIBS/*" kafka.Kafka "$PROPS" \
            </dev/null >>"$LOGFILE" 2>&1 &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    until serving; do
        if ! alive "$pid"; then
            tail -n 40 "$LOGFILE" >&2
            rm -f "$PIDFILE"
            die "broker process exited during startup (log: $LOGFILE)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "$LOGFILE" >&2
            die "not serving on $BOOTSTRAP after ${START_TIMEOUT}s (pid $pid, log: $LOGFILE)"
        fi
        sleep 0.5
    done
    log "up at $BOOTSTRAP (pid $pid, $(since "$t0"))"
}

cmd_stop() {
    local pid t0
    t0="$(now)"
    if ! pid="$(running_pid)"; then
        rm -f "$PIDFILE"
        log "stopped (was not running)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "pid $pid still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.2
    done
    rm -f "$PIDFILE"
    log "stopped ($(since "$t0"))"
}

cmd_status() {
    local pid
    if serving; then
        pid="$(running_pid)" || pid="?"
        echo "kafka: up    $BOOTSTRAP (Kafka $(kafka_version), pid $pid)"
        return 0
    elif pid="$(running_pid)"; then
        echo "kafka: starting/unhealthy (pid $pid, not serving on $BOOTSTRAP; log: $LOGFILE)"
        return 1
    fi
    echo "kafka: down  $BOOTSTRAP"
    return 1
}

cmd_reset() {
    cmd_stop
    rm -rf "$DATA_DIR"
    log "data wiped ($DATA_DIR); next start formats fresh storage"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    tool)
        shift
        [[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
        libs_ok || die "jars not fetched yet: run '$0 start' first"
        run_class "$@"
        ;;
    *)
        echo "usage: $0 start|stop|restart|status|reset|tool CLASS [ARGS...]" >&2
        exit 2
        ;;
esac
