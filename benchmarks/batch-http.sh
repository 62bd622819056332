#!/usr/bin/env bash
# Batch submission against single requests over HTTP (issue #22): the embedded single-process API
# (in-memory storage), the same number of clients, alternating single and batch runs in one sitting
# after an unmeasured warm-up, so that a drift of the shared machine shows as a drift, not as a difference.
# Before and after them, the ceiling: the same ledger in process with no HTTP at all (the core
# benchmark, uniform over the same 10,000 accounts), which no batching over HTTP can pass.
#   benchmarks/batch-http.sh [seconds-per-run] [clients] [batch-size] [rounds]
#   CEILING=0 leaves the ceiling out.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-15}"
CLIENTS="${2:-64}"
BATCH="${3:-100}"
ROUNDS="${4:-2}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
ceiling() {
    [[ "${CEILING:-1}" == 1 ]] || return 0
    echo "## ceiling ($1): in process, no HTTP, 256 in flight, uniform over 10,000 accounts, ${SECONDS_PER_RUN}s after 8s"
    dotnet "$ROOT/benchmarks/Transactor.Benchmarks/bin/Release/net10.0/Transactor.Benchmarks.dll" --seconds "$SECONDS_PER_RUN" --warmup 8 \
        --engines transactor --workloads uniform | grep -E "^  uniform|processor:" || true
}
if [[ "${CEILING:-1}" == 1 ]]; then
    dotnet build "$ROOT/benchmarks/Transactor.Benchmarks" -c Release -v q -nologo >/dev/null
fi
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $CLIENTS clients; batches of $BATCH"
ceiling before
URL="http://127.0.0.1:5093"
# The API refuses ledger requests without a key: a throwaway admin key for this run.
ADMIN_KEY="bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ASPNETCORE_URLS="$URL" Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Embedded__SiloPort=11193 Transactor__Embedded__GatewayPort=30093 Logging__LogLevel__Default=Warning \
    dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/api-batch.log" 2>&1 &
API_PID=$!
trap 'kill $API_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.5; done
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$ADMIN_KEY" --accounts 10000 --quiet)
echo "## warm-up: 10 s of single transfers and 10 s of batches (not measured)"
"${LOADGEN[@]}" --clients "$CLIENTS" --duration 10 --seed 1 >/dev/null
"${LOADGEN[@]}" --clients "$CLIENTS" --duration 10 --seed 2 --batch "$BATCH" >/dev/null
for round in $(seq 1 "$ROUNDS"); do
    for mode in single batch; do
        extra=(); [[ $mode == batch ]] && extra=(--batch "$BATCH")
        echo "## round $round, $mode, ${SECONDS_PER_RUN}s"
        "${LOADGEN[@]}" --clients "$CLIENTS" --duration "$SECONDS_PER_RUN" --seed $((round * 10 + ${#mode})) "${extra[@]}" --out "$OUT/batch-$mode-$round.json" \
            | grep -E "^ +(transfers|latency|books|errors|rejected) " || true
    done
done
kill $API_PID 2>/dev/null || true
wait $API_PID 2>/dev/null || true
ceiling after
