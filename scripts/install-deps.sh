#!/usr/bin/env bash
# ctguard: install everything the project needs on a fresh Debian 12 machine (run as root).
#
# This script owns the project's machine prerequisites, and only those:
#   - Debian packages: chromium nftables conntrack iptables iproute2 hping3 socat procps pkg-config
#     python3 (the sandbox's connection flood, end2end/sandbox/connflood.py), systemd (its
#     systemd-analyze scores the shipped helper unit), util-linux (setpriv), shellcheck (the
#     test command checks every shell script with it)
#     (and Node.js/npm, only if no `npm` is on PATH at all);
#   - the Rust pieces: target wasm32-unknown-unknown, components rustfmt and clippy,
#     cargo-leptos 0.3.8, wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock,
#     cargo-deny 0.20.2 (the test command's licence, source and duplicate checks, deny.toml);
#   - end2end/node_modules (npm ci: Playwright, which uses the system Chromium, and binaryen,
#     which ships the wasm-opt that release builds need: put end2end/node_modules/.bin on PATH);
#   - the system user and group `ctguard` that ctguard-server runs as.
# Idempotent: each step checks first and does nothing when its piece is present, so a second run
# takes seconds. Nothing is downloaded from outside the package registries.
#
# Usage: scripts/install-deps.sh [--check]
#   --check   only report what is missing; exit 1 if anything is, 0 if all is present
set -euo pipefail

readonly APT_PACKAGES=(chromium nftables conntrack iptables iproute2 hping3 socat procps pkg-config python3 systemd util-linux shellcheck)
readonly CARGO_LEPTOS_VERSION=0.3.8
# 0.20.2 asks for rustc 1.88 and builds with the machine's 1.95.
readonly CARGO_DENY_VERSION=0.20.2
readonly SERVICE_USER=ctguard

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT

CHECK_ONLY=0
MISSING=0
case ${1:-} in
    "") ;;
    --check) CHECK_ONLY=1 ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

ok() { printf 'ok: %s\n' "$*"; }
installing() { printf 'installing: %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Returns 0 if the caller should go on and install; in --check mode records the gap and returns 1.
need() {
    if ((CHECK_ONLY)); then
        printf 'missing: %s\n' "$*"
        MISSING=1
        return 1
    fi
    installing "$*"
}

require_root() {
    [[ ${EUID} -eq 0 ]] || die "must run as root to $*"
}

# cargo and rustup live in ~/.cargo/bin, which a non-login shell may not have on PATH.
if [[ -d ${HOME:-/root}/.cargo/bin && ":${PATH}:" != *":${HOME:-/root}/.cargo/bin:"* ]]; then
    PATH=${HOME:-/root}/.cargo/bin:${PATH}
    export PATH
fi

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

step_apt() {
    local pkg missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        pkg_installed "${pkg}" || missing+=("${pkg}")
    done
    # Node.js and npm: the machine normally has them (Node 20+); fall back to Debian's only if
    # there is no npm at all (Debian 12's Node 18 is older than @playwright/test asks for).
    if ! command -v npm >/dev/null 2>&1; then
        pkg_installed nodejs || missing+=(nodejs)
        missing+=(npm)
    fi
    if ((${#missing[@]} == 0)); then
        ok "apt packages present (${APT_PACKAGES[*]})"
        return 0
    fi
    need "apt packages ${missing[*]}" || return 0
    require_root "install apt packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

step_rust() {
    if ! command -v rustup >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
        die "no Rust toolchain (rustup, cargo) on PATH; this machine kind should ship one"
    fi
    if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        ok "rust target wasm32-unknown-unknown present"
    elif need "rust target wasm32-unknown-unknown"; then
        rustup target add wasm32-unknown-unknown
    fi
    local comp installed
    installed=$(rustup component list --installed)
    for comp in rustfmt clippy; do
        if grep -Eq "^${comp}(-|\$)" <<<"${installed}"; then
            ok "rust component ${comp} present"
        elif need "rust component ${comp}"; then
            rustup component add "${comp}"
        fi
    done
}

# Second word of the first line of a `tool --version` output, or empty.
version_of() {
    "$@" --version 2>/dev/null | awk 'NR == 1 { print $2 }' || true
}

step_cargo_leptos() {
    local have
    have=$(version_of cargo leptos)
    if [[ ${have} == "${CARGO_LEPTOS_VERSION}" ]]; then
        ok "cargo-leptos ${CARGO_LEPTOS_VERSION} present"
        return 0
    fi
    need "cargo-leptos ${CARGO_LEPTOS_VERSION} (have: ${have:-none}; ~15 min on 2 cores)" || return 0
    cargo install "cargo-leptos@${CARGO_LEPTOS_VERSION}" --locked
}

step_cargo_deny() {
    local have
    have=$(version_of cargo deny)
    if [[ ${have} == "${CARGO_DENY_VERSION}" ]]; then
        ok "cargo-deny ${CARGO_DENY_VERSION} present"
        return 0
    fi
    need "cargo-deny ${CARGO_DENY_VERSION} (have: ${have:-none}; ~8 min on 2 cores)" || return 0
    cargo install "cargo-deny@${CARGO_DENY_VERSION}" --locked
}

# The version of the `wasm-bindgen` package in Cargo.lock (exactly one is expected).
lock_wasm_bindgen_version() {
    awk '
        /^\[\[package\]\]/ { name = "" }
        /^name = /         { name = $3 }
        /^version = /      { if (name == "\"wasm-bindgen\"") { gsub(/"/, "", $3); print $3 } }
    ' "$1" | sort -u
}

step_wasm_bindgen() {
    local lock=${ROOT}/Cargo.lock want have
    if [[ ! -f ${lock} ]]; then
        warn "no ${lock} yet: skipping wasm-bindgen-cli (run again once Cargo.lock exists)"
        return 0
    fi
    want=$(lock_wasm_bindgen_version "${lock}")
    if [[ -z ${want} ]]; then
        warn "Cargo.lock has no wasm-bindgen package: skipping wasm-bindgen-cli"
        return 0
    fi
    [[ ${want} != *$'\n'* ]] || die "Cargo.lock has several wasm-bindgen versions: $(tr '\n' ' ' <<<"${want}")"
    have=$(version_of wasm-bindgen)
    if [[ ${have} == "${want}" ]]; then
        ok "wasm-bindgen-cli ${want} present (matches Cargo.lock)"
        return 0
    fi
    need "wasm-bindgen-cli ${want} (have: ${have:-none})" || return 0
    # No --locked: its lockfile pins a yanked webpki-roots version and fails.
    cargo install wasm-bindgen-cli --version "${want}"
}

# The fuzz targets (fuzz/, scripts/fuzz.sh) run on the nightly toolchain with cargo-fuzz.
step_cargo_fuzz() {
    if rustup toolchain list | grep -q '^nightly'; then
        ok "nightly toolchain present"
    elif need "nightly toolchain (for cargo fuzz)"; then
        rustup toolchain install nightly --profile minimal
    fi
    if cargo fuzz --version >/dev/null 2>&1; then
        ok "cargo-fuzz present"
        return 0
    fi
    need "cargo-fuzz (~3 min)" || return 0
    cargo install cargo-fuzz --locked
}

step_npm() {
    local dir=${ROOT}/end2end
    [[ -f ${dir}/package-lock.json ]] || die "missing ${dir}/package-lock.json"
    if [[ -d ${dir}/node_modules && ! ${dir}/package-lock.json -nt ${dir}/node_modules/.package-lock.json ]]; then
        ok "end2end/node_modules up to date"
        return 0
    fi
    need "end2end npm packages (npm ci)" || return 0
    (cd "${dir}" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
}

step_user() {
    if getent passwd "${SERVICE_USER}" >/dev/null && getent group "${SERVICE_USER}" >/dev/null; then
        ok "user and group ${SERVICE_USER} present"
        return 0
    fi
    need "system user/group ${SERVICE_USER}" || return 0
    require_root "create the ${SERVICE_USER} user"
    if ! getent group "${SERVICE_USER}" >/dev/null; then
        groupadd --system "${SERVICE_USER}"
    fi
    if ! getent passwd "${SERVICE_USER}" >/dev/null; then
        useradd --system --gid "${SERVICE_USER}" --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "ctguard server" "${SERVICE_USER}"
    fi
}

step_apt
step_rust
step_cargo_leptos
step_wasm_bindgen
step_cargo_deny
step_cargo_fuzz
step_npm
step_user

if ((CHECK_ONLY && MISSING)); then
    echo "some dependencies are missing (run $0 without --check)"
    exit 1
fi
ok "all dependencies present"
