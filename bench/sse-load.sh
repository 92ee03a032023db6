#!/usr/bin/env bash
# Load benchmark of the live feed (not part of the test command): the release server and helper
# against the sandbox, first with 1 SSE client, then with CLIENTS (default 200), SECONDS each
# (default 60), every client signed in with a session of its own (a viewer account made for the
# run, through the sign-in form). Reports the server's CPU (user+system, % of one core) and RSS,
# the events the clients received, and the helper's request rate, which must not grow with the
# clients. It fails, printing why and no figure, when a sign-in or a subscription fails or no
# event arrives. Loopback only; bounded in clients (≤ 1000) and time (≤ 300 s per phase); tears
# everything down, also on failure.
#
#   bench/sse-load.sh [SECONDS [CLIENTS]]      (root; after cargo leptos build --release --split)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
clients=${2:-200}
if [[ ! $seconds =~ ^[0-9]+$ ]] || ((seconds < 5 || seconds > 300)); then echo "SECONDS: 5..300" >&2; exit 2; fi
if [[ ! $clients =~ ^[0-9]+$ ]] || ((clients < 1 || clients > 1000)); then echo "CLIENTS: 1..1000" >&2; exit 2; fi

export CTGUARD_RUN_DIR=/run/ctguard-bench
export CTGUARD_LISTEN=127.0.0.1:3200
export CTGUARD_STATE_DIR=$CTGUARD_RUN_DIR/state
export CTGUARD_HELPER_STATE_DIR=$CTGUARD_RUN_DIR/helper-state
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
rm -rf "$CTGUARD_STATE_DIR" "$CTGUARD_HELPER_STATE_DIR"
# The clients' account: a viewer, with a password new for every run.
CTGUARD_BENCH_USER=bench-viewer
CTGUARD_BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export CTGUARD_BENCH_USER CTGUARD_BENCH_PASSWORD
printf '%s\n' "$CTGUARD_BENCH_PASSWORD" |
  "$services" user add "$CTGUARD_BENCH_USER" --role viewer --password-stdin >/dev/null
# The helper logs each answered request at debug level: that is the request count.
RUST_LOG=ctguard_helper=debug "$services" helper-start
"$services" server-start
server_pid=$(cat "$CTGUARD_RUN_DIR/server.pid")
ticks_per_second=$(getconf CLK_TCK)

helper_requests() { grep -c 'request answered' "$CTGUARD_RUN_DIR/helper.log" || true; }

phase() { # clients
  local n=$1 req0 req1 result
  req0=$(helper_requests)
  # set -e: a client run that failed ends the benchmark here, with its reason, before any row.
  # The server's CPU and RSS are read by the client over the subscription window alone: the
  # sign-ins before it (one argon2 hash each) are the cost of signing in, not of watching.
  result=$(CTGUARD_BENCH_SERVER_PID=$server_pid node "$repo/bench/sse-clients.mjs" "$n" "$seconds" "$url")
  req1=$(helper_requests)
  awk -v n="$n" -v s="$seconds" -v t="$ticks_per_second" -v r=$((req1 - req0)) -v result="$result" 'BEGIN {
    match(result, /"server_cpu_ticks":[0-9]+/); c = substr(result, RSTART + 19, RLENGTH - 19)
    match(result, /"server_rss_kib":[0-9]+/); rss = substr(result, RSTART + 17, RLENGTH - 17)
    printf "| %d | %.2f %% | %.1f MiB | %.2f /s | %s |\n", n, c / t / s * 100, rss / 1024, r / s, result
  }'
}

echo "server $(git -C "$repo" rev-parse --short HEAD), ${seconds} s per phase, $(nproc) cores"
echo "| SSE clients | server CPU | server RSS (end) | helper requests | client report |"
echo "|---|---|---|---|---|"
phase 1
phase "$clients"
