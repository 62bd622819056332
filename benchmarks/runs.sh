#!/usr/bin/env bash
# A run launched through the runs API (as the dashboard's buttons do) against the load generator
# for the same count, each on a freshly started embedded API (Release, in-memory storage): the run's
# transfers/s as the API reports it (since its transfers began, after its accounts are opened and
# funded), and the load generator's (64 clients, as the run's 64 at once), with the books of both.
#   benchmarks/runs.sh [count] [accounts]      (default 1000000 over 1000 accounts)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COUNT="${1:-1000000}"
ACCOUNTS="${2:-1000}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
PORT="${PORT:-5092}"
URL="http://127.0.0.1:$PORT"
ADMIN_KEY="bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
API_PID=""
start_api() {
    ASPNETCORE_URLS="$URL" Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Embedded__SiloPort="${SILO_PORT:-11192}" \
        Transactor__Embedded__GatewayPort="${GATEWAY_PORT:-30092}" Logging__LogLevel__Default=Warning \
        dotnet "$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll" >"$OUT/runs-api-$1.log" 2>&1 &
    API_PID=$!
    for _ in $(seq 1 120); do curl -sf "$URL/health" >/dev/null 2>&1 && return; sleep 0.5; done
    echo "the API did not start" >&2; exit 1
}
stop_api() { kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; API_PID=""; }
trap 'stop_api' EXIT
AUTH=(-H "Authorization: Bearer $ADMIN_KEY")
echo "# $(nproc) cores; $COUNT transfers over $ACCOUNTS accounts; load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S) UTC"

start_api run
started=$(date +%s)
id="$(curl -sf "${AUTH[@]}" -H 'Content-Type: application/json' -d "{\"count\":$COUNT,\"accounts\":$ACCOUNTS,\"name\":\"bench $COUNT\"}" "$URL/runs" | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')"
while :; do
    sleep 10
    view="$(curl -sf "${AUTH[@]}" "$URL/runs/$id")"
    state="$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["state"])' "$view")"
    [[ "$state" == done || "$state" == cancelled || "$state" == failed || "$state" == abandoned ]] && break
    python3 -c 'import json,sys;v=json.loads(sys.argv[1]);rss=int(open("/proc/"+sys.argv[2]+"/status").read().split("VmRSS:")[1].split()[0])//1024;print("  %s %d/%d at %.0f/s; rss %d MiB" % (v["state"], v["done"], v["count"], v["per_second"], rss), flush=True)' "$view" "$API_PID"
done
echo "runs API: $(python3 -c 'import json,sys;v=json.loads(sys.argv[1]);print("%s, %d committed, %d rejected, %d unfinished in %.0f s of transfers: %.0f transfers/s; books balanced: %s" % (v["state"], v["committed"], v["rejected"], v["unfinished"], v["seconds"], v["per_second"], (v.get("books") or {}).get("balanced")))' "$view"); $(( $(date +%s) - started )) s in all; load average $(cut -d' ' -f1-3 /proc/loadavg)"
stop_api

start_api loadgen
dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --target "$URL" --api-key "$ADMIN_KEY" --accounts "$ACCOUNTS" \
    --clients 64 --transfers "$COUNT" --quiet --out "$OUT/runs-loadgen.json" >"$OUT/runs-loadgen.txt"
echo "load generator: $(python3 -c "import json;d=json.load(open('$OUT/runs-loadgen.json'));print(f\"{d['committed_per_second']:.0f} committed/s, p99 {d['p99_latency_ms']:.1f} ms\")"); books: $(grep -E '^ +books' "$OUT/runs-loadgen.txt" | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
