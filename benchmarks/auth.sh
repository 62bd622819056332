#!/usr/bin/env bash
# The cost of API keys and signatures end to end, in one sitting, alternating, one API at a time:
#   off     this checkout with the security layer short-circuited (benchmarks/auth-off.patch applied
#           to a copy: every request is the bootstrap admin, no hashing, no token buckets, no
#           rate-limit headers): the same code without keys, the baseline of the issue's goals
#   client  a client key (owner checks, token buckets)
#   signed  a client key that requires signatures (the load generator's --sign)
#   admin   the configured bootstrap admin key
# and, when BEFORE_API_DLL names another build of the API (e.g. of the commit before a change),
# before-client and before-signed with it. Each run starts a fresh embedded API (in-memory ledger),
# opens and funds the load generator's accounts, warms up WARMUP_SECONDS (not measured), measures
# SECONDS_PER_RUN at 64 closed-loop clients, and stops the API: no idle API shares the cores.
# Rounds alternate the variants; the load average is printed with every run, and the API process's
# CPU time per 1,000 committed transfers (measured between the load's first and last progress lines).
#   [ACCOUNTS=10000] [WARMUP_SECONDS=6] [BEFORE_API_DLL=...] benchmarks/auth.sh [seconds] [rounds]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-15}"
ROUNDS="${2:-2}"
WARMUP_SECONDS="${WARMUP_SECONDS:-6}"
OUT="${TRANSACTOR_BENCH_OUT:-$ROOT/.bench}/auth"
mkdir -p "$OUT"
dotnet build "$ROOT/src/Transactor.Api" -c Release -v q -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.LoadGen" -c Release -v q -nologo >/dev/null
# The baseline: this commit's tree with benchmarks/auth-off.patch, built apart.
OFF_SRC="$OUT/off-src"
rm -rf "$OFF_SRC" && mkdir -p "$OFF_SRC"
(cd "$ROOT" && git archive HEAD) | tar -x -C "$OFF_SRC"
(cd "$OFF_SRC" && patch -p1 --quiet <"$ROOT/benchmarks/auth-off.patch")
dotnet build "$OFF_SRC/src/Transactor.Api" -c Release -v q -nologo >/dev/null
declare -A DLL=(
    [off]="$OFF_SRC/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll"
    [client]="$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll"
    [signed]="$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll"
    [admin]="$ROOT/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll"
)
VARIANTS=(off client signed admin)
if [[ -n "${BEFORE_API_DLL:-}" ]]; then
    DLL[before-client]="$BEFORE_API_DLL"; DLL[before-signed]="$BEFORE_API_DLL"
    VARIANTS+=(before-client before-signed)
fi
LOADGEN=(dotnet "$ROOT/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll" --accounts "${ACCOUNTS:-10000}" --clients 64)
BENCH_PORT="${BENCH_PORT:-5191}"
# shellcheck source=benchmarks/lib.sh
source "$ROOT/benchmarks/lib.sh"
key_for() { # variant
    case "$1" in
        off|admin) echo "$BENCH_ADMIN_KEY" ;;
        *) curl -sf -X POST "$BENCH_URL/keys" -H "Authorization: Bearer $BENCH_ADMIN_KEY" -H 'Content-Type: application/json' \
               -d "{\"name\":\"bench\",\"role\":\"client\",\"require_signature\":$([[ "$1" == *signed ]] && echo true || echo false),\"rate_per_second\":1000000,\"burst\":1000000}" \
               | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])' ;;
    esac
}
echo "# $(bench_machine); ${WARMUP_SECONDS}s warm-up + ${SECONDS_PER_RUN}s runs, 64 clients, ${ROUNDS} rounds; $(date -u +%FT%TZ)"
for round in $(seq 1 "$ROUNDS"); do
    for name in "${VARIANTS[@]}"; do
        bench_start_api "${DLL[$name]}" "$OUT/api-$name-$round.log"
        key="$(key_for "$name")"
        sign=(); [[ "$name" == *signed ]] && sign=(--sign)
        # Warm-up, then the measured run (each load generator run opens and funds accounts of its own first).
        "${LOADGEN[@]}" --target "$BENCH_URL" --api-key "$key" "${sign[@]}" --quiet --duration "$WARMUP_SECONDS" --seed "$round" --out "$OUT/warmup-$name-$round.json" >"$OUT/warmup-$name-$round.txt" 2>&1 || true
        load="$(cut -d' ' -f1 /proc/loadavg)"
        # The API's CPU time (utime+stime, clock ticks) beside the load generator's committed count at
        # each of its progress lines (every 2 s, on stderr): the CPU per 1,000 transfers is taken
        # between the first and the last line, so the accounts' opening and funding before the load
        # and the books' check after it are left out. It does not depend on what else runs on the cores.
        rm -f "$OUT/cpu-$name-$round.txt"
        "${LOADGEN[@]}" --target "$BENCH_URL" --api-key "$key" "${sign[@]}" --duration "$SECONDS_PER_RUN" --seed "$round" --out "$OUT/$name-$round.json" \
            2> >(while IFS= read -r line; do
                     echo "$line"
                     if [[ "$line" =~ committed\ ([0-9,]+) ]]; then
                         echo "${BASH_REMATCH[1]//,/} $(bench_cpu_ticks "$API_PID" 2>/dev/null)" >>"$OUT/cpu-$name-$round.txt"
                     fi
                 done >"$OUT/$name-$round.progress") >"$OUT/$name-$round.txt" || true
        sleep 0.2
        bench_stop_api
        python3 - "$OUT/$name-$round.json" "$name" "$round" "$load" "$OUT/cpu-$name-$round.txt" "$BENCH_TICKS" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))
cpu = "n/a"
if os.path.exists(sys.argv[5]):
    rows = [tuple(map(int, l.split())) for l in open(sys.argv[5]) if len(l.split()) == 2]
    if len(rows) >= 2 and rows[-1][0] > rows[0][0]:
        cpu = f"{(rows[-1][1] - rows[0][1]) / int(sys.argv[6]) * 1000 / (rows[-1][0] - rows[0][0]) * 1000:.0f}"
print(f"round {sys.argv[3]} {sys.argv[2]:13s} committed/s {s['committed_per_second']:8.0f}  errors {sum(s['errors_by_kind'].values())}  books balanced {s['books_balanced']}  answered p50/p99 ms {s['answered_p50_latency_ms']:.1f}/{s['answered_p99_latency_ms']:.1f}  API CPU ms/1,000 {cpu}  load average {sys.argv[4]}")
PY
    done
done
