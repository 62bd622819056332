#!/usr/bin/env bash
# Durable transfers on PostgreSQL, measured in one run against one server:
#   1. pgbench's built-in TPC-B-like workload (a bank transfer in SQL) at 64 clients,
#   2. Transactor (Orleans ADO.NET storage) at 64 concurrent transfers over 10,000 accounts,
#   3. the same transfers with Orleans' own transactions on the same storage,
#   4. pgbench again: this machine's speed drifts by tens of percent within an hour, so the
#      ratio is taken against the mean of the runs before and after.
# Uses scripts/start-postgres.sh (fsync on, the server's defaults otherwise).
#
#   benchmarks/postgres.sh [seconds]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_RUN="${1:-30}"
CONNECTION_STRING="$("$ROOT/scripts/start-postgres.sh")"
PORT="$(sed -E 's/.*Port=([0-9]+).*/\1/' <<<"$CONNECTION_STRING")"
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -q)

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $("$BIN/postgres" --version)"

# Fresh databases, so each run starts alike.
for db in bench_pgbench bench_transactor; do
    "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 10 -q bench_pgbench >/dev/null 2>&1
PGBENCH_TPS=()
pgbench_run() {
    echo "## pgbench TPC-B-like, 64 clients, ${SECONDS_PER_RUN}s ($1)"
    local out
    out="$("$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 64 -j 2 -T "$SECONDS_PER_RUN" -M prepared -P 10 bench_pgbench 2>&1)"
    grep -E "^(tps|latency|number of (transactions|failed))|progress" <<<"$out"
    PGBENCH_TPS+=("$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<<"$out")")
}
pgbench_run before

echo "## Transactor and Orleans transactions on the same server, 64 in flight, 10,000 accounts"
TRANSACTOR_DB="${CONNECTION_STRING/Database=transactor/Database=bench_transactor}"
dotnet run -c Release --project "$ROOT/benchmarks/Transactor.Benchmarks" -- \
    --postgres "$TRANSACTOR_DB" --concurrency 64 --accounts 10000 --workloads uniform \
    --seconds "$SECONDS_PER_RUN" --warmup 5

pgbench_run after
awk -v a="${PGBENCH_TPS[0]}" -v b="${PGBENCH_TPS[1]}" \
    'BEGIN { printf "pgbench mean of both runs: %.0f tps (compare the Transactor row with it)\n", (a + b) / 2 }'
