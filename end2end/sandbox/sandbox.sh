#!/usr/bin/env bash
# ctguard end-to-end sandbox: a small routed network in network namespaces, and the seed's floods.
#
# This script owns, and only touches:
#   - the network namespaces ctg-host, ctg-inet and ctg-guest (and the veth pairs inside them),
#   - the nftables table `inet ctg_sandbox` inside ctg-host (never `inet ctguard`: that is the product's),
#   - per-namespace sysctls inside ctg-host (ip_forward, UDP conntrack timeouts) and ipv6 off inside
#     the three namespaces,
#   - the processes it starts in ctg-guest and ctg-inet, and the state dir /run/ctguard-sandbox/,
#   - the one global setting it may change: nf_conntrack_max, only through `limit`, saved first and
#     always put back by `down` (also when `up` finds a sandbox left behind).
# It has no link to the machine's own namespace: the only routes in ctg-inet and ctg-guest point at
# ctg-host, which has no route out. Only documentation ranges are used:
#
#   ctg-inet  eth0 203.0.113.10 client        <->  veth-inet  203.0.113.1   ctg-host (router,
#                  203.0.113.66 UDP flooder                                 conntrack active,
#                  203.0.113.77 connection flooder                          NAT for the guests)
#                  203.0.113.88 scanner
#                  203.0.113.53 DNS reflector
#                  203.0.113.20 reverse proxy (busy-host), 203.0.113.40 monitor (busy-host)
#   ctg-guest eth0 198.51.100.10 server       <->  veth-guest 198.51.100.1
#                  198.51.100.23 compromised guest
#                  198.51.100.128/25 (a local route: any address of it) the NAT's users
#   (198.51.100.99 is routed to the guest side but nobody answers there: the scan's target)
#   198.18.0.0/15 (RFC 2544's benchmarking range) is routed by ctg-host to ctg-inet, which owns
#   none of it: the spoofed sources of the distributed attacks (spoof.py), whose answers vanish there.
#
# Usage: sandbox.sh up | down | status | count | flush | client-check | flows N [PORT [SRC]]
#                   | limit N | limit restore | scenario NAME [ARG]
#   up            (re)create everything, tearing down leftovers first; prints one summary line
#   down          stop every sandbox process, delete the namespaces and the state dir, put back
#                 nf_conntrack_max if `limit` changed it (always safe)
#   status        list which sandbox namespaces exist; exit 0 only if all three do
#   count         ctg-host's conntrack entry count
#   flush         empty ctg-host's conntrack table
#   client-check  "legitimate client": 203.0.113.10 -> 198.51.100.10:8080 within 3 s; exit 0/1
#   flows N [PORT [SRC]]
#                 N UDP packets (1..60000) from SRC (default 203.0.113.10, one of the ctg-inet
#                 addresses) to 198.51.100.10:PORT (default 9999), one distinct source port each,
#                 so ctg-host gains N new (unreplied) conntrack entries. Source ports advance across
#                 calls (a cursor per SRC in the state dir) so repeated calls keep adding entries.
#   limit N       set the global nf_conntrack_max to N (1024..1048576) so the table fills fast;
#                 the first call saves the old value. Refused when the machine's own table holds
#                 more than N/2 entries. `limit restore` puts the saved value back now.
#   scenario assured-flood [SECONDS]
#                 203.0.113.77 opens TCP connections to 198.51.100.10:8081 and holds them (each an
#                 ASSURED entry the kernel cannot evict) until the table is full, then keeps trying
#                 a few per second: the kernel drops packets and logs "table full, dropping packet".
#                 Needs nf_conntrack_max <= 20000 (see `limit`); returns once the table is full;
#                 the connections are held for SECONDS (default 600, at most 1800).
#   scenario dns-reflection N
#                 N UDP packets from 203.0.113.53 source port 53 to N distinct ports of the guest:
#                 the seed's DNS reflection (block it with `udp from 203.0.113.53 sport 53`).
#   scenario scan N
#                 N TCP SYNs from 203.0.113.88 to ports 1..N of 198.51.100.99 (nobody answers):
#                 N half-open entries from one source.
#   scenario compromised-guest N
#                 N TCP SYNs from the guest 198.51.100.23 to port 23 of random 203.0.113.x
#                 addresses, source-NATed by ctg-host: an infected guest scanning the internet.
#   scenario busy-host [SECONDS]
#                 a benign busy host, for SECONDS (default 600): a reverse proxy 203.0.113.20
#                 holding 400 keep-alive connections to 198.51.100.10:8082; 120 users behind the
#                 NAT (198.51.100.130-249) holding 3 connections each to 203.0.113.10:443; a
#                 monitor 203.0.113.40 scraping ports 9100-9129 of 198.51.100.10 every 10 s.
#                 Every connection is answered. Returns once all are in the table.
#   scenario distributed-reflection [SOURCES [PER]]
#                 SOURCES (default 1200) reflectors of 198.18.0.0/16 send PER (default 3) UDP
#                 answers each from source port 53 to random ports of 198.51.100.10: a DNS
#                 reflection no single source shows (block it with udp to 198.51.100.10 sport 53).
#   scenario syn-flood [RATE [SECONDS]]
#                 spoofed SYNs from 198.19.0.0/16 to 198.51.100.10:80 (a listener answers),
#                 RATE a second (default 100) for SECONDS (default 300), in the background: the
#                 table holds about RATE x 60 half-open entries (SYN_RECV lasts 60 s). Returns
#                 once RATE x 5 are there. Block it with tcp to 198.51.100.10 dport 80.
#   scenario short-flows [N]
#                 N (default 2000) UDP flows from 203.0.113.66 to 198.51.100.10:9997 while ctg-host
#                 keeps unreplied UDP entries 1 s instead of 600: entries that expire before any walk
#                 of the table sees them (the counting table still counts each one). Returns once
#                 they are gone, with the timeout put back.
#   scenario stop stop every scenario's background processes (their entries stay until they
#                 time out)
set -euo pipefail

# CTGUARD_SANDBOX names the sandbox (default ctg): two sandboxes with different names can run side
# by side on one machine (the address ranges repeat, but each lives in its own namespaces).
readonly PREFIX=${CTGUARD_SANDBOX:-ctg}
[[ $PREFIX =~ ^[a-z][a-z0-9]{0,7}$ ]] || { echo "CTGUARD_SANDBOX must be 1-8 of a-z0-9" >&2; exit 2; }
readonly NS_HOST=$PREFIX-host
readonly NS_INET=$PREFIX-inet
readonly NS_GUEST=$PREFIX-guest
readonly ALL_NS=("$NS_HOST" "$NS_INET" "$NS_GUEST")
if [[ $PREFIX == ctg ]]; then
    readonly STATE_DIR=/run/ctguard-sandbox
else
    readonly STATE_DIR=/run/ctguard-sandbox-$PREFIX
fi

readonly HOST_INET_IP=203.0.113.1
readonly INET_IP=203.0.113.10
readonly INET_EXTRA_IPS=(203.0.113.66 203.0.113.77 203.0.113.88 203.0.113.53 203.0.113.20 203.0.113.40)
readonly HOST_GUEST_IP=198.51.100.1
readonly GUEST_IP=198.51.100.10
readonly GUEST_COMPROMISED_IP=198.51.100.23
readonly NOBODY_IP=198.51.100.99

readonly FLOODER_IP=203.0.113.77
readonly SCANNER_IP=203.0.113.88
readonly SHORT_FLOWS_IP=203.0.113.66
readonly REFLECTOR_IP=203.0.113.53
readonly PROXY_IP=203.0.113.20
readonly PROXY_PORT=8082
readonly PROXY_CONNECTIONS=400
readonly NAT_USERS_NET=198.51.100.128/25
readonly NAT_USERS_FIRST=198.51.100.130
readonly NAT_USERS=120
readonly NAT_USER_CONNECTIONS=3
readonly WEB_PORT=443
readonly MONITOR_IP=203.0.113.40
readonly MONITOR_PORTS=9100-9129
readonly SPOOF_NET=198.18.0.0/15
readonly REFLECTORS_NET=198.18.0.0/16
readonly SYN_SOURCES_NET=198.19.0.0/16
readonly SYN_PORT=80
readonly HOLD_PORT=8081
# The assured flood holds one socket per entry: beyond this the table is too big to fill that way.
readonly ASSURED_FLOOD_MAX_LIMIT=20000
readonly LIMIT_MIN=1024
readonly LIMIT_MAX=1048576
readonly MAX_PATH=/proc/sys/net/netfilter/nf_conntrack_max
SANDBOX_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SANDBOX_DIR
readonly CONNFLOOD=$SANDBOX_DIR/connflood.py
readonly BUSY=$SANDBOX_DIR/busy.py
readonly SPOOF=$SANDBOX_DIR/spoof.py

readonly LISTEN_PORT=8080
readonly LISTEN_ANSWER=ctguard-sandbox-ok
readonly UDP_TIMEOUT=600

readonly FLOWS_MAX=60000
readonly SPORT_MIN=1024
readonly SPORT_MAX=65535

log() { printf 'sandbox: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n 's/^# \{0,1\}//; /^Usage:/,/^$/p' "$0" | sed '/^set -euo/d' >&2
    exit 2
}

require_root() {
    [[ ${EUID} -eq 0 ]] || die "must run as root"
}

require_tools() {
    local t missing=()
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/install-deps.sh)"
}

ns_exists() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"
}

in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

require_up() {
    local ns
    for ns in "$@"; do
        ns_exists "$ns" || die "namespace $ns does not exist (run: $0 up)"
    done
}

# Send TERM, then KILL after a grace period, to the given PIDs (only those still alive).
kill_pids() {
    local pid alive=() i
    for pid in "$@"; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    ((${#alive[@]} == 0)) && return 0
    kill -TERM "${alive[@]}" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        local still=()
        for pid in "${alive[@]}"; do
            kill -0 "$pid" 2>/dev/null && still+=("$pid")
        done
        ((${#still[@]} == 0)) && return 0
        sleep 0.1
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

cmd_down() {
    require_root
    local pids=() ns line
    # 1. the PIDs this script recorded
    if [[ -d $STATE_DIR ]]; then
        for f in "$STATE_DIR"/*.pid; do
            [[ -e $f ]] || continue
            read -r line <"$f" || true
            pids+=("$line")
        done
    fi
    # 2. whatever else still runs inside the sandbox namespaces (by PID, namespace by namespace),
    #    so that the namespaces really go away when deleted
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            while read -r line; do
                [[ -n $line ]] && pids+=("$line")
            done < <(ip netns pids "$ns" 2>/dev/null || true)
        fi
    done
    kill_pids "${pids[@]+"${pids[@]}"}"
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            ip netns delete "$ns" || log "warning: could not delete $ns"
        fi
    done
    restore_limit
    rm -rf -- "$STATE_DIR"
}

# The saved nf_conntrack_max lives in the state dir; it is put back before the dir goes.
saved_limit_file() { echo "$STATE_DIR/nf_conntrack_max.saved"; }

restore_limit() {
    local file saved
    file=$(saved_limit_file)
    [[ -r $file ]] || return 0
    read -r saved <"$file" || saved=
    if [[ $saved =~ ^[0-9]+$ ]]; then
        echo "$saved" >"$MAX_PATH"
        log "nf_conntrack_max put back to $saved"
    else
        log "warning: unreadable saved nf_conntrack_max in $file; left at $(cat "$MAX_PATH")"
    fi
    rm -f -- "$file"
}

cmd_limit() {
    require_root
    local want=${1:-}
    if [[ $want == restore ]]; then
        restore_limit
        return 0
    fi
    if ! [[ $want =~ ^[0-9]+$ ]] || ((want < LIMIT_MIN || want > LIMIT_MAX)); then
        die "limit: N must be ${LIMIT_MIN}..${LIMIT_MAX} (or 'restore')"
    fi
    # The limit is global: every namespace's table, the machine's own included, is held to it.
    local own=0
    own=$(conntrack -C 2>/dev/null || echo 0)
    if ((own * 2 > want)); then
        die "limit: this machine's own conntrack table holds $own entries; a limit of $want would endanger its traffic"
    fi
    mkdir -p "$STATE_DIR"
    local file
    file=$(saved_limit_file)
    [[ -e $file ]] || cat "$MAX_PATH" >"$file"
    echo "$want" >"$MAX_PATH"
    log "nf_conntrack_max is now $want (was $(cat "$file"); sandbox.sh down puts it back)"
}

start_listener() {
    local log_file=$STATE_DIR/guest-listener.log pid i
    # setsid detaches it from the caller's process group; in a non-interactive shell a background
    # child is no group leader, so setsid and `ip netns exec` both exec and $! is socat's own PID.
    setsid ip netns exec "$NS_GUEST" \
        socat -T5 "TCP-LISTEN:${LISTEN_PORT},bind=${GUEST_IP},reuseaddr,fork,backlog=128" \
        "EXEC:echo ${LISTEN_ANSWER}" </dev/null >"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$STATE_DIR/guest-listener.pid"
    for ((i = 0; i < 50; i++)); do
        if in_ns "$NS_GUEST" ss -Hltn "sport = :${LISTEN_PORT}" | grep -q .; then
            echo "$pid"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    die "listener in $NS_GUEST did not come up (see $log_file)"
}

load_ruleset() {
    in_ns "$NS_HOST" nft -f - <<NFT
table inet ctg_sandbox {
    chain input {
        type filter hook input priority filter; policy accept;
        ct state new counter accept
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state new counter accept
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 198.51.100.0/24 ip daddr 203.0.113.0/24 oifname "veth-inet" counter masquerade
    }
}
NFT
}

cmd_up() {
    require_root
    require_tools ip nft conntrack socat ss sysctl setsid
    cmd_down
    # From here on, any failure tears down what was built.
    trap 'rc=$?; log "up failed, tearing down"; trap - EXIT; cmd_down; exit "$rc"' EXIT
    mkdir -p "$STATE_DIR"

    local ns ip
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        # per-namespace settings only; IPv6 off so no link-local chatter reaches the table
        in_ns "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        in_ns "$ns" ip link set lo up
    done

    # veth pairs created directly inside the namespaces: nothing ever lives in the initial one.
    ip link add veth-inet netns "$NS_HOST" type veth peer name eth0 netns "$NS_INET"
    ip link add veth-guest netns "$NS_HOST" type veth peer name eth0 netns "$NS_GUEST"

    in_ns "$NS_HOST" ip addr add "${HOST_INET_IP}/24" dev veth-inet
    in_ns "$NS_HOST" ip addr add "${HOST_GUEST_IP}/24" dev veth-guest
    in_ns "$NS_HOST" ip link set veth-inet up
    in_ns "$NS_HOST" ip link set veth-guest up

    in_ns "$NS_INET" ip addr add "${INET_IP}/24" dev eth0
    for ip in "${INET_EXTRA_IPS[@]}"; do
        in_ns "$NS_INET" ip addr add "${ip}/24" dev eth0
    done
    in_ns "$NS_INET" ip link set eth0 up
    in_ns "$NS_INET" ip route add default via "$HOST_INET_IP" dev eth0

    in_ns "$NS_GUEST" ip addr add "${GUEST_IP}/24" dev eth0
    in_ns "$NS_GUEST" ip addr add "${GUEST_COMPROMISED_IP}/24" dev eth0
    in_ns "$NS_GUEST" ip link set eth0 up
    in_ns "$NS_GUEST" ip route add default via "$HOST_GUEST_IP" dev eth0
    # Any address of the /25 is the guest's own (and answered by ARP): the NAT's users.
    in_ns "$NS_GUEST" ip route add local "$NAT_USERS_NET" dev lo
    # The spoofed sources' range leads back into ctg-inet, where nobody owns it.
    in_ns "$NS_HOST" ip route add "$SPOOF_NET" via "$INET_IP" dev veth-inet

    # ctg-host: router with conntrack active (per-namespace sysctls only)
    in_ns "$NS_HOST" sysctl -q -w net.ipv4.ip_forward=1
    load_ruleset
    in_ns "$NS_HOST" sysctl -q -w \
        "net.netfilter.nf_conntrack_udp_timeout=${UDP_TIMEOUT}" \
        "net.netfilter.nf_conntrack_udp_timeout_stream=${UDP_TIMEOUT}"

    local listener_pid
    listener_pid=$(start_listener)

    trap - EXIT
    printf 'sandbox up: %s router (%s, %s; table inet ctg_sandbox; udp timeouts %ss; conntrack count %s) | %s %s +%s | %s %s +%s listener tcp/%s pid %s\n' \
        "$NS_HOST" "$HOST_INET_IP" "$HOST_GUEST_IP" "$UDP_TIMEOUT" \
        "$(in_ns "$NS_HOST" conntrack -C)" \
        "$NS_INET" "$INET_IP" "${INET_EXTRA_IPS[*]}" \
        "$NS_GUEST" "$GUEST_IP" "$GUEST_COMPROMISED_IP" "$LISTEN_PORT" "$listener_pid"
}

cmd_flows() {
    require_root
    require_tools hping3 timeout
    require_up "$NS_HOST" "$NS_INET" "$NS_GUEST"
    local n=${1:-} port=${2:-9999} src=${3:-$INET_IP}
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > FLOWS_MAX)); then
        die "flows: N must be 1..${FLOWS_MAX}"
    fi
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "flows: PORT must be 1..65535"
    fi
    local ok=0 a
    for a in "$INET_IP" "${INET_EXTRA_IPS[@]}"; do
        [[ $src == "$a" ]] && ok=1
    done
    ((ok)) || die "flows: SRC must be one of $INET_IP ${INET_EXTRA_IPS[*]}"

    # Distinct source ports, advancing across calls so successive calls create new tuples.
    mkdir -p "$STATE_DIR"
    local cursor_file=$STATE_DIR/sport-${src}.next base=$SPORT_MIN
    if [[ -r $cursor_file ]]; then
        read -r base <"$cursor_file" || base=$SPORT_MIN
        [[ $base =~ ^[0-9]+$ ]] || base=$SPORT_MIN
    fi
    if ((base < SPORT_MIN || base + n - 1 > SPORT_MAX)); then
        base=$SPORT_MIN
        log "flows: source ports for $src wrapped to $SPORT_MIN (tuples still in the table are not new)"
    fi
    echo $((base + n)) >"$cursor_file"

    hping "$NS_INET" "$n" --udp -I eth0 -a "$src" -s "$base" -p "$port" "$GUEST_IP"
}

# hping NS N ARGS...: N packets (-c N, every 100 us) from namespace NS. Bounded in count and time
# (~10k packets/s nominal, generous margin). hping3 now and then aborts (SIGABRT, exit 134) at
# exit; sending the same batch again is harmless (the same ports make the same tuples, no extra
# entries), so a crash is retried twice.
hping() {
    local ns=$1 n=$2
    shift 2
    local limit=$((15 + n / 1000)) rc attempt
    for attempt in 1 2 3; do
        rc=0
        timeout --kill-after=5 "$limit" \
            ip netns exec "$ns" hping3 -c "$n" -i u100 "$@" </dev/null >/dev/null 2>&1 || rc=$?
        # hping3 exits 1 when it got no replies (normal here); 124/137 mean the time bound hit.
        case $rc in
            0 | 1) return 0 ;;
            124 | 137) die "hping3 did not finish within ${limit}s" ;;
            *) log "hping3 failed with exit code $rc (attempt $attempt of 3)" ;;
        esac
    done
    die "hping3 failed three times (last exit code $rc)"
}

packet_count() { # N: a scenario's packet count, 1..FLOWS_MAX
    local n=${1:-}
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > FLOWS_MAX)); then
        die "scenario: N must be 1..${FLOWS_MAX}"
    fi
    echo "$n"
}

# Starts a bounded background process inside a namespace, detached, its pid recorded by name.
start_background() { # NAME NS COMMAND...
    local name=$1 ns=$2
    shift 2
    setsid ip netns exec "$ns" "$@" </dev/null >"$STATE_DIR/$name.log" 2>&1 &
    echo $! >"$STATE_DIR/$name.pid"
}

scenario_assured_flood() {
    local seconds=${1:-600} limit count i
    if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 10 || seconds > 1800)); then
        die "assured-flood: SECONDS must be 10..1800"
    fi
    limit=$(cat "$MAX_PATH")
    if ((limit > ASSURED_FLOOD_MAX_LIMIT)); then
        die "assured-flood: nf_conntrack_max is $limit; lower it first (e.g. $0 limit 4096, at most $ASSURED_FLOOD_MAX_LIMIT)"
    fi
    stop_background flood flood-server
    # Sockets held on both ends: the limit plus room for the entries already there.
    start_background flood-server "$NS_GUEST" python3 "$CONNFLOOD" serve \
        --bind "$GUEST_IP" --port "$HOLD_PORT" --max $((limit + 1024)) --seconds $((seconds + 30))
    for ((i = 0; i < 50; i++)); do
        in_ns "$NS_GUEST" ss -Hltn "sport = :${HOLD_PORT}" | grep -q . && break
        sleep 0.1
    done
    start_background flood "$NS_INET" python3 "$CONNFLOOD" flood \
        --source "$FLOODER_IP" --to "$GUEST_IP" --port "$HOLD_PORT" --max $((limit + 512)) \
        --rate 20 --seconds "$seconds" --status "$STATE_DIR/flood.status"
    # Return once the table is full (bounded: a minute).
    for ((i = 0; i < 600; i++)); do
        count=$(in_ns "$NS_HOST" conntrack -C)
        if ((count >= limit)); then
            log "assured-flood: table full ($count of $limit) from $FLOODER_IP; held for ${seconds}s"
            return 0
        fi
        kill -0 "$(cat "$STATE_DIR/flood.pid")" 2>/dev/null || die "assured-flood: the flooder exited (see $STATE_DIR/flood.log)"
        sleep 0.1
    done
    die "assured-flood: the table did not fill within 60 s ($count of $limit)"
}

# Waits (bounded) until COMMAND's output, a number, reaches N. wait_for N SECONDS WHAT COMMAND...
wait_for() {
    local want=$1 seconds=$2 what=$3 i got=0
    shift 3
    for ((i = 0; i < seconds * 10; i++)); do
        got=$("$@" || true)
        ((got >= want)) && return 0
        sleep 0.1
    done
    die "$what: $got of $want after ${seconds}s"
}

host_entries() { # conntrack -L filter arguments: how many entries of the router's table match
    in_ns "$NS_HOST" conntrack -L "$@" 2>/dev/null | grep -c . || true
}

scenario_busy_host() {
    local seconds=${1:-600}
    if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 10 || seconds > 1800)); then
        die "busy-host: SECONDS must be 10..1800"
    fi
    local users=$((NAT_USERS * NAT_USER_CONNECTIONS)) hold=$((seconds + 30))
    # The reverse proxy's backend and its keep-alive pool.
    start_background proxy-server "$NS_GUEST" python3 "$CONNFLOOD" serve \
        --bind "$GUEST_IP" --port "$PROXY_PORT" --max $((PROXY_CONNECTIONS + 64)) --seconds "$hold"
    # The web service the NAT's users hold connections to.
    start_background web-server "$NS_INET" python3 "$CONNFLOOD" serve \
        --bind "$INET_IP" --port "$WEB_PORT" --max $((users + 64)) --seconds "$hold"
    start_background monitor-answer "$NS_GUEST" python3 "$BUSY" answer \
        --bind "$GUEST_IP" --ports "$MONITOR_PORTS" --seconds "$hold"
    wait_for 1 5 "busy-host: the proxy's backend" \
        bash -c "ip netns exec $NS_GUEST ss -Hltn 'sport = :$PROXY_PORT' | grep -c ."
    wait_for 1 5 "busy-host: the web service" \
        bash -c "ip netns exec $NS_INET ss -Hltn 'sport = :$WEB_PORT' | grep -c ."
    wait_for 30 5 "busy-host: the monitor's exporters" \
        bash -c "ip netns exec $NS_GUEST ss -Hltn 'sport >= :9100 and sport <= :9129' | grep -c ."
    start_background proxy "$NS_INET" python3 "$CONNFLOOD" flood --source "$PROXY_IP" \
        --to "$GUEST_IP" --port "$PROXY_PORT" --max "$PROXY_CONNECTIONS" --rate 0 --seconds "$seconds"
    start_background nat-users "$NS_GUEST" python3 "$CONNFLOOD" flood --source "$NAT_USERS_FIRST" \
        --source-count "$NAT_USERS" --to "$INET_IP" --port "$WEB_PORT" --max "$users" --rate 0 \
        --seconds "$seconds"
    start_background monitor "$NS_INET" python3 "$BUSY" scrape --source "$MONITOR_IP" \
        --to "$GUEST_IP" --ports "$MONITOR_PORTS" --interval 10 --seconds "$seconds"
    wait_for "$PROXY_CONNECTIONS" 30 "busy-host: the proxy's connections" \
        host_entries -s "$PROXY_IP" -p tcp --state ESTABLISHED
    wait_for "$users" 30 "busy-host: the NAT's users' connections" \
        host_entries -d "$INET_IP" -p tcp --dport "$WEB_PORT" --state ESTABLISHED
    wait_for 30 30 "busy-host: the monitor's first scrape" host_entries -s "$MONITOR_IP" -p tcp
    log "busy-host: proxy $PROXY_IP holds $PROXY_CONNECTIONS, $NAT_USERS NAT users hold $users, monitor $MONITOR_IP scrapes $MONITOR_PORTS; for ${seconds}s"
}

scenario_distributed_reflection() {
    local sources=${1:-1200} per=${2:-3}
    if ! [[ $sources =~ ^[0-9]+$ && $per =~ ^[0-9]+$ ]] || ((sources < 1 || per < 1 || sources * per > FLOWS_MAX)); then
        die "distributed-reflection: SOURCES x PER must be 1..${FLOWS_MAX}"
    fi
    timeout --kill-after=5 $((20 + sources * per / 2000)) ip netns exec "$NS_INET" python3 "$SPOOF" \
        reflection --from "$REFLECTORS_NET" --to "$GUEST_IP" --sources "$sources" --per-source "$per" \
        --sport 53 --rate 5000 --seconds $((10 + sources * per / 2000)) </dev/null >/dev/null 2>&1 ||
        die "distributed-reflection: spoof.py failed"
}

scenario_syn_flood() {
    local rate=${1:-100} seconds=${2:-300}
    if ! [[ $rate =~ ^[0-9]+$ && $seconds =~ ^[0-9]+$ ]] || ((rate < 1 || rate > 1000 || seconds < 10 || seconds > 900)); then
        die "syn-flood: RATE must be 1..1000 and SECONDS 10..900"
    fi
    if ! in_ns "$NS_GUEST" ss -Hltn "sport = :${SYN_PORT}" | grep -q .; then
        # The victim's service: it answers every SYN (with a SYN cookie once its backlog is full).
        start_background syn-target "$NS_GUEST" socat -T5 \
            "TCP-LISTEN:${SYN_PORT},bind=${GUEST_IP},reuseaddr,fork,backlog=128" "EXEC:echo ${LISTEN_ANSWER}"
        wait_for 1 5 "syn-flood: the victim's listener" \
            bash -c "ip netns exec $NS_GUEST ss -Hltn 'sport = :$SYN_PORT' | grep -c ."
    fi
    start_background syn-flood "$NS_INET" python3 "$SPOOF" syn --from "$SYN_SOURCES_NET" \
        --to "$GUEST_IP" --port "$SYN_PORT" --rate "$rate" --seconds "$seconds"
    wait_for $((rate * 5)) 20 "syn-flood: half-open entries" \
        host_entries -d "$GUEST_IP" -p tcp --dport "$SYN_PORT"
    log "syn-flood: $rate SYNs/s from $SYN_SOURCES_NET to $GUEST_IP:$SYN_PORT for ${seconds}s"
}

scenario_stop() {
    stop_background flood flood-server proxy proxy-server nat-users web-server monitor \
        monitor-answer syn-flood syn-target
}

stop_background() { # NAME...: the background processes start_background recorded by these names
    local name pids=()
    for name in "$@"; do
        [[ -r $STATE_DIR/$name.pid ]] && pids+=("$(cat "$STATE_DIR/$name.pid")")
        rm -f -- "$STATE_DIR/$name.pid"
    done
    kill_pids "${pids[@]+"${pids[@]}"}"
}

# Flows that live one second: the creators view names their source, no walk does.
scenario_short_flows() {
    local n
    n=$(packet_count "${1:-2000}")
    in_ns "$NS_HOST" sysctl -q -w net.netfilter.nf_conntrack_udp_timeout=1
    # Put back however the flood ends (an error exits through die).
    trap 'in_ns "$NS_HOST" sysctl -q -w "net.netfilter.nf_conntrack_udp_timeout=${UDP_TIMEOUT}"' EXIT
    hping "$NS_INET" "$n" --udp -I eth0 -a "$SHORT_FLOWS_IP" -s 30000 -p 9997 "$GUEST_IP"
    local i left
    for ((i = 0; i < 100; i++)); do
        left=$(in_ns "$NS_HOST" conntrack -L -s "$SHORT_FLOWS_IP" -p udp --dport 9997 2>/dev/null | grep -c . || true)
        ((left == 0)) && break
        sleep 0.1
    done
    in_ns "$NS_HOST" sysctl -q -w "net.netfilter.nf_conntrack_udp_timeout=${UDP_TIMEOUT}"
    trap - EXIT
    ((left == 0)) || die "short-flows: $left entries still there after 10 s"
    log "short-flows: $n flows from $SHORT_FLOWS_IP came and went"
}

cmd_scenario() {
    require_root
    require_tools hping3 timeout python3
    require_up "$NS_HOST" "$NS_INET" "$NS_GUEST"
    mkdir -p "$STATE_DIR"
    local name=${1:-} n
    (($# > 0)) && shift
    case $name in
        assured-flood) scenario_assured_flood "$@" ;;
        busy-host) scenario_busy_host "$@" ;;
        distributed-reflection) scenario_distributed_reflection "$@" ;;
        syn-flood) scenario_syn_flood "$@" ;;
        short-flows) scenario_short_flows "$@" ;;
        dns-reflection)
            n=$(packet_count "${1:-}")
            # -k keeps source port 53; ++1024 walks the destination ports from 1024.
            hping "$NS_INET" "$n" --udp -I eth0 -a "$REFLECTOR_IP" -s 53 -k -p ++1024 "$GUEST_IP"
            ;;
        scan)
            n=$(packet_count "${1:-}")
            hping "$NS_INET" "$n" -S -I eth0 -a "$SCANNER_IP" -p ++1 "$NOBODY_IP"
            ;;
        compromised-guest)
            n=$(packet_count "${1:-}")
            hping "$NS_GUEST" "$n" -S -I eth0 -a "$GUEST_COMPROMISED_IP" -p 23 --rand-dest 203.0.113.x
            ;;
        stop) scenario_stop ;;
        *) die "scenario: unknown name '$name' (assured-flood, busy-host, distributed-reflection, syn-flood, short-flows, dns-reflection, scan, compromised-guest, stop)" ;;
    esac
}

cmd_count() {
    require_root
    require_up "$NS_HOST"
    in_ns "$NS_HOST" conntrack -C
}

cmd_flush() {
    require_root
    require_up "$NS_HOST"
    in_ns "$NS_HOST" conntrack -F 2>/dev/null
}

cmd_client_check() {
    require_root
    require_up "$NS_INET" "$NS_HOST" "$NS_GUEST"
    local answer
    answer=$(timeout --kill-after=1 4 ip netns exec "$NS_INET" \
        socat -T3 -u "TCP:${GUEST_IP}:${LISTEN_PORT},bind=${INET_IP},connect-timeout=3" STDOUT \
        2>/dev/null) || true
    [[ $answer == "$LISTEN_ANSWER" ]]
}

cmd_status() {
    local ns all=0
    for ns in "${ALL_NS[@]}"; do
        if ns_exists "$ns"; then
            echo "$ns: present"
        else
            echo "$ns: absent"
            all=1
        fi
    done
    return "$all"
}

main() {
    local cmd=${1:-}
    (($# > 0)) && shift
    case $cmd in
        up) (($# == 0)) || usage; cmd_up ;;
        down) (($# == 0)) || usage; cmd_down ;;
        status) (($# == 0)) || usage; cmd_status ;;
        count) (($# == 0)) || usage; cmd_count ;;
        flush) (($# == 0)) || usage; cmd_flush ;;
        client-check) (($# == 0)) || usage; cmd_client_check ;;
        flows) (($# >= 1 && $# <= 3)) || usage; cmd_flows "$@" ;;
        limit) (($# == 1)) || usage; cmd_limit "$@" ;;
        scenario) (($# >= 1 && $# <= 3)) || usage; cmd_scenario "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
