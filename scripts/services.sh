#!/usr/bin/env bash
# Starts and stops the two ctguard processes the way a host runs them: the helper as root watching
# the sandbox's router namespace, the server as the unprivileged user `ctguard`. Used by the demo, the
# end-to-end runner and the Playwright tests (which stop and start the helper mid-suite).
#
#   services.sh helper-start | helper-stop | helper-kill | server-start | server-stop | stop-all
#   services.sh user ARGS...     (ctguard-server user ARGS, as user ctguard, on the same database)
#
# Environment: CTGUARD_RUN_DIR (pid files, logs, socket; default /run/ctguard-dev), CTGUARD_SOCKET,
# CTGUARD_STATE_DIR (the server's database and history, owned by ctguard; default
# /var/lib/ctguard-dev), CTGUARD_HELPER_STATE_DIR (the helper's blocks, journal and persisted
# sysctls, root's alone and never inside the server's directory; default $CTGUARD_STATE_DIR-helper),
# CTGUARD_LISTEN (default 127.0.0.1:3000), CTGUARD_NETNS (default
# $CTGUARD_SANDBOX-host, i.e. ctg-host), CTGUARD_BIN_DIR (default target/release), CTGUARD_SITE_ROOT
# (default target/site), and, passed to the server only when set, CTGUARD_WARNING_PERCENT and
# CTGUARD_CRITICAL_PERCENT (the dashboard's fill thresholds) and CTGUARD_CONFIRMATION_SECS (how long
# a preview may be confirmed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${CTGUARD_RUN_DIR:-/run/ctguard-dev}
state_dir=${CTGUARD_STATE_DIR:-/var/lib/ctguard-dev}
socket=${CTGUARD_SOCKET:-$run_dir/helper.sock}
listen=${CTGUARD_LISTEN:-127.0.0.1:3000}
netns=${CTGUARD_NETNS:-${CTGUARD_SANDBOX:-ctg}-host}
bin_dir=${CTGUARD_BIN_DIR:-$repo/target/release}
site_root=${CTGUARD_SITE_ROOT:-$repo/target/site}
database=$state_dir/ctguard.db
helper_state=${CTGUARD_HELPER_STATE_DIR:-$state_dir-helper}

mkdir -p "$run_dir" "$state_dir"
# The server (user ctguard) must reach the socket inside: traverse only, no listing.
chmod 0711 "$run_dir"
# The database belongs to the server's user, and to nobody else.
chown ctguard:ctguard "$state_dir"
chmod 0700 "$state_dir"

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# setpriv drops to the unprivileged user before exec: the server never holds root. exec keeps
# the pid: `as_ctguard … &` records the server itself, not a subshell.
as_ctguard() { exec setpriv --reuid=ctguard --regid=ctguard --init-groups "$@"; }

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
    # A socket left by a killed helper would satisfy the wait below before the new one listens.
    rm -f "$socket"
    # State (blocks.json), the audit journal and the persisted sysctls live in a directory of the
    # helper's own (root, 0700) beside the server's, never inside it: the server's user must not
    # be able to plant a symlink where the root helper writes. Not /var/lib/ctguard-helper or
    # /etc either: the demo leaves no trace in a real install, and the journal lasts as long as
    # the audit log that names its records (the Audit page reports a journal that lacks records
    # the log names). The helper itself refuses a directory anyone else could write.
    install -d -m 0700 -o root -g root "$helper_state"
    "$bin_dir/ctguard-helper" --socket "$socket" --group ctguard --allow-user ctguard \
      --netns "$netns" --state-dir "$helper_state" \
      >>"$run_dir/helper.log" 2>&1 &
    echo $! >"$run_dir/helper.pid"
    wait_for "the helper socket" 10 test -S "$socket"
    ;;
  helper-stop) stop helper ;;
  helper-kill)
    # SIGKILL, as a crash or the OOM killer would end it: none of its shutdown code runs.
    if pid_alive "$run_dir/helper.pid"; then kill -KILL "$(cat "$run_dir/helper.pid")"; fi
    rm -f "$run_dir/helper.pid"
    ;;
  server-start)
    stop server
    if curl -s -o /dev/null "http://$listen/"; then
      echo "something already listens on $listen; not starting a second server" >&2
      exit 1
    fi
    thresholds=()
    [[ -n ${CTGUARD_WARNING_PERCENT:-} ]] && thresholds+=("CTGUARD_WARNING_PERCENT=$CTGUARD_WARNING_PERCENT")
    [[ -n ${CTGUARD_CRITICAL_PERCENT:-} ]] && thresholds+=("CTGUARD_CRITICAL_PERCENT=$CTGUARD_CRITICAL_PERCENT")
    [[ -n ${CTGUARD_CONFIRMATION_SECS:-} ]] && thresholds+=("CTGUARD_CONFIRMATION_SECS=$CTGUARD_CONFIRMATION_SECS")
    as_ctguard env LEPTOS_SITE_ROOT="$site_root" LEPTOS_SITE_ADDR="$listen" \
      CTGUARD_HELPER_SOCKET="$socket" CTGUARD_DATABASE="$database" CTGUARD_STATE_DIR="$state_dir" \
      ${thresholds[@]+"${thresholds[@]}"} RUST_LOG="${RUST_LOG:-info}" \
      "$bin_dir/ctguard-server" >>"$run_dir/server.log" 2>&1 &
    echo $! >"$run_dir/server.pid"
    wait_for "the server at $listen" 60 curl -fsS -o /dev/null "http://$listen/login"
    ;;
  server-stop) stop server ;;
  stop-all) stop server; stop helper ;;
  user)
    shift
    as_ctguard env CTGUARD_DATABASE="$database" "$bin_dir/ctguard-server" user "$@"
    ;;
  *) echo "usage: $0 helper-start|helper-stop|helper-kill|server-start|server-stop|stop-all|user ARGS" >&2; exit 2 ;;
esac
