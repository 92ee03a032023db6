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

if [[ $(id -u) -ne 0 ]]; then
  echo "the demo needs root: it creates network namespaces and runs the privileged helper" >&2
  exit 1
fi

scripts/install-deps.sh
cargo leptos build --release
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

cat <<MSG

  ctguard is running: http://$CTGUARD_LISTEN
  (no login yet: accounts arrive with the accounts work; logs in $CTGUARD_RUN_DIR)
  The sandbox adds 200 new flows every 5 seconds to ctg-host's table. Ctrl-C stops everything.

MSG

# A slow, bounded trickle so the dashboard visibly moves; each round is 200 entries that expire after
# the sandbox's 10-minute UDP timeout.
while true; do
  end2end/sandbox/sandbox.sh flows 200 >/dev/null || true
  sleep 5
done
