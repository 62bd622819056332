#!/usr/bin/env bash
# Runs the topology the Aspire AppHost describes, without Aspire or Docker: PostgreSQL (from the
# distribution's packages), 3 silos and the API, all on loopback, configured with the same
# environment variables the AppHost sets. Ctrl+C stops everything but PostgreSQL
# (scripts/start-postgres.sh stop stops that).
#
#   scripts/run-cluster.sh              # 3 silos + API on http://127.0.0.1:5080
#   SILOS=5 scripts/run-cluster.sh      # more silos
#   API_MAX_CONCURRENT=256 API_MAX_QUEUED=128 scripts/run-cluster.sh   # admit more at once (default 64 + 64)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SILOS="${SILOS:-3}"
API_PORT="${API_PORT:-5080}"
CONFIGURATION="${CONFIGURATION:-Release}"
LOGS="${TRANSACTOR_LOGS:-$ROOT/.cluster/logs}"
mkdir -p "$LOGS"

CONNECTION_STRING="$("$ROOT/scripts/start-postgres.sh")"
echo "PostgreSQL: $CONNECTION_STRING"

dotnet build "$ROOT/src/Transactor.Silo" -c "$CONFIGURATION" -v quiet -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.Api" -c "$CONFIGURATION" -v quiet -nologo >/dev/null

# What the AppHost's Orleans resource and its AdoNet provider configuration emit: every process
# gets clustering; silos also get grain storage and reminders (the API is a client, as with
# orleans.AsClient(), and an Orleans client refuses a Reminders section).
export ConnectionStrings__transactordb="$CONNECTION_STRING"
export Orleans__ClusterId="${ORLEANS_CLUSTER_ID:-transactor}"
export Orleans__ServiceId="${ORLEANS_SERVICE_ID:-transactor}"
export Orleans__Clustering__ProviderType=AdoNet Orleans__Clustering__Invariant=Npgsql Orleans__Clustering__ConnectionName=transactordb
SILO_ONLY=(
    Orleans__GrainStorage__ledger__ProviderType=AdoNet Orleans__GrainStorage__ledger__Invariant=Npgsql Orleans__GrainStorage__ledger__ConnectionName=transactordb
    Orleans__Reminders__ProviderType=AdoNet Orleans__Reminders__Invariant=Npgsql Orleans__Reminders__ConnectionName=transactordb
)
export DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production

pids=()
cleanup() {
    echo "Stopping..."
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# A silo joins only once it has reached every silo the membership table lists as active. Silos of
# an earlier run that did not stop cleanly (killed, machine crashed) stay listed until their last
# "I am alive" is 90 s old (Orleans: 3 missed updates of 30 s), so a start soon after such a run
# waits up to that long before the first silo is up.
wait_healthy() {
    local url="$1" name="$2" log="$3" hinted=""
    for attempt in $(seq 1 360); do
        if curl -sf "$url" >/dev/null 2>&1; then return 0; fi
        if [[ -z "$hinted" && $attempt -gt 20 ]] && grep -q "Failed to get ping responses" "$log" 2>/dev/null; then
            echo "$name is waiting for silos of an earlier run that did not stop cleanly to be declared dead (up to 90 s after they stopped)..."
            hinted=yes
        fi
        sleep 0.5
    done
    echo "$name did not become healthy at $url within 3 minutes; see $LOGS" >&2
    exit 1
}

for i in $(seq 0 $((SILOS - 1))); do
    env "${SILO_ONLY[@]}" \
    Orleans__Endpoints__AdvertisedIPAddress=127.0.0.1 \
    Orleans__Endpoints__SiloPort=$((11111 + i)) \
    Orleans__Endpoints__GatewayPort=$((30000 + i)) \
    ASPNETCORE_URLS="http://127.0.0.1:$((5100 + i))" \
        dotnet "$ROOT/src/Transactor.Silo/bin/$CONFIGURATION/net10.0/Transactor.Silo.dll" >"$LOGS/silo$i.log" 2>&1 &
    pids+=($!)
    # The first silo creates the schema; the others join once it is up.
    [[ $i -eq 0 ]] && wait_healthy "http://127.0.0.1:5100/health" "silo0" "$LOGS/silo0.log"
done
for i in $(seq 1 $((SILOS - 1))); do wait_healthy "http://127.0.0.1:$((5100 + i))/health" "silo$i" "$LOGS/silo$i.log"; done

# Admission sized to what one small PostgreSQL on the same machine absorbs at sub-second latency
# (about 64 transfers in flight, docs/benchmarks.md); beyond it the API answers 429 at once
# instead of queueing requests for seconds. Raise both for a bigger database.
Transactor__Api__MaxConcurrentRequests="${API_MAX_CONCURRENT:-64}" \
Transactor__Api__MaxQueuedRequests="${API_MAX_QUEUED:-64}" \
ASPNETCORE_URLS="http://127.0.0.1:$API_PORT" \
    dotnet "$ROOT/src/Transactor.Api/bin/$CONFIGURATION/net10.0/Transactor.Api.dll" >"$LOGS/api.log" 2>&1 &
pids+=($!)
wait_healthy "http://127.0.0.1:$API_PORT/health" "api" "$LOGS/api.log"

echo "Transactor is up: $SILOS silos on PostgreSQL."
echo "  API:               http://127.0.0.1:$API_PORT   (docs: /scalar, counters: /metrics)"
for i in $(seq 0 $((SILOS - 1))); do
    echo "  silo$i dashboard:   http://127.0.0.1:$((5100 + i))/dashboard"
done
echo "  logs:              $LOGS"
echo "Press Ctrl+C to stop."
wait
