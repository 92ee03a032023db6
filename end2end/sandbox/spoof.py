#!/usr/bin/python3
"""The sandbox's distributed attacks: packets from thousands of spoofed sources.

This file owns the two attacks with many sources that end2end/sandbox/sandbox.sh starts from the
internet namespace, each aimed at one victim and each source holding only a few entries, so no
per-source reason can see them:

  reflection  UDP answers from source port 53 (or another amplifier's) of --sources reflector
              addresses, --per-source packets each to distinct ports of the victim: what a DNS
              reflection looks like at the victim's router (answers to queries it never sent).
  syn         TCP SYNs to one port of the victim, each from another address of the range and a
              random source port, at --rate per second for --seconds: a spoofed SYN flood. The
              victim answers (SYN-ACK, or a SYN cookie), nobody completes the handshake, and the
              router's table fills with half-open entries (SYN_RECV, 60 s each).

Why raw sockets: the sources are addresses no namespace owns (RFC 2544's benchmarking range,
198.18.0.0/15), and a SYN flood's handshakes must stay half-open; hping3's --rand-source picks
from all of IPv4 and cannot be held to a range. Only the standard library is used; both modes are
bounded in packets, rate and time.
"""

import argparse
import ipaddress
import random
import socket
import struct
import sys
import time

HARD_MAX_PACKETS = 200_000
HARD_MAX_RATE = 20_000
HARD_MAX_SECONDS = 900
# Only documentation and benchmarking ranges may be spoofed.
ALLOWED = [ipaddress.ip_network(n) for n in ("198.18.0.0/15", "203.0.113.0/24")]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_header(source: bytes, destination: bytes, protocol: int, payload_length: int) -> bytes:
    # With IPPROTO_RAW the kernel fills in the header checksum and, when zero, the id.
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + payload_length, 0, 0x4000, 64, protocol, 0, source, destination
    )


def udp_packet(source: bytes, destination: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    pseudo = struct.pack("!4s4sBBH", source, destination, 0, socket.IPPROTO_UDP, length)
    sum_ = checksum(pseudo + header + payload) or 0xFFFF
    header = struct.pack("!HHHH", sport, dport, length, sum_)
    return ip_header(source, destination, socket.IPPROTO_UDP, length) + header + payload


def syn_packet(source: bytes, destination: bytes, sport: int, dport: int, seq: int) -> bytes:
    # SYN with an MSS option, as a real client's would carry.
    options = struct.pack("!BBH", 2, 4, 1460)
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, offset << 4, 0x02, 64240, 0, 0) + options
    pseudo = struct.pack("!4s4sBBH", source, destination, 0, socket.IPPROTO_TCP, len(header))
    sum_ = checksum(pseudo + header)
    header = header[:16] + struct.pack("!H", sum_) + header[18:]
    return ip_header(source, destination, socket.IPPROTO_TCP, len(header)) + header


def addresses(network: ipaddress.IPv4Network, count: int) -> list:
    """`count` distinct host addresses of the network, in a random order."""
    hosts = network.num_addresses - 2
    if count > hosts:
        raise SystemExit(f"{network} has only {hosts} host addresses")
    picked = random.sample(range(1, hosts + 1), count)
    return [(network.network_address + i).packed for i in picked]


class Pacer:
    """At most `rate` packets a second, and never past the deadline."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.monotonic()
        self.deadline = self.next + seconds

    def wait(self) -> bool:
        now = time.monotonic()
        if now >= self.deadline:
            return False
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next + self.interval, time.monotonic() - 0.1)
        return True


def network_arg(text: str) -> ipaddress.IPv4Network:
    network = ipaddress.ip_network(text, strict=True)
    if not any(network.subnet_of(allowed) for allowed in ALLOWED):
        raise argparse.ArgumentTypeError(f"{text} is outside {', '.join(map(str, ALLOWED))}")
    return network


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("reflection", "syn"):
        mode = sub.add_parser(name)
        mode.add_argument("--from", dest="network", type=network_arg, required=True)
        mode.add_argument("--to", required=True, help="the victim")
        mode.add_argument("--rate", type=float, default=5_000.0, help="packets per second")
        mode.add_argument("--seconds", type=float, default=60.0, help="at most this long")
    reflection = sub.choices["reflection"]
    reflection.add_argument("--sources", type=int, required=True)
    reflection.add_argument("--per-source", type=int, default=3)
    reflection.add_argument("--sport", type=int, default=53)
    syn = sub.choices["syn"]
    syn.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    if not 0 < args.rate <= HARD_MAX_RATE:
        parser.error(f"--rate must be in (0, {HARD_MAX_RATE}]")
    if not 0 < args.seconds <= HARD_MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {HARD_MAX_SECONDS}]")
    victim = ipaddress.ip_address(args.to).packed
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    pacer = Pacer(args.rate, args.seconds)
    sent = 0

    if args.mode == "reflection":
        if not 1 <= args.sources * args.per_source <= HARD_MAX_PACKETS:
            parser.error(f"--sources × --per-source must be 1..{HARD_MAX_PACKETS}")
        # A DNS answer's worth of payload; content does not matter to conntrack.
        payload = bytes(64)
        packets = [(s, k) for s in addresses(args.network, args.sources) for k in range(args.per_source)]
        for source, _ in packets:
            if not pacer.wait():
                break
            dport = 1024 + random.randrange(60_000)
            out.sendto(udp_packet(source, victim, args.sport, dport, payload), (args.to, 0))
            sent += 1
    else:
        sources = addresses(args.network, min(args.network.num_addresses - 2, 65_000))
        while sent < HARD_MAX_PACKETS and pacer.wait():
            source = sources[sent % len(sources)]
            sport = 1024 + random.randrange(64_000)
            packet = syn_packet(source, victim, sport, args.port, random.getrandbits(32))
            out.sendto(packet, (args.to, 0))
            sent += 1
    print(f"{args.mode}: sent {sent} packets", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
