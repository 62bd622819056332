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
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
(( SECONDS_PER_RUN >= 12 )) || { echo "seconds must be at least 12" >&2; exit 2; }
BENCH_PORT="${PORT:-5096}"
# shellcheck source=benchmarks/lib.sh
source "$ROOT/benchmarks/lib.sh"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$BENCH_URL" --api-key "$BENCH_ADMIN_KEY" --accounts 10000 --quiet --clients 64)
[[ "$MODE" == batch ]] && LOADGEN+=(--batch 100)
run() {
    local label="$1" settings="$2" lg a0 a1 l0 l1 t0 t1 rate
    # shellcheck disable=SC2086 # the settings are words on purpose
    bench_start_api "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" "$OUT/api-cpu-api.log" $settings
    "${LOADGEN[@]}" --duration 10 --seed 1 >/dev/null
    "${LOADGEN[@]}" --duration "$SECONDS_PER_RUN" --seed 2 >"$OUT/api-cpu-load.txt" 2>&1 &
    lg=$!
    sleep 6
    a0=$(bench_cpu_ticks "$API_PID"); l0=$(bench_cpu_ticks "$lg"); t0=$(date +%s.%N)
    sleep $(( SECONDS_PER_RUN - 9 ))
    a1=$(bench_cpu_ticks "$API_PID"); l1=$(bench_cpu_ticks "$lg"); t1=$(date +%s.%N)
    wait "$lg"
    bench_stop_api
    rate=$(grep -E "^ +transfers" "$OUT/api-cpu-load.txt" | sed -E 's/.*\(([0-9,]+)\/s.*/\1/' | tr -d ,)
    python3 -c "
dt = $t1 - $t0; a = ($a1 - $a0) / $BENCH_TICKS / dt; l = ($l1 - $l0) / $BENCH_TICKS / dt; r = $rate
print(f'$label: {r}/s  api {a:.2f} cores ({a / r * 1e6:.0f} us/transfer)  load generator {l:.2f} cores ({l / r * 1e6:.0f} us/transfer)')"
}
echo "# $(bench_machine); $MODE; A: ${A:-defaults}; B: ${B:-defaults}; ${SECONDS_PER_RUN}s per run, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
    run "round $round A" "$A"
    run "round $round B" "$B"
done
