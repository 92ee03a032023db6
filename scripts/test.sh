#!/usr/bin/env bash
# The project's whole test command (Quick start, command 2; `.ci/run` runs it): installs what is
# missing, then shellcheck on every shell script, format check, cargo deny (licences, sources,
# duplicate versions: deny.toml), the helper's dependency count, the systemd unit's exposure,
# clippy with warnings denied (native and wasm), unit and integration
# tests (root ones included: CTGUARD_REQUIRE_ROOT_TESTS=1 forbids skipping them as root), the
# release build of the site, the size budget of its first wasm bundle (250 KB gzipped), and the
# Playwright suite against the real sandbox.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
log_dir=$(mktemp -d /tmp/ctguard-test.XXXXXX)
export PATH=$repo/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH

step() { printf '\n==> %s\n' "$*"; }

step "install what is missing"
scripts/install-deps.sh

if [[ $(id -u) -eq 0 ]]; then
  export CTGUARD_REQUIRE_ROOT_TESTS=1
else
  echo "warning: not root: tests needing network namespaces will SKIP, and the end-to-end suite cannot run" >&2
fi

native=(-p ctguard-protocol -p ctguard-helper -p ctguard-app -p ctguard-server)

# Every shell script the repository tracks: *.sh, and any other file whose first line is a
# bash or sh shebang (.ci/run). shellcheck's defaults (every severity); a warning that is wrong
# is disabled on its line with the reason beside it, never for a whole file.
shell_scripts=()
shebang='^#!.*[/ ](ba|da)?sh([[:space:]]|$)'
while IFS= read -r -d '' file; do
  [[ -f $file ]] || continue
  first_line=$(head -c 128 -- "$file" | head -n 1 | tr -d '\0')
  if [[ $file == *.sh || $first_line =~ $shebang ]]; then
    shell_scripts+=("$file")
  fi
done < <(git ls-files -z)
step "shellcheck: ${#shell_scripts[@]} shell scripts"
shellcheck --version | sed -n 's/^version: /shellcheck /p'
printf '  %s\n' "${shell_scripts[@]}"
shellcheck -x "${shell_scripts[@]}"
echo "shellcheck: no findings"

step "cargo fmt --check"
cargo fmt --all -- --check

# Advisories are left out (deny.toml says why: their database cannot be had offline here).
step "cargo deny: licences, sources, duplicate versions (deny.toml)"
cargo deny --locked check licenses bans sources

# The helper runs as root: every crate it links runs as root too, so its tree only shrinks. The count is of the distinct crates (name and version) outside the workspace
# that `cargo tree -e normal` shows for the host: no dev- or build-only dependencies, proc macros
# included. 81 on 2026-12-02 (issue 18, item 6): clap, tokio, tracing-subscriber, procfs, nix,
# netlink-sys, serde_json, sha2 and what they pull in. A change that adds a crate fails here; one
# that removes some lowers the number.
helper_deps_max=81
step "the helper's dependencies: at most $helper_deps_max crates outside the workspace (cargo tree -p ctguard-helper -e normal)"
helper_deps=$(cargo tree -p ctguard-helper -e normal --prefix none --locked |
  sed 's/ (\*)$//' | grep -v ' (/' | sort -u | wc -l)
echo "the helper's normal dependencies: $helper_deps crates"
if ((helper_deps > helper_deps_max)); then
  echo "FAILED: the helper now has $helper_deps crates outside the workspace, more than $helper_deps_max: see what came in with cargo tree -p ctguard-helper -e normal" >&2
  exit 1
fi

step "clippy (native, all targets)"
cargo clippy "${native[@]}" --all-targets --locked -- -D warnings
step "clippy (wasm: the hydrating frontend)"
cargo clippy -p ctguard-frontend --target wasm32-unknown-unknown --locked -- -D warnings

# The exposure systemd-analyze gives the shipped unit, recorded: a change that loosens the unit
# fails here (SECURITY.md explains each exposure that remains). The score is parsed rather than
# passed to --threshold, whose scale differs between systemd versions.
unit_exposure_max=2.4
step "the helper's systemd unit: exposure at most $unit_exposure_max (systemd-analyze security --offline)"
exposure=$(systemd-analyze security --offline=yes packaging/ctguard-helper.service 2>&1 |
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [[ -z $exposure ]]; then
  echo "FAILED: systemd-analyze printed no exposure level for packaging/ctguard-helper.service" >&2
  exit 1
fi
echo "exposure: $exposure"
if ! awk -v e="$exposure" -v m="$unit_exposure_max" 'BEGIN { exit !(e <= m) }'; then
  echo "FAILED: the unit's exposure $exposure is above $unit_exposure_max" >&2
  exit 1
fi

step "unit and integration tests"
# Compiled first with no time limit (a cold build takes long on 2 cores), then run within one: a
# stalled HTTP exchange fails its test by itself (the server tests' clients have read timeouts),
# and the limit catches any other hang. No retry: a hang is a bug to find, not to run again.
cargo test "${native[@]}" --locked --no-run
status=0
timeout --kill-after=60 1800 cargo test "${native[@]}" --locked 2>&1 | tee "$log_dir/cargo-test.log" || status=$?
if ((status != 0)); then
  if ((status == 124 || status == 137)); then
    echo "FAILED: the tests did not finish within 30 minutes; the log above names the test still running" >&2
  fi
  exit 1
fi

step "fuzz targets: a short bounded run each (longer runs: fuzz/README.md)"
scripts/fuzz.sh 15

# --split is required, not an optimisation: the operator and admin pages are lazy routes, and
# without it their split points are left as imports nothing provides (ARCHITECTURE.md).
step "release build of the site (cargo leptos build --release --split)"
cargo leptos build --release --split
cargo build --release --locked -p ctguard-helper

# The budget is on the first bundle, the wasm every page needs (the dashboard and the login page
# need nothing else); the operator and admin pages come in chunks on their first visit
# (BENCHMARKS.md, "Release wasm size"). The JS glue and the chunks are printed, not budgeted.
# 250,000 until 2026-12-02; raised by 20,000 for that stop's dashboard and login additions
# (BENCHMARKS.md, "Release wasm size": what grew, and the plan to win it back); raised again to
# 290,000 on 2026-12-02 for issue 15 (the creators, turned-away and trace views: 262,965 ->
# 286,030 B, most of it from the trace operations' types reaching the first bundle through
# `Operation`; moving them behind the lazy route is the next step, see the issue's note).
wasm_budget=290000
step "wasm size budget: the first bundle, gzipped, at most $wasm_budget bytes"
budget_failed=0
pkg=target/site/pkg
wasm=$pkg/ctguard.wasm
gzipped() { gzip -9 -c "$1" | wc -c; }
if [[ ! -f $pkg/__wasm_split_manifest.json ]]; then
  echo "FAILED: $pkg has no split manifest: the site was not built with --split" >&2
  budget_failed=1
fi
wasm_gzipped=$(gzipped "$wasm")
glue_gzipped=0
for js in "$pkg"/ctguard.js "$pkg"/__wasm_split.*.js; do
  if [[ -f $js ]]; then glue_gzipped=$((glue_gzipped + $(gzipped "$js"))); fi
done
chunks_raw=0
chunks_gzipped=0
chunks=0
for chunk in "$pkg"/*.wasm; do
  chunks=$((chunks + 1))
  chunks_raw=$((chunks_raw + $(stat -c %s "$chunk")))
  chunks_gzipped=$((chunks_gzipped + $(gzipped "$chunk")))
done
echo "first wasm bundle: $(stat -c %s "$wasm") bytes, $wasm_gzipped gzipped (budget $wasm_budget)"
echo "its JS glue (ctguard.js, the split loader): $glue_gzipped bytes gzipped"
echo "all $chunks wasm files, lazy chunks included: $chunks_raw bytes, $chunks_gzipped gzipped"
if ((wasm_gzipped > wasm_budget)); then
  echo "FAILED: the first wasm bundle is over its budget" >&2
  budget_failed=1
fi

e2e_passed=0
e2e_failed=0
if [[ $(id -u) -eq 0 ]]; then
  step "end-to-end: Playwright against the sandbox"
  status=0
  end2end/run.sh 2>&1 | tee "$log_dir/e2e.log" || status=$?
  e2e_passed=$(grep -Eo '^ *[0-9]+ passed' "$log_dir/e2e.log" | grep -Eo '[0-9]+' | tail -1 || true)
  e2e_failed=$(grep -Eo '^ *[0-9]+ failed' "$log_dir/e2e.log" | grep -Eo '[0-9]+' | tail -1 || true)
  e2e_passed=${e2e_passed:-0}
  e2e_failed=${e2e_failed:-0}
  if [[ $status -ne 0 && $e2e_failed -eq 0 ]]; then e2e_failed=1; fi
else
  echo "SKIPPED end-to-end suite: needs root for network namespaces" >&2
fi

cargo_passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log_dir/cargo-test.log" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
cargo_failed=$(grep -Eo '[0-9]+ failed' "$log_dir/cargo-test.log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
rm -rf "$log_dir"
passed=$((cargo_passed + e2e_passed))
failed=$((${cargo_failed:-0} + e2e_failed + budget_failed))
echo
echo "cargo tests: $cargo_passed passed; end-to-end: $e2e_passed passed, $e2e_failed failed; wasm budget: $([[ $budget_failed -eq 0 ]] && echo ok || echo over)"
echo "total: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
