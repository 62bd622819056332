#!/usr/bin/env bash
# The overload table of docs/benchmarks.md (issue #21): the embedded API (Release) under a true open
# loop at 1x, 2x, 5x and 10x of a capacity given in transfers/s, with fixed and with adaptive
# admission limits; each run on a fresh API process. Writes one JSON summary per run into $OUT and
# prints a Markdown table of them at the end.
# usage: scripts/overload-table.sh CAPACITY_PER_S [SECONDS]
#   POLITE=0     all clients impolite (no breaker, no bulkhead, no retries: the server's admission alone);
#                default 1 (every client polite: Polly bulkhead, retries honouring Retry-After, breaker)
#   MODES="Fixed Adaptive", FACTORS="1 2 5 10"   which runs
#   API_DLL=...  another build of the API (for a before/after comparison in one sitting)
#   API_ENV="Transactor__Api__Admission__QueueTimeout=..."  extra settings for the API, space-separated
#   API_CPUS=1 LOAD_CPUS=0  pin the API and the load generator to these cores (taskset -c), so that the
#                generator's own work at 5x and 10x does not take the ledger's processor (a second machine, emulated)
#   WARMUP=5     seconds at 1x (open loop, impolite, not counted) on each fresh API before its run, so that
#                the run measures a warm process (JIT, accounts' activations), then 2 s to drain; 0 for none
set -euo pipefail
capacity=${1:?capacity in transfers/s}
seconds=${2:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/overload}
POLITE=${POLITE:-1}
MODES=${MODES:-Fixed Adaptive}
FACTORS=${FACTORS:-1 2 5 10}
WARMUP=${WARMUP:-5}
mkdir -p "$OUT"
api_dll=${API_DLL:-$root/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll}
load_dll=${LOAD_DLL:-$root/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll}
port=${PORT:-5393}
key=${ADMIN_KEY:-overload-table-admin-key-0123456789}
read -r -a extra <<< "${API_ENV:-}"
api_pin=(); load_pin=()
[ -n "${API_CPUS:-}" ] && api_pin=(taskset -c "$API_CPUS")
[ -n "${LOAD_CPUS:-}" ] && load_pin=(taskset -c "$LOAD_CPUS")
for mode in $MODES; do
  for factor in $FACTORS; do
    rate=$((capacity * factor))
    env ASPNETCORE_URLS=http://127.0.0.1:$port Logging__LogLevel__Default=Warning \
      Transactor__Embedded__SiloPort=$((port + 16000)) Transactor__Embedded__GatewayPort=$((port + 26000)) \
      Transactor__Auth__AdminKey=$key Transactor__Api__Admission__Mode=$mode Transactor__Transfers__Admission__Mode=$mode \
      "${extra[@]}" "${api_pin[@]}" dotnet "$api_dll" > "$OUT/api-$mode-$factor.log" 2>&1 &
    api=$!
    until curl -sf http://127.0.0.1:$port/alive > /dev/null; do sleep 0.5; done
    if [ "$WARMUP" -gt 0 ]; then
      "${load_pin[@]}" dotnet "$load_dll" --target http://127.0.0.1:$port --rate "$capacity" --open-loop --duration "$WARMUP" \
        --accounts 1000 --max-attempts 1 --polite 0 --api-key "$key" --quiet > "$OUT/warmup-$mode-$factor.log" 2>&1 || true
      sleep 2
    fi
    load_before=$(cut -d' ' -f1 /proc/loadavg)
    "${load_pin[@]}" dotnet "$load_dll" --target http://127.0.0.1:$port --rate "$rate" --open-loop --duration "$seconds" \
      --accounts 1000 --max-attempts 1 --polite "$POLITE" --api-key "$key" --quiet --out "$OUT/$mode-$factor.json" > "$OUT/load-$mode-$factor.log" 2>&1 || true
    peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$api/status)
    curl -s -H "Authorization: Bearer $key" http://127.0.0.1:$port/metrics > "$OUT/metrics-$mode-$factor.json" || true
    echo "$mode $factor $rate $peak_kb $load_before $(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/memory.txt"
    kill $api; wait $api 2>/dev/null || true
  done
done

# The table: goodput counts committed transfers over the sending time (the run's duration), so a
# slow drain after the run does not dilute it; shed is 429 (queue full) plus 503 (queue timeout).
echo "| Limits | Offered | Offered /s | Sent /s | Goodput /s | vs 1x | Admitted p50 ms | Admitted p99 ms | Shed 429 | Shed 503 | Client refusals | Peak in flight | API peak RSS MB | Final API / silo limit | Load avg |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for mode in $MODES; do
  base=""
  for factor in $FACTORS; do
    f=$OUT/$mode-$factor.json
    [ -f "$f" ] || { echo "| $mode | ${factor}x | (no result) |"; continue; }
    read -r _ _ rate peak_kb l1 l2 < <(grep "^$mode $factor " "$OUT/memory.txt" | tail -1)
    good=$(jq -r "(.committed / $seconds) | floor" "$f")
    [ -z "$base" ] && base=$good
    jq -r --arg mode "$mode" --arg factor "$factor" --arg rate "$rate" --arg good "$good" --arg base "$base" \
      --arg rss "$((peak_kb / 1024))" --arg load "$l1-$l2" --slurpfile m "$OUT/metrics-$mode-$factor.json" --arg seconds "$seconds" '
      def pct(n): if .transfers > 0 then ((1000 * n / .transfers | floor) / 10 | tostring) + " %" else "-" end;
      "| \($mode) | \($factor)x | \($rate) | \(.transfers / ($seconds | tonumber) | floor) | \($good) | \(if ($base|tonumber) > 0 then (100 * ($good|tonumber) / ($base|tonumber) | floor | tostring) + " %" else "-" end) | \(.answered_p50_latency_ms | floor) | \(.answered_p99_latency_ms | floor) | \(pct(.errors_by_kind["429"] // 0)) | \(pct(.errors_by_kind["503"] // 0)) | \(((.errors_by_kind["circuit_open"] // 0) + (.errors_by_kind["bulkhead_full"] // 0) + (.errors_by_kind["throttled"] // 0))) | \(.peak_in_flight) | \($rss) | \($m[0].admission.api_limit // "?") / \($m[0].admission.silo_limit // "?") | \($load) |"' "$f"
  done
done
