#!/usr/bin/env bash
# The demo (Quick start, command 1): installs what is missing, builds everything, brings up the
# sandbox network with real flows, starts the helper (root, watching the sandbox's router
# namespace) and the server (as the unprivileged user ctguard), prints the URL, and keeps some
# traffic flowing until Ctrl-C, when it stops both and removes the namespaces.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export PATH=$repo/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH
export CTGUARD_RUN_DIR=${CTGUARD_RUN_DIR:-/run/ctguard-demo}
export CTGUARD_LISTEN=${CTGUARD_LISTEN:-127.0.0.1:3000}
export CTGUARD_STATE_DIR=${CTGUARD_STATE_DIR:-/var/lib/ctguard-demo}
export CTGUARD_HELPER_STATE_DIR=${CTGUARD_HELPER_STATE_DIR:-/var/lib/ctguard-demo-helper}

if [[ $(id -u) -ne 0 ]]; then
  echo "the demo needs root: it creates network namespaces and runs the privileged helper" >&2
  exit 1
fi

scripts/install-deps.sh
cargo leptos build --release --split
cargo build --release --locked -p ctguard-helper

cleanup() {
  echo
  echo "stopping: server, helper, sandbox"
  scripts/services.sh stop-all || true
  end2end/sandbox/sandbox.sh down >/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

end2end/sandbox/sandbox.sh up
end2end/sandbox/sandbox.sh flows 2000 >/dev/null
scripts/services.sh helper-start
scripts/services.sh server-start

# The first run creates the admin; later runs give it a new password (this is a demo: the login
# is printed every time, and the database with its audit trail is kept in $CTGUARD_STATE_DIR).
account=$(scripts/services.sh user bootstrap-admin --username admin)
if [[ $account != *"created admin"* ]]; then
  account=$(scripts/services.sh user passwd admin --generate)
fi
password=$(printf '%s\n' "$account" | grep -Eo '[A-Za-z0-9]{20}' | head -1)

cat <<MSG

  ctguard is running: http://$CTGUARD_LISTEN
  Sign in as: admin / $password
  (from another machine: ssh -L 3000:$CTGUARD_LISTEN THIS-HOST, then http://localhost:3000)
  Add staff on the Users page or with: scripts/services.sh user add NAME --role viewer|operator|admin
  The sandbox adds 200 new flows every 5 seconds to ctg-host's table. Ctrl-C stops everything.
  Logs: $CTGUARD_RUN_DIR/helper.log and server.log

MSG

# A slow, bounded trickle so the dashboard visibly moves; each round is 200 entries that expire after
# the sandbox's 10-minute UDP timeout.
while true; do
  end2end/sandbox/sandbox.sh flows 200 >/dev/null || true
  sleep 5
done
