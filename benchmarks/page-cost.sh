#!/usr/bin/env bash
# What the dashboard page costs the browser: headless Chromium's processor time (all its processes)
# while the ledger runs a fixed, open-loop rate, so that every variant of the page receives the same
# events. Also the API's processor time. Each run opens the page in a fresh Chromium profile, waits
# 6 s, then measures over the load generator's --rate run.
#   benchmarks/page-cost.sh [rate] [seconds] [rounds]
#   VARIANTS="before=DIR after=DIR" compares versions of the page: each DIR holds an app.js and an
#   app.css, copied into src/Transactor.Api/wwwroot before its runs (the API serves the project's
#   wwwroot, UseStaticWebAssets); the checked-out files are put back at the end. Without VARIANTS,
#   the checked-out page alone.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATE="${1:-2500}"; SECS="${2:-20}"; ROUNDS="${3:-3}"
WWW="$ROOT/src/Transactor.Api/wwwroot"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}/page"
mkdir -p "$OUT/checked-out"
cp "$WWW/app.js" "$WWW/app.css" "$OUT/checked-out/"
VARIANTS="${VARIANTS:-current=$OUT/checked-out}"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
PORT="${PORT:-5093}"; URL="http://127.0.0.1:$PORT"
ADMIN_KEY="bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ASPNETCORE_URLS="$URL" Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Embedded__SiloPort=11193 \
    Transactor__Embedded__GatewayPort=30093 Logging__LogLevel__Default=Warning \
    dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/api.log" 2>&1 &
API=$!
PROFILE=""
cleanup() {
    [[ -n "$PROFILE" ]] && { pkill -f "$PROFILE" 2>/dev/null || true; rm -rf "$PROFILE"; }
    kill "$API" 2>/dev/null || true
    cp "$OUT/checked-out/app.js" "$OUT/checked-out/app.css" "$WWW/"
}
trap cleanup EXIT
for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && break; sleep 0.5; done
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$ADMIN_KEY" --accounts 10000 --quiet --clients 64)
"${LOADGEN[@]}" --duration 8 --seed 99 >/dev/null
ticks() { local t=0 p; for p in "$@"; do [[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $RATE transfers/s open loop, ${SECS}s runs, $ROUNDS rounds; $(date -u +%FT%TZ)"
for round in $(seq 1 "$ROUNDS"); do
    for variant in $VARIANTS; do
        name="${variant%%=*}"; dir="${variant#*=}"
        cp "$dir/app.js" "$dir/app.css" "$WWW/"
        PROFILE="$(mktemp -d /tmp/page-cost-profile.XXXXXX)"
        /usr/bin/chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --user-data-dir="$PROFILE" \
            --remote-debugging-port=0 "$URL/#key=$ADMIN_KEY" >"$OUT/chromium.log" 2>&1 &
        sleep 6
        # Chromium's processes, the ones it started since included: those whose command line names this profile.
        c0=$(ticks $(pgrep -f "$PROFILE")); a0=$(ticks "$API"); t0=$(date +%s.%N)
        "${LOADGEN[@]}" --rate "$RATE" --open-loop --duration "$SECS" --seed "$round" --out "$OUT/$name-$round.json" >/dev/null
        c1=$(ticks $(pgrep -f "$PROFILE")); a1=$(ticks "$API"); t1=$(date +%s.%N)
        pkill -f "$PROFILE" || true; sleep 1; rm -rf "$PROFILE"; PROFILE=""
        python3 -c "import json,sys;d=json.load(open(sys.argv[1]));s=float(sys.argv[5])-float(sys.argv[4]);hz=100
print(f'round {sys.argv[2]} {sys.argv[3]:10s} chromium {int(sys.argv[6])/hz/s:.3f} cores  API {int(sys.argv[7])/hz/s:.3f} cores  committed/s {d[\"committed_per_second\"]:.0f}  p99 {d[\"p99_latency_ms\"]:.1f} ms  load average {open(\"/proc/loadavg\").read().split()[0]}')" \
            "$OUT/$name-$round.json" "$round" "$name" "$t0" "$t1" "$((c1 - c0))" "$((a1 - a0))"
    done
done
