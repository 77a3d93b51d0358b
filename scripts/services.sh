#!/usr/bin/env bash
# Local backing services for Tidings development and CI, without docker.
#
#   scripts/services.sh up      [postgres|rabbitmq|kafka ...]   install if needed, configure, start, wait until ready
#   scripts/services.sh down    [postgres|rabbitmq|kafka ...]   stop
#   scripts/services.sh restart [postgres|rabbitmq|kafka ...]   really stop the server process, start it, wait
#   scripts/services.sh status  [postgres|rabbitmq|kafka ...]   one line per service; exit 1 if any is down
#   (no names = all three)
#
# Idempotent: `up` on a machine where everything runs returns in about a
# second; `up` after `down` only starts the servers.  Needs root for
# up/down/restart (apt-get, /etc); `status` works for any user.  Debian 12
# (bookworm), with or without systemd (it is not used).  Everything listens on 127.0.0.1 only:
#
#   postgres  postgresql://postgres:postgres@127.0.0.1:5432/postgres   (PostgreSQL 15, max_connections=300)
#   rabbitmq  amqp://guest:guest@127.0.0.1:5672/                       (management API http://127.0.0.1:15672/, guest/guest)
#   kafka     127.0.0.1:9092                                            (Kafka 4.x KRaft single node, see scripts/kafka.sh)
#
# Environment: SERVICES_TIMEOUT (default 120 s per service; Kafka: KAFKA_START_TIMEOUT, 180 s),
# TIDINGS_STATE_DIR (default /var/lib/tidings, where Kafka keeps jars and data).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TIMEOUT="${SERVICES_TIMEOUT:-120}"
ALL_SERVICES=(postgres rabbitmq kafka)

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_URL="postgresql://postgres:postgres@127.0.0.1:${PG_PORT}/postgres"
PG_CONF_DIR="/etc/postgresql/$PG_VERSION/$PG_CLUSTER"
PG_TIDINGS_CONF="$PG_CONF_DIR/conf.d/90-tidings.conf"

RMQ_NODENAME="rabbit@localhost"
RMQ_PIDFILE="/var/lib/rabbitmq/mnesia/${RMQ_NODENAME}.pid"
RMQ_URL="amqp://guest:guest@127.0.0.1:5672/"
RMQ_HTTP="http://127.0.0.1:15672/"

say() { printf '%s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

need_root() {
    [[ $EUID -eq 0 ]] || die "'$1' needs root (apt-get, /etc, service users); run it with sudo"
}

# true if the process exists and is not a zombie (a killed daemon stays a
# zombie until PID 1 reaps it, and kill -0 still succeeds on zombies)
alive() {
    local st
    st="$(sed -n 's/^.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Write a config file only when its content changes; returns 0 if it changed.
install_file() { # dest mode owner  (content on stdin)
    local dest="$1" mode="$2" owner="$3" tmp
    tmp="$(mktemp)"
    cat >"$tmp"
    if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 1
    fi
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
    if [[ -n "$owner" ]] && getent passwd "${owner%%:*}" >/dev/null; then
        chown "$owner" "$dest"
    fi
    return 0
}

APT_UPDATED=
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=
cleanup_policy_rc() {
    if [[ -n "$POLICY_RC_OURS" ]]; then
        rm -f "$POLICY_RC"
        POLICY_RC_OURS=
    fi
}
trap cleanup_policy_rc EXIT

# apt-get install without letting the packages' maintainer scripts start the
# daemons (there is no systemd here; we start them ourselves, configured).
apt_install() {
    if [[ -z "$APT_UPDATED" ]]; then
        apt-get update -qq -o Acquire::Retries=3 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    if [[ ! -e "$POLICY_RC" ]]; then
        printf '#!/bin/sh\n# temporary, from tidings scripts/services.sh: no daemon starts during apt-get\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        POLICY_RC_OURS=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        >/tmp/tidings-apt.log 2>&1 || rc=$?
    cleanup_policy_rc
    if ((rc != 0)); then
        tail -n 30 /tmp/tidings-apt.log >&2
        die "apt-get install $* failed (log: /tmp/tidings-apt.log)"
    fi
}

# ======================================================================
# PostgreSQL 15
# ======================================================================
pg_ctl() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" "$@"; }

pg_running() {
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    [[ -d "$PG_CONF_DIR" ]] || return 1
    pg_ctl status >/dev/null 2>&1
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

pg_login_ok() {
    PGPASSWORD=postgres PGCONNECT_TIMEOUT=3 psql -X -q -At "$PG_URL" -c 'select 1' >/dev/null 2>&1
}

pg_write_conf() {
    install_file "$PG_TIDINGS_CONF" 644 postgres:postgres <<'EOF'
# Written by tidings scripts/services.sh (development/CI database).
listen_addresses = '127.0.0.1'
port = 5432
# the test suites open many connections (pools per test, LISTEN sessions...)
max_connections = 300
# throwaway data: trade durability for speed
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

pg_up() {
    local t0 changed=0
    t0="$(now)"
    if [[ ! -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        say "postgres: installing postgresql-$PG_VERSION (apt)…"
        apt_install "postgresql-$PG_VERSION" postgresql-client-common
    fi
    if [[ ! -f "$PG_CONF_DIR/postgresql.conf" ]]; then
        say "postgres: creating cluster $PG_VERSION/$PG_CLUSTER…"
        pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
    fi
    # postgresql.conf of a Debian cluster ends with include_dir = 'conf.d'
    grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'conf\.d'" "$PG_CONF_DIR/postgresql.conf" ||
        echo "include_dir = 'conf.d'" >>"$PG_CONF_DIR/postgresql.conf"
    pg_write_conf && changed=1
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql && chmod 2775 /var/run/postgresql
    if pg_running; then
        if ((changed)); then
            say "postgres: configuration changed, restarting…"
            pg_ctl restart >/dev/null
        fi
    else
        say "postgres: starting…"
        pg_ctl start || die "postgres: pg_ctlcluster start failed (log: /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log)"
    fi
    local deadline=$((SECONDS + TIMEOUT)) retried=0
    until pg_ready; do
        # a postmaster killed with SIGKILL can look alive for a moment (zombie
        # not reaped yet); if it turns out not to run, start it (once)
        if ((!retried)) && ! pg_running; then
            retried=1
            say "postgres: not running, starting…"
            pg_ctl start || die "postgres: pg_ctlcluster start failed (log: /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log)"
        fi
        ((SECONDS < deadline)) || die "postgres: not ready on 127.0.0.1:$PG_PORT after ${TIMEOUT}s (log: /var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log)"
        sleep 0.3
    done
    if ! pg_login_ok; then
        say "postgres: setting password of role postgres…"
        (cd / && runuser -u postgres -- psql -X -q -d postgres -c "ALTER ROLE postgres WITH PASSWORD 'postgres'") >/dev/null
        pg_login_ok || die "postgres: cannot log in as postgres/postgres over TCP (check $PG_CONF_DIR/pg_hba.conf)"
    fi
    say "postgres: up at $PG_URL ($(since "$t0"))"
}

pg_down() {
    if pg_running; then
        pg_ctl stop -m fast >/dev/null
        say "postgres: stopped"
    else
        say "postgres: stopped (was not running)"
    fi
}

pg_restart() {
    pg_down
    pg_up
}

pg_status() {
    if pg_ready && pg_login_ok; then
        echo "postgres: up    $PG_URL ($(psql -X -At "$PG_URL" -c 'show server_version' 2>/dev/null | cut -d' ' -f1 || true))"
        return 0
    fi
    echo "postgres: down  $PG_URL"
    return 1
}

# ======================================================================
# RabbitMQ (Debian package, 3.10.x on bookworm)
# ======================================================================
rmq_write_conf() { # returns 0 if anything changed
    local changed=1
    install_file /etc/rabbitmq/rabbitmq.conf 644 rabbitmq:rabbitmq <<'EOF' && changed=0
# Written by tidings scripts/services.sh (development/CI broker).
listeners.tcp.default = 127.0.0.1:5672
management.tcp.ip = 127.0.0.1
management.tcp.port = 15672
# guest/guest is the default user; it may only connect from localhost, and
# everything here connects through 127.0.0.1.
default_user = guest
default_pass = guest
loopback_users.guest = true
# the disk of a CI machine can be small; do not block publishers early
disk_free_limit.absolute = 200MB
EOF
    install_file /etc/rabbitmq/rabbitmq-env.conf 644 rabbitmq:rabbitmq <<'EOF' && changed=0
# Written by tidings scripts/services.sh.  Sourced by the rabbitmq scripts.
# A node name that does not depend on the machine's hostname resolving.
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=5672
# epmd and Erlang distribution (used by rabbitmqctl) on loopback only
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
# su (used by Debian's wrappers) resets the soft fd limit to 1024 through
# pam_limits; tests open many connections, so raise it to the hard limit.
ulimit -n "$(ulimit -H -n)" 2>/dev/null || true
EOF
    install_file /etc/rabbitmq/enabled_plugins 644 rabbitmq:rabbitmq <<'EOF' && changed=0
[rabbitmq_management].
EOF
    return $changed
}

rmq_pid() {
    [[ -f "$RMQ_PIDFILE" ]] || return 1
    local pid
    pid="$(tr -d '[:space:]' <"$RMQ_PIDFILE" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q beam || return 1
    echo "$pid"
}

rmq_ready() { port_open 5672 && port_open 15672; }

rmq_http_ok() {
    curl -fsS -m 5 -u guest:guest "${RMQ_HTTP}api/overview" >/dev/null 2>&1
}

rmq_start() {
    say "rabbitmq: starting…"
    # Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user itself.
    (cd / && setsid rabbitmq-server -detached </dev/null >>/var/log/rabbitmq/tidings-start.log 2>&1) ||
        die "rabbitmq: rabbitmq-server -detached failed (see /var/log/rabbitmq/)"
    # `rabbitmqctl wait` waits for the pid file and then for the broker app
    if ! timeout "$((TIMEOUT + 5))" rabbitmqctl -q wait --timeout "$TIMEOUT" "$RMQ_PIDFILE" >/dev/null 2>&1; then
        tail -n 30 "/var/log/rabbitmq/${RMQ_NODENAME}.log" >&2 2>/dev/null || true
        die "rabbitmq: did not start within ${TIMEOUT}s (logs: /var/log/rabbitmq/)"
    fi
}

rmq_stop() {
    local pid
    if ! pid="$(rmq_pid)"; then
        return 1
    fi
    # `shutdown` stops the node and waits until the OS process has exited
    timeout "$((TIMEOUT + 5))" rabbitmqctl -q shutdown --timeout "$TIMEOUT" >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            say "rabbitmq: pid $pid did not exit, killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.3
    done
    rm -f "$RMQ_PIDFILE"
    return 0
}

rmq_up() {
    local t0 changed=0
    t0="$(now)"
    # config first: the package's first start (if any) must already see it
    rmq_write_conf && changed=1
    if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
        say "rabbitmq: installing rabbitmq-server (apt)…"
        apt_install rabbitmq-server
        chown -R rabbitmq:rabbitmq /etc/rabbitmq
    fi
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    mkdir -p /var/log/rabbitmq /var/lib/rabbitmq
    chown rabbitmq:rabbitmq /var/log/rabbitmq /var/lib/rabbitmq
    if rmq_pid >/dev/null; then
        if ((changed)); then
            say "rabbitmq: configuration changed, restarting…"
            rmq_stop || true
            rmq_start
        fi
    else
        rmq_start
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until rmq_ready && rmq_http_ok; do
        ((SECONDS < deadline)) || die "rabbitmq: 5672/15672 not serving after ${TIMEOUT}s (logs: /var/log/rabbitmq/)"
        sleep 0.3
    done
    say "rabbitmq: up at $RMQ_URL (management $RMQ_HTTP, $(since "$t0"))"
}

rmq_down() {
    local t0
    t0="$(now)"
    if rmq_stop; then
        say "rabbitmq: stopped ($(since "$t0"))"
    else
        say "rabbitmq: stopped (was not running)"
    fi
}

rmq_restart() {
    local t0
    t0="$(now)"
    if rmq_pid >/dev/null; then
        say "rabbitmq: stopping…"
        rmq_stop || true
    fi
    rmq_up
    say "rabbitmq: restarted ($(since "$t0"))"
}

rmq_status() {
    # (the pid file is only readable by root/rabbitmq; the ports tell enough)
    if rmq_ready && rmq_http_ok; then
        echo "rabbitmq: up    $RMQ_URL (management $RMQ_HTTP)"
        return 0
    fi
    echo "rabbitmq: down  $RMQ_URL"
    return 1
}

# ======================================================================
# Kafka (scripts/kafka.sh)
# ======================================================================
kafka_up() { bash "$SCRIPT_DIR/kafka.sh" start; }
kafka_down() { bash "$SCRIPT_DIR/kafka.sh" stop; }
kafka_restart() { bash "$SCRIPT_DIR/kafka.sh" restart; }
kafka_status() { bash "$SCRIPT_DIR/kafka.sh" status; }

# ======================================================================
usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local action="${1:-}"
    [[ $# -gt 0 ]] && shift
    local services=("$@")
    ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
    local -A fn=([postgres]=pg [postgresql]=pg [pg]=pg [rabbitmq]=rmq [rabbit]=rmq [kafka]=kafka)
    local s
    for s in "${services[@]}"; do
        [[ -n "${fn[$s]:-}" ]] || die "unknown service '$s' (known: ${ALL_SERVICES[*]})"
    done
    local t0 rc=0
    t0="$(now)"
    case "$action" in
        up | down | restart)
            need_root "$action"
            for s in "${services[@]}"; do "${fn[$s]}_$action"; done
            [[ "$action" == down ]] || say "services: $action done in $(since "$t0")"
            ;;
        status)
            for s in "${services[@]}"; do "${fn[$s]}_status" || rc=1; done
            return $rc
            ;;
        *) usage ;;
    esac
}

main "$@"
