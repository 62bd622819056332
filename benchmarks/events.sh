#!/usr/bin/env bash
# What the live events cost the transfer path: the end-to-end benchmark's 64-client closed loop
# against the embedded API, alternately with no event subscriber and with SUBSCRIBERS readers of
# /events/transfers plus one of /events/metrics (what an open dashboard reads), ROUNDS times each,
# after a warm-up. Prints one line per run and the means.
#   benchmarks/events.sh [seconds-per-run] [rounds]      SUBSCRIBERS=5 by default
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-15}"
ROUNDS="${2:-3}"
SUBSCRIBERS="${SUBSCRIBERS:-5}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
URL="http://127.0.0.1:5091"
ASPNETCORE_URLS="$URL" Transactor__Embedded__SiloPort=11191 Transactor__Embedded__GatewayPort=30091 Logging__LogLevel__Default=Warning \
    dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/events-api.log" 2>&1 &
API_PID=$!
READERS=()
stop_readers() { for pid in "${READERS[@]}"; do kill "$pid" 2>/dev/null || true; done; READERS=(); }
trap 'stop_readers; kill $API_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.5; done
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --accounts 10000 --quiet --clients 64)
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $SUBSCRIBERS subscribers vs none, ${SECONDS_PER_RUN}s runs, $ROUNDS rounds"
"${LOADGEN[@]}" --duration 10 --seed 1 --out "$OUT/events-warmup.json" >/dev/null
for round in $(seq 1 "$ROUNDS"); do
    for mode in none subscribed; do
        if [[ "$mode" == subscribed ]]; then
            for i in $(seq 1 "$SUBSCRIBERS"); do curl -sN "$URL/events/transfers" >"$OUT/events-reader-$i.txt" & READERS+=($!); done
            curl -sN "$URL/events/metrics" >/dev/null & READERS+=($!)
            sleep 1
        fi
        "${LOADGEN[@]}" --duration "$SECONDS_PER_RUN" --seed "$round" --out "$OUT/events-$mode-$round.json" >/dev/null
        received=""
        if [[ "$mode" == subscribed ]]; then
            stop_readers
            received=", reader 1 got $(grep -c '^event: transfer' "$OUT/events-reader-1.txt") transfer events ($(grep -c '^event: missed' "$OUT/events-reader-1.txt" || true) missed notices)"
        fi
        python3 -c "import json;d=json.load(open('$OUT/events-$mode-$round.json'));print(f\"round $round $mode: {d['committed_per_second']:.0f} committed/s, p99 {d['p99_latency_ms']:.1f} ms$received\")"
    done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
for mode in ("none", "subscribed"):
    runs = [json.load(open(f"{out}/events-{mode}-{r}.json")) for r in range(1, rounds + 1)]
    rate = sum(r["committed_per_second"] for r in runs) / rounds
    p99 = sum(r["p99_latency_ms"] for r in runs) / rounds
    print(f"mean {mode}: {rate:.0f} committed/s, p99 {p99:.1f} ms")
PY
