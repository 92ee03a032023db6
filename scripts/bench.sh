#!/usr/bin/env bash
# The snapshot benchmark, the same way on any machine (root; throwaway namespaces; restores
# nf_conntrack_max): fills a sandbox router's table to ENTRIES (default 262144) and compares the
# helper's Snapshot with the conntrack-tools and /proc/net/nf_conntrack text pipelines, printing
# a Markdown table (record it in BENCHMARKS.md with this command line); then aggregates synthetic
# flows from one /16 against random sources with the helper's seeded maps and the unseeded hash
# it used before (CTGUARD_BENCH_AGGREGATE flows, default 1048576).
#
#   scripts/bench.sh [ENTRIES]
#
# `scripts/bench.sh audit` runs the audit store benchmark instead (no root, no kernel): a real
# SQLite store filled with CTGUARD_BENCH_AUDIT_ROWS records (default 1000000), the Audit page's
# queries and the CSV export against the queries they replaced, in the same run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ ${1:-} == audit ]]; then
  exec cargo test --release -p ctguard-server --test audit_bench -- --ignored --nocapture \
    2> >(grep -v -E 'DEBUG|INFO' >&2)
fi
[[ $(id -u) -eq 0 ]] || { echo "bench.sh: needs root (network namespaces)" >&2; exit 1; }
# nf_conntrack_max is global: the end-to-end sandbox sets it too. Take turns with it (see
# end2end/run.sh).
exec 9>/run/ctguard-sandbox.lock
flock -w 1200 9
CTGUARD_BENCH_ENTRIES=${1:-262144} CTGUARD_REQUIRE_ROOT_TESTS=1 \
  cargo test --release -p ctguard-helper --test bench -- --ignored --nocapture --test-threads=1 \
  2> >(grep -v -E 'DEBUG|INFO' >&2)
