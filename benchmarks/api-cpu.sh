#!/usr/bin/env bash
# Transfers per second and processor time per transfer of the embedded API (in-memory storage) and
# of the load generator, over HTTP, for two variants of the API's settings run alternately on fresh
# processes: a comparison of one setting's cost in one sitting (docs/benchmarks.md, "The Orleans
# Dashboard's cost"). Each run: a fresh API, 10 s of unmeasured load, then SECONDS of load of which
# the steady middle (from 6 s to SECONDS-3 s) is measured from /proc/<pid>/stat.
#   benchmarks/api-cpu.sh [seconds] [rounds] [single|batch]
#   A="" B="Transactor__Dashboard__Enabled=false"   the two variants: space-separated KEY=VALUE settings
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-20}"
ROUNDS="${2:-3}"
MODE="${3:-batch}"
A="${A:-}"
B="${B:-Transactor__Dashboard__Enabled=false}"
PORT="${PORT:-5096}"
URL="http://127.0.0.1:$PORT"
KEY="api-cpu-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
(( SECONDS_PER_RUN >= 12 )) || { echo "seconds must be at least 12" >&2; exit 2; }
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$KEY" --accounts 10000 --quiet --clients 64)
[[ "$MODE" == batch ]] && LOADGEN+=(--batch 100)
TICKS="$(getconf CLK_TCK)"
API_PID=""
trap '[[ -n "$API_PID" ]] && kill "$API_PID" 2>/dev/null || true' EXIT
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
    local label="$1" settings="$2" api lg a0 a1 l0 l1 t0 t1 rate
    # shellcheck disable=SC2086 # the settings are words on purpose
    env $settings ASPNETCORE_URLS="$URL" Transactor__Auth__AdminKey="$KEY" Transactor__Embedded__SiloPort=$((PORT + 6000)) \
        Transactor__Embedded__GatewayPort=$((PORT + 25000)) Logging__LogLevel__Default=Warning \
        dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/api-cpu-api.log" 2>&1 &
    api=$!
    API_PID=$api
    for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.5; done
    "${LOADGEN[@]}" --duration 10 --seed 1 >/dev/null
    "${LOADGEN[@]}" --duration "$SECONDS_PER_RUN" --seed 2 >"$OUT/api-cpu-load.txt" 2>&1 &
    lg=$!
    sleep 6
    a0=$(cpu "$api"); l0=$(cpu "$lg"); t0=$(date +%s.%N)
    sleep $(( SECONDS_PER_RUN - 9 ))
    a1=$(cpu "$api"); l1=$(cpu "$lg"); t1=$(date +%s.%N)
    wait "$lg"
    kill "$api"; wait "$api" 2>/dev/null || true
    API_PID=""
    rate=$(grep -E "^ +transfers" "$OUT/api-cpu-load.txt" | sed -E 's/.*\(([0-9,]+)\/s.*/\1/' | tr -d ,)
    python3 -c "
dt = $t1 - $t0; a = ($a1 - $a0) / $TICKS / dt; l = ($l1 - $l0) / $TICKS / dt; r = $rate
print(f'$label: {r}/s  api {a:.2f} cores ({a / r * 1e6:.0f} us/transfer)  load generator {l:.2f} cores ({l / r * 1e6:.0f} us/transfer)')"
}
echo "# $(nproc) cores; $MODE; A: ${A:-defaults}; B: ${B:-defaults}; ${SECONDS_PER_RUN}s per run, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
    run "round $round A" "$A"
    run "round $round B" "$B"
done
