#!/usr/bin/env bash
# The overload table of docs/benchmarks.md (issue #21): the embedded API (Release) under a true open
# loop at 1x, 2x, 5x and 10x of a capacity given in transfers/s, with fixed and with adaptive
# admission limits; each run on a fresh API process. Prints one JSON summary per run into $OUT.
# usage: scripts/overload-table.sh CAPACITY_PER_S [SECONDS]
set -euo pipefail
capacity=${1:?capacity in transfers/s}
seconds=${2:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/overload}
mkdir -p "$OUT"
api_dll=$root/src/Transactor.Api/bin/Release/net10.0/Transactor.Api.dll
load_dll=$root/src/Transactor.LoadGen/bin/Release/net10.0/Transactor.LoadGen.dll
port=5393
key=${ADMIN_KEY:-overload-table-admin-key-0123456789}
for mode in Fixed Adaptive; do
  for factor in 1 2 5 10; do
    rate=$((capacity * factor))
    ASPNETCORE_URLS=http://127.0.0.1:$port Logging__LogLevel__Default=Warning \
      Transactor__Embedded__SiloPort=21393 Transactor__Embedded__GatewayPort=31393 \
      Transactor__Auth__AdminKey=$key Transactor__Api__Admission__Mode=$mode Transactor__Transfers__Admission__Mode=$mode \
      dotnet "$api_dll" > "$OUT/api-$mode-$factor.log" 2>&1 &
    api=$!
    until curl -sf http://127.0.0.1:$port/alive > /dev/null; do sleep 0.5; done
    dotnet "$load_dll" --target http://127.0.0.1:$port --rate "$rate" --open-loop --duration "$seconds" \
      --accounts 1000 --max-attempts 1 --api-key "$key" --quiet --out "$OUT/$mode-$factor.json" > "$OUT/load-$mode-$factor.log" 2>&1 || true
    peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$api/status)
    curl -s -H "Authorization: Bearer $key" http://127.0.0.1:$port/metrics > "$OUT/metrics-$mode-$factor.json" || true
    echo "$mode $factor $rate $peak_kb" >> "$OUT/memory.txt"
    kill $api; wait $api 2>/dev/null || true
  done
done
