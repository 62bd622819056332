#!/usr/bin/env bash
# Durable transfers on PostgreSQL, measured in one run against one server:
#   1. pgbench's built-in TPC-B-like workload (a bank transfer in SQL) at 64 clients,
#   2. Transactor on the batched grain storage (group commit across grains) at 64 concurrent
#      transfers over 10,000 accounts,
#   3. Transactor on Orleans' ADO.NET grain storage, the same transfers,
#   4. the same transfers with Orleans' own transactions (ADO.NET storage),
#   5. pgbench again: this machine's speed drifts by tens of percent within an hour, so the
#      ratio is taken against the mean of the runs before and after.
# Each engine gets a fresh database. The last lines, one per engine:
#   durable <engine>: <N> transfers/s, <R>x pgbench mean, p99 <P> ms, <C> commits/transfer
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
for db in bench_pgbench bench_batched bench_adonet bench_otx; do
    "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

"$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -s 10 -q bench_pgbench >/dev/null 2>&1
PGBENCH_TPS=()
pgbench_run() {
    echo "## pgbench TPC-B-like, 64 clients, ${SECONDS_PER_RUN}s ($1)"
    local out syncs_before syncs_after
    syncs_before="$("${PSQL[@]}" -At -c "SELECT wal_sync FROM pg_stat_wal")"
    local logs; logs="$(mktemp -d)"
    out="$("$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 64 -j 2 -T "$SECONDS_PER_RUN" -M prepared -P 10 \
        -l --log-prefix="$logs/tx" bench_pgbench 2>&1)"
    syncs_after="$("${PSQL[@]}" -At -c "SELECT wal_sync FROM pg_stat_wal")"
    # pgbench's own latency percentiles from its per-transaction log (third column, microseconds).
    cat "$logs"/tx* | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 } END {
        printf "pgbench latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d transactions, from its log)\n",
            v[int(NR * 0.50)] / 1000, v[int(NR * 0.99)] / 1000, v[NR] / 1000, NR }'
    rm -rf "$logs"
    grep -E "^(tps|latency|number of (transactions|failed))|progress" <<<"$out"
    awk -v s="$((syncs_after - syncs_before))" -v n="$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' <<<"$out")" \
        'BEGIN { printf "WAL syncs per transaction: %.2f (pg_stat_wal)\n", s / n }'
    PGBENCH_TPS+=("$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' <<<"$out")")
}
pgbench_run before

RESULTS=""
engine_run() { # <database> <ledger storage> <engines> <title>
    echo "## $4, 64 in flight, 10,000 accounts"
    local out
    out="$(dotnet run -c Release --project "$ROOT/benchmarks/Transactor.Benchmarks" -- \
        --postgres "${CONNECTION_STRING/Database=transactor/Database=$1}" --ledger-storage "$2" \
        --engines "$3" --concurrency 64 --accounts 10000 --workloads uniform \
        --seconds "$SECONDS_PER_RUN" --warmup 5 2>&1)"
    grep -v '^RESULT ' <<<"$out" || true
    RESULTS+="$(grep '^RESULT ' <<<"$out" || true)"$'\n'
}
engine_run bench_batched Batched transactor "Transactor on the batched grain storage"
engine_run bench_adonet AdoNet transactor "Transactor on Orleans' ADO.NET grain storage"
engine_run bench_otx AdoNet orleans-transactions "Orleans transactions on Orleans' ADO.NET grain storage"

pgbench_run after
MEAN="$(awk -v a="${PGBENCH_TPS[0]}" -v b="${PGBENCH_TPS[1]}" 'BEGIN { printf "%.0f", (a + b) / 2 }')"
echo "pgbench mean of both runs: $MEAN tps"
awk -v mean="$MEAN" '/^RESULT / {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    wrote = ("writecommits" in v) ? sprintf(", %s of them wrote", v["writecommits"]) : ""
    printf "durable %s: %d transfers/s, %.2fx pgbench mean, p99 %s ms, %s commits/transfer (%s statements/transfer%s, %s WAL syncs/transfer)\n",
        v["engine"], v["tps"], v["tps"] / mean, v["p99"], v["commits"], v["statements"], wrote, v["walsyncs"]
    delete v
}' <<<"$RESULTS"
