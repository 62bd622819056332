#!/usr/bin/env bash
# What the live events cost the transfer path: the end-to-end benchmark's 64-client closed loop
# against the embedded API, alternately with no event subscriber and with SUBSCRIBERS readers of
# /events/transfers plus one of /events/metrics and, when PAGE=1 (the default), the dashboard open in
# headless Chromium (/usr/bin/chromium; it reads both streams too), ROUNDS times each, after a warm-up.
# Prints one line per run (with the load average) and the means.
#   benchmarks/events.sh [seconds-per-run] [rounds]      SUBSCRIBERS=5 PAGE=1 SETTLE=5 (s before each run) by default
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-15}"
ROUNDS="${2:-3}"
SUBSCRIBERS="${SUBSCRIBERS:-5}"
PAGE="${PAGE:-1}"
SETTLE="${SETTLE:-5}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
PORT="${PORT:-5091}"
URL="http://127.0.0.1:$PORT"
ADMIN_KEY="bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ASPNETCORE_URLS="$URL" Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Embedded__SiloPort="${SILO_PORT:-11191}" \
    Transactor__Embedded__GatewayPort="${GATEWAY_PORT:-30091}" Logging__LogLevel__Default=Warning \
    dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/events-api.log" 2>&1 &
API_PID=$!
READERS=()
PROFILE=""
stop_readers() { for pid in "${READERS[@]}"; do kill "$pid" 2>/dev/null || true; done; for pid in "${READERS[@]}"; do wait "$pid" 2>/dev/null || true; done; READERS=(); [[ -n "$PROFILE" ]] && rm -rf "$PROFILE"; PROFILE=""; }
trap 'stop_readers; kill $API_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.5; done
AUTH=(-H "Authorization: Bearer $ADMIN_KEY")
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$ADMIN_KEY" --accounts 10000 --quiet --clients 64)
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $SUBSCRIBERS subscribers$([[ "$PAGE" == 1 ]] && echo ' + the page in headless Chromium') vs none, ${SECONDS_PER_RUN}s runs, $ROUNDS rounds"
"${LOADGEN[@]}" --duration 10 --seed 1 --out "$OUT/events-warmup.json" >/dev/null
# The subscribers the API counts: its latest metrics snapshot, which a new metrics stream gets first (made before that stream subscribed).
subscribers() { timeout 5 curl -sN "${AUTH[@]}" "$URL/events/metrics" | grep -m1 '^data:' | python3 -c "import json,sys;e=json.loads(sys.stdin.read()[5:])['events'];print(e['transfer_subscribers'], e['metrics_subscribers'])" 2>/dev/null || echo "0 0"; }
wait_for_subscribers() {
    local want_transfers=$((SUBSCRIBERS + PAGE)) want_metrics=$((1 + PAGE)) got
    for _ in $(seq 1 60); do
        got="$(subscribers)"
        read -r t m <<<"$got"
        if (( t >= want_transfers && m >= want_metrics )); then echo "$t transfer and $m metrics subscribers"; return; fi
        sleep 1
    done
    echo "only $t transfer and $m metrics subscribers after 60 s"
}
for round in $(seq 1 "$ROUNDS"); do
    for mode in none subscribed; do
        note=""
        if [[ "$mode" == subscribed ]]; then
            for i in $(seq 1 "$SUBSCRIBERS"); do curl -sN "${AUTH[@]}" "$URL/events/transfers" >"$OUT/events-reader-$i.txt" & READERS+=($!); done
            curl -sN "${AUTH[@]}" "$URL/events/metrics" >/dev/null & READERS+=($!)
            if [[ "$PAGE" == 1 ]]; then
                PROFILE="$(mktemp -d)"
                "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --user-data-dir="$PROFILE" \
                    --remote-debugging-port=0 "$URL/#key=$ADMIN_KEY" >"$OUT/events-chromium.log" 2>&1 & READERS+=($!)
            fi
            note=" ($(wait_for_subscribers))"
        fi
        # Both modes wait alike before the run: the browser's start (its processes, the page's first
        # layout and charts) is not what an open page costs, and would otherwise fall into the run.
        sleep "$SETTLE"
        load="$(cut -d' ' -f1 /proc/loadavg)"
        "${LOADGEN[@]}" --duration "$SECONDS_PER_RUN" --seed "$round" --out "$OUT/events-$mode-$round.json" >/dev/null
        received=""
        if [[ "$mode" == subscribed ]]; then
            stop_readers
            received=", reader 1 got $(grep -c '^event: transfer' "$OUT/events-reader-1.txt") transfer events ($(grep -c '^event: missed' "$OUT/events-reader-1.txt" || true) missed notices)$note"
        fi
        python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print(f\"round {sys.argv[2]} {sys.argv[3]}: {d['committed_per_second']:.0f} committed/s, p99 {d['p99_latency_ms']:.1f} ms, load average {sys.argv[4]} before{sys.argv[5]}\")" \
            "$OUT/events-$mode-$round.json" "$round" "$mode" "$load" "$received"
    done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
means = {}
for mode in ("none", "subscribed"):
    runs = [json.load(open(f"{out}/events-{mode}-{r}.json")) for r in range(1, rounds + 1)]
    rate = sum(r["committed_per_second"] for r in runs) / rounds
    p99 = sum(r["p99_latency_ms"] for r in runs) / rounds
    means[mode] = rate
    print(f"mean {mode}: {rate:.0f} committed/s, p99 {p99:.1f} ms")
ratios = [json.load(open(f"{out}/events-subscribed-{r}.json"))["committed_per_second"] / json.load(open(f"{out}/events-none-{r}.json"))["committed_per_second"] for r in range(1, rounds + 1)]
print(f"subscribed/none: mean of rounds {means['subscribed'] / means['none']:.3f}; per round " + ", ".join(f"{x:.3f}" for x in ratios))
PY
