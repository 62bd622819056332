#!/usr/bin/env bash
# End-to-end over HTTP on one machine: the load generator against the embedded single-process API,
# at 64 and 256 clients, then an overload run (open loop at 5x the measured capacity). A 10 s run of
# transfers first warms the API up (JIT tiering, pools, heap sizes) and is not measured: the tables
# are the steady state of a running service. WARMUP_SECONDS=0 measures from a cold start.
#   benchmarks/e2e.sh [seconds] [api-url]   (without api-url it starts the embedded API itself)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-20}"
URL="${2:-}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
# The load generator's key: TRANSACTOR_API_KEY for an API started elsewhere; the embedded API started
# here is given a new bootstrap admin key.
ADMIN_KEY="${TRANSACTOR_API_KEY:-bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
API_PID=""
if [[ -z "$URL" ]]; then
    URL="http://127.0.0.1:5090"
    ASPNETCORE_URLS="$URL" Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Embedded__SiloPort=11190 Transactor__Embedded__GatewayPort=30090 Logging__LogLevel__Default=Warning \
        dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/api.log" 2>&1 &
    API_PID=$!
    trap 'kill $API_PID 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.5; done
fi
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$ADMIN_KEY" --accounts 10000 --quiet)
rss() { [[ -n "$API_PID" ]] && echo "api rss $(( $(awk '/VmRSS/ {print $2}' /proc/$API_PID/status) / 1024 )) MiB, peak $(( $(awk '/VmHWM/ {print $2}' /proc/$API_PID/status) / 1024 )) MiB" || true; }
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); target $URL"
# The HTTP ceiling with the same client and clients: the lightest request the API serves, no ledger work.
echo "## baseline: GET /alive, 64 clients, ${SECONDS_PER_RUN}s"
"${LOADGEN[@]}" --ping --clients 64 --duration "$SECONDS_PER_RUN" --out "$OUT/ping-64.json"
WARMUP_SECONDS="${WARMUP_SECONDS:-10}"
if [[ "$WARMUP_SECONDS" -gt 0 ]]; then
    echo "## warm-up: 64 clients, ${WARMUP_SECONDS}s of transfers (not measured)"
    "${LOADGEN[@]}" --clients 64 --duration "$WARMUP_SECONDS" --seed 1 --out "$OUT/warmup.json" >"$OUT/warmup.txt"
    grep -E "^ +(transfers|books) " "$OUT/warmup.txt"
fi
for clients in 64 256; do
    echo "## closed loop, $clients clients, ${SECONDS_PER_RUN}s"
    "${LOADGEN[@]}" --clients "$clients" --duration "$SECONDS_PER_RUN" --seed "$clients" --out "$OUT/closed-$clients.json" | tail -12
    rss
done
CAPACITY="$(python3 -c "import json;print(json.load(open('$OUT/closed-64.json'))['committed_per_second'])")"
RATE="$(python3 -c "print(round(5*$CAPACITY))")"
# Enough clients that the 5x offered load reaches the API instead of queueing in the generator.
OVERLOAD_CLIENTS="${OVERLOAD_CLIENTS:-2048}"
echo "## overload: open loop at $RATE/s (5x the 64-client capacity of $CAPACITY/s), $OVERLOAD_CLIENTS clients, ${SECONDS_PER_RUN}s"
"${LOADGEN[@]}" --clients "$OVERLOAD_CLIENTS" --rate "$RATE" --duration "$SECONDS_PER_RUN" --max-attempts 3 --seed 5 --out "$OUT/overload.json" | tail -12
rss
