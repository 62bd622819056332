# Shared by the benchmark scripts that start their own embedded API (sourced, not run):
#   BENCH_PORT=5191 source "$(dirname "$0")/lib.sh"
# Sets BENCH_URL and a fresh bootstrap admin key (BENCH_ADMIN_KEY), and stops the API it started
# when the script exits, however it exits. The embedded silo's ports follow the HTTP port
# (+6000, +25000), so scripts on different ports never share a silo port.

BENCH_PORT="${BENCH_PORT:-5191}"
BENCH_URL="http://127.0.0.1:$BENCH_PORT"
BENCH_ADMIN_KEY="bench-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
BENCH_TICKS="$(getconf CLK_TCK)"
API_PID=""
trap 'bench_stop_api' EXIT

# The machine, for the first line of every result.
bench_machine() { echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"; }

# Starts the embedded API from DLL, its output in LOG, with any KEY=VALUE settings after them,
# and waits until it is healthy (exits the script if it never is).
bench_start_api() { # dll log [KEY=VALUE...]
    local dll="$1" log="$2"
    shift 2
    env "$@" ASPNETCORE_URLS="$BENCH_URL" Transactor__Auth__AdminKey="$BENCH_ADMIN_KEY" \
        Transactor__Embedded__SiloPort=$((BENCH_PORT + 6000)) Transactor__Embedded__GatewayPort=$((BENCH_PORT + 25000)) \
        Logging__LogLevel__Default=Warning dotnet "$dll" >"$log" 2>&1 &
    API_PID=$!
    for _ in $(seq 1 240); do curl -sf "$BENCH_URL/health" >/dev/null 2>&1 && return; sleep 0.5; done
    echo "the API did not start (log: $log)" >&2
    exit 1
}

bench_stop_api() {
    [[ -n "$API_PID" ]] || return 0
    kill "$API_PID" 2>/dev/null || true
    wait "$API_PID" 2>/dev/null || true
    API_PID=""
}

# Processor time (user + system) of a process so far, in clock ticks (BENCH_TICKS a second).
bench_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
