#!/usr/bin/env bash
# Runs the topology the Aspire AppHost describes, without Aspire or Docker: PostgreSQL (from the
# distribution's packages), N silos and the API, all on loopback, configured with the same
# environment variables the AppHost sets. Each process runs in its own build output folder, so it
# loads its own appsettings.json (log levels included). Ctrl+C or TERM stops every silo and the API;
# PostgreSQL keeps running (scripts/start-postgres.sh stop stops it).
#
#   scripts/run-cluster.sh              # 3 silos + API on http://127.0.0.1:5080
#   SILOS=5 scripts/run-cluster.sh      # more silos
#   API_MAX_CONCURRENT=256 API_MAX_QUEUED=128 scripts/run-cluster.sh   # admit more at once (default 64 + 64)
#
# Settings (environment variables, with their defaults):
#   SILOS=3                  number of silos
#   API_PORT=5080            the API's HTTP port
#   SILO_HTTP_PORT=5100      silo i serves /health and its dashboard on SILO_HTTP_PORT+i
#   SILO_PORT=11111          silo i's silo-to-silo port is SILO_PORT+i
#   GATEWAY_PORT=30000       silo i's gateway (client) port is GATEWAY_PORT+i
#   TRANSACTOR_PGPORT=55432  PostgreSQL's port (TRANSACTOR_PGDATA, its data folder: see start-postgres.sh)
#   CONFIGURATION=Release    build configuration
#   LEDGER_STORAGE=Batched   the ledger's grain storage provider: Batched (group commit) or AdoNet (Orleans')
#   TRANSACTOR_LOGS=.cluster/logs   where each process writes its log (and the cluster its pid file)
#   ORLEANS_CLUSTER_ID=transactor, ORLEANS_SERVICE_ID=transactor
#
# It refuses to start while a cluster it started still runs (its pid file names a live process) or
# while any of its ports is taken.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SILOS="${SILOS:-3}"
API_PORT="${API_PORT:-5080}"
SILO_HTTP_PORT="${SILO_HTTP_PORT:-5100}"
SILO_PORT="${SILO_PORT:-11111}"
GATEWAY_PORT="${GATEWAY_PORT:-30000}"
CONFIGURATION="${CONFIGURATION:-Release}"
LOGS="${TRANSACTOR_LOGS:-$ROOT/.cluster/logs}"
PIDS_FILE="$LOGS/cluster.pids"
mkdir -p "$LOGS"

# A cluster of an earlier run still running: its pid file names a live process.
if [[ -f "$PIDS_FILE" ]]; then
    while read -r pid; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            echo "A cluster is already running (process $pid, listed in $PIDS_FILE); stop it first (Ctrl+C in its terminal, or kill $pid)." >&2
            exit 1
        fi
    done <"$PIDS_FILE"
    rm -f "$PIDS_FILE"
fi

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports=("$API_PORT")
for i in $(seq 0 $((SILOS - 1))); do
    ports+=($((SILO_HTTP_PORT + i)) $((SILO_PORT + i)) $((GATEWAY_PORT + i)))
done
for port in "${ports[@]}"; do
    if port_taken "$port"; then
        echo "Port $port is in use on 127.0.0.1 (another cluster, or the embedded ledger of 'dotnet run --project src/Transactor.Api'?)." >&2
        echo "Stop that process, or choose other ports: API_PORT, SILO_HTTP_PORT, SILO_PORT, GATEWAY_PORT (see the top of $0)." >&2
        exit 1
    fi
done

CONNECTION_STRING="$("$ROOT/scripts/start-postgres.sh")"
echo "PostgreSQL: $CONNECTION_STRING"

dotnet build "$ROOT/src/Transactor.Silo" -c "$CONFIGURATION" -v quiet -nologo >/dev/null
dotnet build "$ROOT/src/Transactor.Api" -c "$CONFIGURATION" -v quiet -nologo >/dev/null
SILO_DIR="$ROOT/src/Transactor.Silo/bin/$CONFIGURATION/net10.0"
API_DIR="$ROOT/src/Transactor.Api/bin/$CONFIGURATION/net10.0"

# What the AppHost's Orleans resource and its AdoNet provider configuration emit: every process
# gets clustering; silos also get grain storage and reminders (the API is a client, as with
# orleans.AsClient(), and an Orleans client refuses a Reminders section).
export ConnectionStrings__transactordb="$CONNECTION_STRING"
export Orleans__ClusterId="${ORLEANS_CLUSTER_ID:-transactor}"
export Orleans__ServiceId="${ORLEANS_SERVICE_ID:-transactor}"
export Orleans__Clustering__ProviderType=AdoNet Orleans__Clustering__Invariant=Npgsql Orleans__Clustering__ConnectionName=transactordb
SILO_ONLY=(
    Orleans__GrainStorage__ledger__ProviderType="${LEDGER_STORAGE:-Batched}" Orleans__GrainStorage__ledger__Invariant=Npgsql Orleans__GrainStorage__ledger__ConnectionName=transactordb
    Orleans__Reminders__ProviderType=AdoNet Orleans__Reminders__Invariant=Npgsql Orleans__Reminders__ConnectionName=transactordb
)
export DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production

pids=()
stopping=""
cleanup() {
    [[ -n "$stopping" ]] && return
    stopping=yes
    trap - INT TERM
    if [[ ${#pids[@]} -gt 0 ]]; then
        echo "Stopping ${#pids[@]} process(es): the silos and the API..."
        kill -TERM "${pids[@]}" 2>/dev/null || true
        # Each process bounds its own stop (Transactor:Hosting:StopTimeout, 15 s, then it exits).
        wait "${pids[@]}" 2>/dev/null || true
    fi
    rm -f "$PIDS_FILE"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# Starts a program in its build output folder, so that its content root (and appsettings.json) is its own.
start() {
    local dir="$1" dll="$2" log="$3"
    shift 3
    (cd "$dir" && exec env "$@" dotnet "$dll") >"$log" 2>&1 &
    pids+=($!)
    echo $! >>"$PIDS_FILE"
}

# A silo joins only once it has reached every silo the membership table lists as active. Silos of
# an earlier run that did not stop cleanly (killed, machine crashed) stay listed until their last
# "I am alive" is 90 s old (Orleans: 3 missed updates of 30 s), so a start soon after such a run
# waits up to that long before the first silo is up.
wait_healthy() {
    local url="$1" name="$2" log="$3" pid="$4" hinted=""
    for attempt in $(seq 1 360); do
        if curl -sf "$url" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited before it was healthy; the end of $log:" >&2
            tail -n 20 "$log" >&2
            exit 1
        fi
        if [[ -z "$hinted" && $attempt -gt 20 ]] && grep -q "Failed to get ping responses" "$log" 2>/dev/null; then
            echo "$name is waiting for silos of an earlier run that did not stop cleanly to be declared dead (up to 90 s after they stopped)..."
            hinted=yes
        fi
        sleep 0.5
    done
    echo "$name did not become healthy at $url within 3 minutes; see $LOGS" >&2
    exit 1
}

: >"$PIDS_FILE"
for i in $(seq 0 $((SILOS - 1))); do
    start "$SILO_DIR" Transactor.Silo.dll "$LOGS/silo$i.log" "${SILO_ONLY[@]}" \
        Orleans__Endpoints__AdvertisedIPAddress=127.0.0.1 \
        Orleans__Endpoints__SiloPort=$((SILO_PORT + i)) \
        Orleans__Endpoints__GatewayPort=$((GATEWAY_PORT + i)) \
        ASPNETCORE_URLS="http://127.0.0.1:$((SILO_HTTP_PORT + i))"
    # The first silo creates the schema; the others join once it is up.
    [[ $i -eq 0 ]] && wait_healthy "http://127.0.0.1:$SILO_HTTP_PORT/health" "silo0" "$LOGS/silo0.log" "${pids[0]}"
done
for i in $(seq 1 $((SILOS - 1))); do
    wait_healthy "http://127.0.0.1:$((SILO_HTTP_PORT + i))/health" "silo$i" "$LOGS/silo$i.log" "${pids[$i]}"
done

# Admission sized to what one small PostgreSQL on the same machine absorbs at sub-second latency
# (about 64 transfers in flight, docs/benchmarks.md); beyond it the API answers 429 at once
# instead of queueing requests for seconds. Raise both for a bigger database.
# The bootstrap admin key: ADMIN_KEY when set, else a new one for this run (printed below).
ADMIN_KEY="${ADMIN_KEY:-txa.$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')}"
start "$API_DIR" Transactor.Api.dll "$LOGS/api.log" \
    Transactor__Auth__AdminKey="$ADMIN_KEY" Transactor__Auth__PublicDocs=true \
    Transactor__Api__MaxConcurrentRequests="${API_MAX_CONCURRENT:-64}" \
    Transactor__Api__MaxQueuedRequests="${API_MAX_QUEUED:-64}" \
    ASPNETCORE_URLS="http://127.0.0.1:$API_PORT"
wait_healthy "http://127.0.0.1:$API_PORT/health" "api" "$LOGS/api.log" "${pids[-1]}"

echo "Transactor is up: $SILOS silos on PostgreSQL."
echo "  API:               http://127.0.0.1:$API_PORT   (docs: /scalar; counters: /metrics with the admin key)"
for i in $(seq 0 $((SILOS - 1))); do
    echo "  silo$i dashboard:   http://127.0.0.1:$((SILO_HTTP_PORT + i))/dashboard"
done
echo "  logs:              $LOGS"
echo "Admin API key: $ADMIN_KEY"
echo "  (send it as 'Authorization: Bearer <key>'; the load generator takes it as --api-key or TRANSACTOR_API_KEY)"
echo "Press Ctrl+C to stop."
# wait returns when a signal arrives (the trap then stops everything) or when every process has exited.
wait "${pids[@]}" || true
