#!/usr/bin/env bash
# The 3-silo cluster end to end over HTTP with each grain storage provider for the ledger (issue #18):
# scripts/run-cluster.sh (PostgreSQL, 3 silos, the API) and the load generator at 64 clients, with
# Orleans' ADO.NET provider and with the batched provider, alternating in one sitting. Each run starts
# a fresh cluster on fresh rows (a ServiceId and ClusterId of its own), warms up for 10 s unmeasured,
# then measures; the cluster stops before the next run starts.
#   benchmarks/cluster-storage.sh [seconds-per-run] [rounds]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-20}"
ROUNDS="${2:-2}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}/cluster-storage"
mkdir -p "$OUT"
for project in Transactor.Api Transactor.Silo Transactor.LoadGen; do
    dotnet build "$ROOT/src/$project" -c Release -v q -nologo >/dev/null
done
URL="http://127.0.0.1:${API_PORT:-5080}"
CLUSTER_PID=""
stop_cluster() {
    if [[ -n "$CLUSTER_PID" ]]; then
        kill -TERM -- "-$CLUSTER_PID" 2>/dev/null || true
        wait "$CLUSTER_PID" 2>/dev/null || true
        CLUSTER_PID=""
    fi
}
trap stop_cluster EXIT
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); 3 silos + API on PostgreSQL; 64 clients, 10,000 accounts"
for round in $(seq 1 "$ROUNDS"); do
    for storage in AdoNet Batched; do
        id="bench-$storage-$round-$(date +%s)"
        key="txa.$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        echo "## round $round, $storage, ${SECONDS_PER_RUN}s (load average $(cut -d' ' -f1 /proc/loadavg))"
        # A process group of its own, so that stopping it stops every silo and the API.
        LEDGER_STORAGE="$storage" ORLEANS_CLUSTER_ID="$id" ORLEANS_SERVICE_ID="$id" ADMIN_KEY="$key" TRANSACTOR_LOGS="$OUT/$id" \
            setsid "$ROOT/scripts/run-cluster.sh" >"$OUT/$id.log" 2>&1 &
        CLUSTER_PID=$!
        for _ in $(seq 1 360); do
            grep -q "Admin API key" "$OUT/$id.log" 2>/dev/null && curl -sf "$URL/health" >/dev/null 2>&1 && break
            kill -0 "$CLUSTER_PID" 2>/dev/null || { echo "the cluster stopped; see $OUT/$id.log" >&2; exit 1; }
            sleep 0.5
        done
        LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$key" --accounts 10000 --clients 64 --quiet)
        "${LOADGEN[@]}" --duration 10 --seed 1 >/dev/null
        "${LOADGEN[@]}" --duration "$SECONDS_PER_RUN" --seed 2 | grep -E "^ +(transfers|latency|books|errors) " || true
        stop_cluster
    done
done
