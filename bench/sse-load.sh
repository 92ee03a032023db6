#!/usr/bin/env bash
# Load benchmark of the live feed (not part of the test command): the release server and helper
# against the sandbox, first with 1 SSE client, then with CLIENTS (default 200), SECONDS each
# (default 60). Reports the server's CPU (user+system, % of one core) and RSS, the events the clients
# received, and the helper's request rate, which must not grow with the clients. Loopback only;
# bounded in clients (≤ 1000) and time (≤ 300 s per phase); tears everything down, also on failure.
#
#   bench/sse-load.sh [SECONDS [CLIENTS]]      (root; after cargo leptos build --release --split)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
clients=${2:-200}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 5 && seconds <= 300)) || { echo "SECONDS: 5..300" >&2; exit 2; }
[[ $clients =~ ^[0-9]+$ ]] && ((clients >= 1 && clients <= 1000)) || { echo "CLIENTS: 1..1000" >&2; exit 2; }

export CTGUARD_RUN_DIR=/run/ctguard-bench
export CTGUARD_LISTEN=127.0.0.1:3200
url=http://$CTGUARD_LISTEN/api/live
services=$repo/scripts/services.sh
sandbox=$repo/end2end/sandbox/sandbox.sh

# Shares the sandbox with end2end/run.sh: take turns (see there).
exec 9>/run/ctguard-sandbox.lock
flock -w 1200 9

cleanup() {
  "$services" stop-all || true
  "$sandbox" down >/dev/null || true
}
trap cleanup EXIT

"$sandbox" up >/dev/null
"$sandbox" flows 2000 >/dev/null
rm -f "$CTGUARD_RUN_DIR"/*.log
# The helper logs each answered request at debug level: that is the request count.
RUST_LOG=ctguard_helper=debug "$services" helper-start
"$services" server-start
server_pid=$(cat "$CTGUARD_RUN_DIR/server.pid")
ticks_per_second=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
helper_requests() { grep -c 'request answered' "$CTGUARD_RUN_DIR/helper.log" || true; }

phase() { # clients
  local n=$1 cpu0 cpu1 req0 req1 result
  cpu0=$(cpu_ticks)
  req0=$(helper_requests)
  result=$(node "$repo/bench/sse-clients.mjs" "$n" "$seconds" "$url")
  cpu1=$(cpu_ticks)
  req1=$(helper_requests)
  awk -v n="$n" -v s="$seconds" -v t="$ticks_per_second" -v c=$((cpu1 - cpu0)) \
      -v r=$((req1 - req0)) -v rss="$(rss_kib)" -v result="$result" 'BEGIN {
    printf "| %d | %.2f %% | %.1f MiB | %.2f /s | %s |\n", n, c / t / s * 100, rss / 1024, r / s, result
  }'
}

echo "server $(git -C "$repo" rev-parse --short HEAD), ${seconds} s per phase, $(nproc) cores"
echo "| SSE clients | server CPU | server RSS (end) | helper requests | client report |"
echo "|---|---|---|---|---|"
phase 1
phase "$clients"
