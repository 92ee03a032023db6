#!/usr/bin/env bash
# Runs the Playwright suite against the real thing: builds nothing (run after `cargo leptos build
# --release --split`), brings up the sandbox, starts the helper (root, watching ctg-host) and the server (user
# ctguard) on a port of their own, runs the tests, and tears everything down, also on failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CTGUARD_RUN_DIR=${CTGUARD_RUN_DIR:-/run/ctguard-e2e}
export CTGUARD_LISTEN=${CTGUARD_LISTEN:-127.0.0.1:3100}
export CTGUARD_URL=http://$CTGUARD_LISTEN
export CTGUARD_STATE_DIR=${CTGUARD_STATE_DIR:-$CTGUARD_RUN_DIR/state}
export CTGUARD_HELPER_STATE_DIR=${CTGUARD_HELPER_STATE_DIR:-$CTGUARD_RUN_DIR/helper-state}
# One password for the suite's accounts, new each run (never a fixed secret in the repository).
CTGUARD_E2E_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export CTGUARD_E2E_PASSWORD

# The sandbox's namespaces have fixed names and are global to the machine: two runs at once (two
# checkouts, or the benchmark) would tear down each other's. Take turns.
exec 9>/run/ctguard-sandbox.lock
if ! flock -n 9; then
  echo "another sandbox run is in progress; waiting for it (up to 20 min)" >&2
  flock -w 1200 9
fi

# shellcheck disable=SC2317 # shellcheck 0.9 sees no caller: the EXIT trap below runs it.
cleanup() {
  "$repo/scripts/services.sh" stop-all || true
  "$repo/end2end/sandbox/sandbox.sh" down >/dev/null || true
}
trap cleanup EXIT

"$repo/end2end/sandbox/sandbox.sh" up
"$repo/end2end/sandbox/sandbox.sh" flows 200 >/dev/null
rm -f "$CTGUARD_RUN_DIR"/*.log
# Every run starts from nothing: no accounts, audit or history (server), no blocks or journal
# (helper) left by an earlier run.
rm -rf "$CTGUARD_STATE_DIR" "$CTGUARD_HELPER_STATE_DIR"
for role in viewer operator admin; do
  printf '%s\n' "$CTGUARD_E2E_PASSWORD" |
    "$repo/scripts/services.sh" user add "e2e-$role" --role "$role" --password-stdin >/dev/null
done
"$repo/scripts/services.sh" helper-start
"$repo/scripts/services.sh" server-start

cd "$repo/end2end"
status=0
npx playwright test "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- helper log ---"; tail -n 50 "$CTGUARD_RUN_DIR/helper.log" || true
  echo "--- server log ---"; tail -n 50 "$CTGUARD_RUN_DIR/server.log" || true
fi
exit $status
