#!/usr/bin/env bash
# What the panel costs a host whose table is already full (issue 19, item 3; not part of the test
# command). The sandbox's assured flood holds the watched table at its limit while the kernel
# drops the flood's further connections; the release helper and server watch it. Then, for
# SECONDS each (default 60), 10 and then CLIENTS (default 200) signed-in live viewers, plus one
# more session asking for the Suspicious page's data every 5 s as an open page does. Reports, per
# phase: helper and server CPU (% of one core, user and system apart), the table walks' time as
# the helper measured them, memory (RSS at the end, peak), the dashboard's update gaps as the
# clients saw them, and the kernel's drops over the window (which must grow: otherwise the host
# was not under attack and the run fails, printing no figure). Loopback only; tears down.
#
#   bench/under-attack.sh [SECONDS [CLIENTS]]     (root; after cargo leptos build --release --split)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
clients=${2:-200}
if [[ ! $seconds =~ ^[0-9]+$ ]] || ((seconds < 10 || seconds > 300)); then echo "SECONDS: 10..300" >&2; exit 2; fi
if [[ ! $clients =~ ^[0-9]+$ ]] || ((clients < 10 || clients > 1000)); then echo "CLIENTS: 10..1000" >&2; exit 2; fi
[[ $(id -u) -eq 0 ]] || { echo "under-attack.sh: needs root (the sandbox's namespaces)" >&2; exit 1; }

export CTGUARD_RUN_DIR=/run/ctguard-bench
export CTGUARD_LISTEN=127.0.0.1:3200
export CTGUARD_STATE_DIR=$CTGUARD_RUN_DIR/state
export CTGUARD_HELPER_STATE_DIR=$CTGUARD_RUN_DIR/helper-state
url=http://$CTGUARD_LISTEN/api/live
services=$repo/scripts/services.sh
sandbox=$repo/end2end/sandbox/sandbox.sh
# The table the flood fills: small, so that it fills in seconds and the walks stay what a
# 4,096-entry table costs (the walk's cost at a million entries is bench.sh's subject).
limit=4096

# Shares the sandbox with end2end/run.sh: take turns (see there).
exec 9>/run/ctguard-sandbox.lock
flock -w 1200 9

cleanup() {
  "$services" stop-all || true
  "$sandbox" down >/dev/null || true
}
trap cleanup EXIT

"$sandbox" up >/dev/null
"$sandbox" limit "$limit" 2>/dev/null
rm -f "$CTGUARD_RUN_DIR"/*.log
rm -rf "$CTGUARD_STATE_DIR" "$CTGUARD_HELPER_STATE_DIR"
CTGUARD_BENCH_USER=bench-viewer
CTGUARD_BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export CTGUARD_BENCH_USER CTGUARD_BENCH_PASSWORD
printf '%s\n' "$CTGUARD_BENCH_PASSWORD" |
  "$services" user add "$CTGUARD_BENCH_USER" --role viewer --password-stdin >/dev/null
"$services" helper-start
"$services" server-start
server_pid=$(cat "$CTGUARD_RUN_DIR/server.pid")
helper_pid=$(cat "$CTGUARD_RUN_DIR/helper.pid")
ticks=$(getconf CLK_TCK)

# The flood outlasts both phases (sign-ins included) and holds the table full throughout.
"$sandbox" scenario assured-flood $((3 * seconds + 240)) 2>/dev/null

drops() { # the kernel's drop counter of the watched table, summed over CPUs
  ip netns exec ctg-host conntrack -S | sed -n 's/.* drop=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

phase() { # viewers
  local n=$1 drops0 drops1 count result
  drops0=$(drops)
  # set -e: a client run that failed ends the benchmark here, with its reason, before any row.
  result=$(CTGUARD_BENCH_SERVER_PID=$server_pid \
    CTGUARD_BENCH_PIDS="server=$server_pid,helper=$helper_pid" \
    CTGUARD_BENCH_SUSPECTS_EVERY=5 \
    node "$repo/bench/sse-clients.mjs" "$n" "$seconds" "$url")
  drops1=$(drops)
  count=$(ip netns exec ctg-host conntrack -C)
  echo "clients' report ($n viewers): $result" >&2
  if ((drops1 <= drops0)); then
    echo "under-attack.sh: FAILED: the kernel dropped nothing during the $n-viewer phase: not under attack ($result)" >&2
    exit 1
  fi
  if ((count * 100 < limit * 95)); then
    echo "under-attack.sh: FAILED: the table held $count of $limit entries at the end of the $n-viewer phase: not full ($result)" >&2
    exit 1
  fi
  awk -v n="$n" -v s="$seconds" -v t="$ticks" -v d=$((drops1 - drops0)) -v count="$count" -v limit="$limit" -v result="$result" '
    function field(object, key,    rest) {
      if (!match(result, "\"" object "\":\\{[^}]*\\}")) return -1
      rest = substr(result, RSTART, RLENGTH)
      if (!match(rest, "\"" key "\":[0-9]+")) return -1
      return substr(rest, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
    }
    function pct(ticks_) { return ticks_ / t / s * 100 }
    BEGIN {
      hu = field("helper", "user_ticks"); hs = field("helper", "system_ticks")
      su = field("server", "user_ticks"); ss = field("server", "system_ticks")
      walks = field("suspects", "walk_ms_total"); answered = field("suspects", "answered")
      p50 = field("gap_ms", "p50"); p99 = field("gap_ms", "p99"); gmax = field("gap_ms", "max")
      printf "| %d | %.2f %% / %.2f %% | %.2f %% / %.2f %% | %.2f %% | %d walks, %d ms (%.2f %% of the window) | %.1f / %.1f MiB | %.1f / %.1f MiB | %d / %d / %d ms | %d (%d of %d entries) |\n",
        n, pct(hu), pct(hs), pct(su), pct(ss), pct(hu + hs + su + ss) - walks / 10 / s,
        answered, walks, walks / 10 / s,
        field("helper", "rss_kib") / 1024, field("helper", "hwm_kib") / 1024,
        field("server", "rss_kib") / 1024, field("server", "hwm_kib") / 1024,
        p50, p99, gmax, d, count, limit
    }'
}

echo "commit $(git -C "$repo" rev-parse --short HEAD), $(date -u +%F), ${seconds} s per phase, $(nproc) cores, kernel $(uname -r)"
echo "| live viewers (+1 Suspicious page every 5 s) | helper CPU user / system | server CPU user / system | helper + server beside the walks | table walks | helper RSS / peak | server RSS / peak | update gaps p50 / p99 / max | kernel drops in the window (table) |"
echo "|---|---|---|---|---|---|---|---|---|"
phase 10
phase "$clients"
