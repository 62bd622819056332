#!/usr/bin/env bash
# The fault suite (docs/reliability.md): builds Release, then starts its own PostgreSQL (fsync on,
# in a new directory under /tmp), 3 silo processes and the API on loopback ports of their own,
# drives recorded load over HTTP while it kills, pauses and crashes them and delays and drops
# grain messages, restarts the whole cluster and checks the history. Prints a one-line verdict;
# the JSON report, the full history and every process's log stay in the work directory.
#
#   scripts/chaos.sh                          # 3 minutes of faults, seed 1
#   scripts/chaos.sh --minutes 10 --seed 42
#   scripts/chaos.sh --help                   # every option (ports, clients, accounts, --out, ...)
#
# Exit code: 0 no violation, 1 a violation (see the report), 2 the run itself failed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "PostgreSQL's server binaries are missing: run 'sudo apt-get install postgresql'." >&2
        exit 2
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# Builds the silo and the API too (the runner's project references them).
dotnet build "$ROOT/src/Transactor.Chaos" -c Release -v quiet -nologo >/dev/null
exec dotnet "$ROOT/src/Transactor.Chaos/bin/Release/net10.0/Transactor.Chaos.dll" "$@"
