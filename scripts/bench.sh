#!/usr/bin/env bash
# The snapshot benchmark, the same way on any machine (root; throwaway namespaces; restores
# nf_conntrack_max): fills a sandbox router's table to ENTRIES (default 262144) and compares the
# helper's Snapshot with the conntrack-tools and /proc/net/nf_conntrack text pipelines, printing
# a Markdown table (record it in BENCHMARKS.md with this command line); then aggregates synthetic
# flows from one /16 against random sources with the helper's seeded maps and the unseeded hash
# it used before (CTGUARD_BENCH_AGGREGATE flows, default 1048576). The counting table's figures
# (issue 15, item 6; helper/tests/bench/creators.rs) come in the same run: on the same full table
# and with every counting set full, the creators request against the walk and the conntrack -L
# pipeline, and one reading of the sets' cost; a router's forwarded packets per second under a
# flood with and without the table (CTGUARD_BENCH_FLOOD_SECS per window, default 3;
# CTGUARD_BENCH_FLOOD_GENERATORS hping3 processes, default one per core); the counts against
# the generator's known numbers and conntrack -C. CTGUARD_BENCH_ROUNDS sets every case's rounds
# (default 3, and 4 for the flood). Run it at 262144 and 1048576.
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
