#!/usr/bin/env bash
# CI step for the clusters (docs/deployment.md, ADR 0023): start the three-node RabbitMQ and Kafka
# clusters of scripts/cluster.sh (in parallel), then, one process per cluster and both at once, the
# node-loss test and the conformance suite against that cluster; stop both clusters whatever happens.
# About 3-4 minutes on two cores. Needs root and the binaries of `scripts/services.sh up`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST="${PYTEST:-.venv/bin/pytest}"
LOGS="${CLUSTER_CI_LOGS:-data/ci-cluster}"
mkdir -p "$LOGS"
t0=$SECONDS

stop_clusters() {
    bash scripts/cluster.sh down rabbitmq >"$LOGS/down-rabbitmq.log" 2>&1 &
    bash scripts/cluster.sh down kafka >"$LOGS/down-kafka.log" 2>&1 &
    wait
    echo "cluster CI: clusters stopped; $((SECONDS - t0))s in all"
}
trap stop_clusters EXIT

bash scripts/cluster.sh up rabbitmq >"$LOGS/up-rabbitmq.log" 2>&1 & rabbit=$!
bash scripts/cluster.sh up kafka >"$LOGS/up-kafka.log" 2>&1 & kafka=$!
rc=0
wait $rabbit || rc=$?
wait $kafka || rc=$?
cat "$LOGS/up-rabbitmq.log" "$LOGS/up-kafka.log"
((rc == 0)) || { echo "cluster CI: a cluster did not start"; exit 1; }
echo "cluster CI: clusters up after $((SECONDS - t0))s"

export TIDINGS_REQUIRE_CLUSTER=1 TIDINGS_REQUIRE_SERVICES=1
run() { # name, pytest arguments...: one cluster's tests, output to its log
    local name="$1"
    shift
    if "$PYTEST" -q -s -p no:randomly "$@" >"$LOGS/$name.log" 2>&1; then echo ok; else echo FAILED; fi >"$LOGS/$name.status"
}
run rabbitmq tests/cluster/test_rabbitmq_node_loss.py &&
    TIDINGS_CONFORMANCE=clusters run rabbitmq-conformance tests/conformance -k rabbitmq-cluster &
run kafka tests/cluster/test_kafka_node_loss.py &&
    TIDINGS_CONFORMANCE=clusters run kafka-conformance tests/conformance -k kafka-cluster &
wait
failed=0
for name in rabbitmq rabbitmq-conformance kafka kafka-conformance; do
    status="$(cat "$LOGS/$name.status" 2>/dev/null || echo 'not run')"
    grep -h -E "cluster, killed| passed| failed" "$LOGS/$name.log" 2>/dev/null | sed "s/^/  $name: /" | tail -n 4
    echo "cluster CI: $name $status"
    [[ "$status" == ok ]] || failed=1
done
echo "cluster CI: tests done after $((SECONDS - t0))s"
exit $failed
