#!/usr/bin/env bash
# The cost of API keys and signatures end to end, in one sitting, alternating: the embedded API of
# this checkout with a client key, with a signing client key, and with the bootstrap admin key; and,
# when MAIN_API_DLL names a build of the API from before keys, that API without any key. Each
# variant gets its own API process (started fresh, warmed up for WARMUP_SECONDS, not measured), then
# ROUNDS rounds of SECONDS_PER_RUN s at 64 clients, variants interleaved within each round.
#   benchmarks/auth.sh [seconds] [rounds]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-15}"
ROUNDS="${2:-2}"
WARMUP_SECONDS="${WARMUP_SECONDS:-8}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}/auth"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
API_DLL="$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll"
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --accounts 10000 --quiet --clients 64)
ADMIN_KEY="bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
declare -A URL PID KEY SIGN
start_api() { # name dll port
    local name="$1" dll="$2" port="$3"
    URL[$name]="http://127.0.0.1:$port"
    ASPNETCORE_URLS="${URL[$name]}" Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Embedded__SiloPort=$((port + 6000)) \
        Transactor__Embedded__GatewayPort=$((port + 25000)) Logging__LogLevel__Default=Warning dotnet "$dll" >"$OUT/api-$name.log" 2>&1 &
    PID[$name]=$!
    for _ in $(seq 1 120); do curl -sf "${URL[$name]}/health" >/dev/null 2>&1 && return; sleep 0.5; done
    echo "$name did not start" >&2; exit 1
}
client_key() { # name signed
    curl -sf -X POST "${URL[$1]}/keys" -H "Authorization: Bearer $ADMIN_KEY" -H 'Content-Type: application/json' \
        -d "{\"name\":\"bench\",\"role\":\"client\",\"require_signature\":$2,\"rate_per_second\":1000000,\"burst\":1000000}" | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])'
}
trap 'for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
VARIANTS=(client signed admin)
start_api client "$API_DLL" 5191; KEY[client]="$(client_key client false)"; SIGN[client]=""
start_api signed "$API_DLL" 5192; KEY[signed]="$(client_key signed true)"; SIGN[signed]="--sign"
start_api admin "$API_DLL" 5193; KEY[admin]="$ADMIN_KEY"; SIGN[admin]=""
if [[ -n "${MAIN_API_DLL:-}" ]]; then
    start_api nokeys "$MAIN_API_DLL" 5194; KEY[nokeys]="unused"; SIGN[nokeys]=""
    VARIANTS=(nokeys "${VARIANTS[@]}")
fi
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${SECONDS_PER_RUN}s runs, 64 clients, ${ROUNDS} rounds"
run() { # name seconds seed out
    "${LOADGEN[@]}" --target "${URL[$1]}" --api-key "${KEY[$1]}" ${SIGN[$1]} --duration "$2" --seed "$3" --out "$4" >"$4.txt" 2>&1 || true
}
for name in "${VARIANTS[@]}"; do run "$name" "$WARMUP_SECONDS" 1 "$OUT/warmup-$name.json"; done
for round in $(seq 1 "$ROUNDS"); do
    for name in "${VARIANTS[@]}"; do
        run "$name" "$SECONDS_PER_RUN" $((round + 1)) "$OUT/$name-$round.json"
        python3 - "$OUT/$name-$round.json" "$name" "$round" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"round {sys.argv[3]} {sys.argv[2]:7s} committed/s {s['committed_per_second']:8.0f}  errors {sum(s['errors_by_kind'].values())}  books balanced {s['books_balanced']}  answered p50/p99 ms {s['answered_p50_latency_ms']:.1f}/{s['answered_p99_latency_ms']:.1f}")
PY
    done
done
