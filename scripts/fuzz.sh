#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 15) each: the bounded run of the test command.
# A longer run is documented in fuzz/README.md.
set -euo pipefail
seconds=${1:-15}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo/fuzz"
for target in frame_decode target_parse journal_line ctnetlink_entry; do
  echo "==> fuzz $target for ${seconds}s"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
