#!/usr/bin/env bash
# Starts and stops the two ctguard processes the way a host runs them: the helper as root watching
# the sandbox's router namespace, the server as the unprivileged user `ctguard`. Used by the demo, the
# end-to-end runner and the Playwright tests (which stop and start the helper mid-suite).
#
#   services.sh helper-start | helper-stop | server-start | server-stop | stop-all | wait-url URL
#
# Environment: CTGUARD_RUN_DIR (pid files and logs, default /run/ctguard-dev), CTGUARD_SOCKET,
# CTGUARD_LISTEN (default 127.0.0.1:3000), CTGUARD_NETNS (default ctg-host), CTGUARD_BIN_DIR (default
# target/release), CTGUARD_SITE_ROOT (default target/site), CTGUARD_STATE_DIR (the server's state,
# default $CTGUARD_RUN_DIR/state, owned by ctguard), and, passed to the server only when set,
# CTGUARD_WARNING_PERCENT and CTGUARD_CRITICAL_PERCENT (the dashboard's fill thresholds).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${CTGUARD_RUN_DIR:-/run/ctguard-dev}
socket=${CTGUARD_SOCKET:-$run_dir/helper.sock}
listen=${CTGUARD_LISTEN:-127.0.0.1:3000}
netns=${CTGUARD_NETNS:-ctg-host}
bin_dir=${CTGUARD_BIN_DIR:-$repo/target/release}
site_root=${CTGUARD_SITE_ROOT:-$repo/target/site}
state_dir=${CTGUARD_STATE_DIR:-$run_dir/state}

mkdir -p "$run_dir"
# The server (user ctguard) must reach the socket inside: traverse only, no listing.
chmod 0711 "$run_dir"

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  local pidfile=$run_dir/$1.pid
  if pid_alive "$pidfile"; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

wait_for() { # what, seconds, command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  return 1
}

case ${1:-} in
  helper-start)
    stop helper
    "$bin_dir/ctguard-helper" --socket "$socket" --group ctguard --allow-user ctguard \
      --netns "$netns" >>"$run_dir/helper.log" 2>&1 &
    echo $! >"$run_dir/helper.pid"
    wait_for "the helper socket" 10 test -S "$socket"
    ;;
  helper-stop) stop helper ;;
  server-start)
    stop server
    mkdir -p "$state_dir"
    chown ctguard:ctguard "$state_dir"
    chmod 0700 "$state_dir"
    thresholds=()
    [[ -n ${CTGUARD_WARNING_PERCENT:-} ]] && thresholds+=("CTGUARD_WARNING_PERCENT=$CTGUARD_WARNING_PERCENT")
    [[ -n ${CTGUARD_CRITICAL_PERCENT:-} ]] && thresholds+=("CTGUARD_CRITICAL_PERCENT=$CTGUARD_CRITICAL_PERCENT")
    # setpriv drops to the unprivileged user before exec: the server never holds root.
    setpriv --reuid=ctguard --regid=ctguard --init-groups \
      env LEPTOS_SITE_ROOT="$site_root" LEPTOS_SITE_ADDR="$listen" CTGUARD_HELPER_SOCKET="$socket" \
      CTGUARD_STATE_DIR="$state_dir" ${thresholds[@]+"${thresholds[@]}"} RUST_LOG="${RUST_LOG:-info}" "$bin_dir/ctguard-server" >>"$run_dir/server.log" 2>&1 &
    echo $! >"$run_dir/server.pid"
    wait_for "the server at $listen" 60 curl -fsS -o /dev/null "http://$listen/"
    ;;
  server-stop) stop server ;;
  stop-all) stop server; stop helper ;;
  wait-url) wait_for "$2" 60 curl -fsS -o /dev/null "$2" ;;
  *) echo "usage: $0 helper-start|helper-stop|server-start|server-stop|stop-all|wait-url URL" >&2; exit 2 ;;
esac
