#!/usr/bin/python3
"""The sandbox's connection flood: completed TCP handshakes, held open.

This file owns the two ends of the "assured" flood that end2end/sandbox/sandbox.sh starts:

  serve  in the guest namespace: accepts every connection on one port and holds it;
  flood  in the internet namespace: from one source address, opens connections to it until the
         router's conntrack table is full, holds them, and keeps trying a few new ones per second.
         With --max below the table's room it is a benign holder instead: a reverse proxy's
         keep-alive pool (one source), or, with --source-count, the users behind a NAT (that
         many consecutive addresses, connections spread over them).

Why completed handshakes: the kernel evicts unreplied entries to make room (early_drop), but never
ASSURED ones. A table full of assured entries is what makes it drop new connections and log
"nf_conntrack: table full, dropping packet" (the seed's incident), with a rising `drop` counter.
Why Python: one process holds thousands of sockets with the standard library's asyncio; no tool in
Debian's archive opens and holds a given number of TCP connections (hping3 sends packets but never
completes a handshake; socat forks a process per connection).

Both ends are bounded: at most --max connections, for at most --seconds, then everything is closed.
Only the standard library is used.
"""

import argparse
import asyncio
import ipaddress
import json
import resource
import sys
import time

CONNECT_TIMEOUT_SECONDS = 1.0
FILL_CONCURRENCY = 256
HARD_MAX_CONNECTIONS = 30_000
HARD_MAX_SECONDS = 1_800


def raise_fd_limit(needed: int) -> None:
    """Each held connection is a file descriptor; the default soft limit (1024) is too small."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(bind: str, port: int, max_connections: int, seconds: float) -> None:
    held = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(held) >= max_connections:
            writer.close()
            return
        held.append(writer)
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass

    server = await asyncio.start_server(hold, bind, port, backlog=4096, reuse_address=True)
    async with server:
        await asyncio.sleep(seconds)
    for writer in held:
        writer.close()


class Flood:
    def __init__(self, sources: list, host: str, port: int, max_connections: int) -> None:
        self.sources = sources
        self.attempts = 0
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.held = []
        self.failed = 0
        self.pending = 0

    async def attempt(self) -> bool:
        self.pending += 1
        source = self.sources[self.attempts % len(self.sources)]
        self.attempts += 1
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, local_addr=(source, 0)),
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
            self.held.append(writer)
            return True
        except (OSError, asyncio.TimeoutError):
            self.failed += 1
            return False
        finally:
            self.pending -= 1

    def room(self) -> int:
        return self.max_connections - len(self.held) - self.pending

    def status(self) -> str:
        return json.dumps(
            {"established": len(self.held), "failed": self.failed, "time": round(time.time(), 3)}
        )


async def flood(args: argparse.Namespace) -> None:
    first = ipaddress.ip_address(args.source)
    sources = [str(first + i) for i in range(args.source_count)]
    state = Flood(sources, args.to, args.port, args.max)
    deadline = time.monotonic() + args.seconds

    def report() -> None:
        if args.status:
            with open(args.status, "w", encoding="utf-8") as out:
                out.write(state.status() + "\n")

    # Fill: many handshakes at once, until one fails (the table is full) or the bound is reached.
    tasks = set()
    full = False
    while not full and time.monotonic() < deadline:
        # Tasks not yet started are not `pending` yet: count every one in flight.
        while len(tasks) < FILL_CONCURRENCY and state.room() - len(tasks) > 0:
            tasks.add(asyncio.ensure_future(state.attempt()))
        if not tasks:
            break
        done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        full = any(not task.result() for task in done)
    for task in tasks:
        await task
    report()

    # Pressure: a few new connections per second against the full table, as clients would keep
    # trying; each dropped SYN is one more `drop` and, rate-limited, one more kernel message.
    interval = 1.0 / args.rate if args.rate > 0 else None
    while time.monotonic() < deadline:
        if interval is not None and state.room() > 0:
            asyncio.ensure_future(state.attempt())
        await asyncio.sleep(interval if interval is not None else 1.0)
        report()

    for writer in state.held:
        writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    serve_args = sub.add_parser("serve", help="accept and hold connections")
    serve_args.add_argument("--bind", required=True)
    serve_args.add_argument("--port", type=int, required=True)
    serve_args.add_argument("--max", type=int, required=True)
    serve_args.add_argument("--seconds", type=float, required=True)
    flood_args = sub.add_parser("flood", help="open and hold connections until the table is full")
    flood_args.add_argument("--source", required=True)
    flood_args.add_argument(
        "--source-count", type=int, default=1, help="consecutive source addresses from --source"
    )
    flood_args.add_argument("--to", required=True)
    flood_args.add_argument("--port", type=int, required=True)
    flood_args.add_argument("--max", type=int, required=True)
    flood_args.add_argument("--rate", type=float, default=20.0, help="new attempts per second once full")
    flood_args.add_argument("--seconds", type=float, required=True)
    flood_args.add_argument("--status", help="file rewritten with a JSON status line")
    args = parser.parse_args()

    if not 1 <= args.max <= HARD_MAX_CONNECTIONS:
        parser.error(f"--max must be 1..{HARD_MAX_CONNECTIONS}")
    if not 0 < args.seconds <= HARD_MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {HARD_MAX_SECONDS}]")
    if args.mode == "flood" and not 1 <= args.source_count <= 1024:
        parser.error("--source-count must be 1..1024")
    raise_fd_limit(args.max)
    if args.mode == "serve":
        asyncio.run(serve(args.bind, args.port, args.max, args.seconds))
    else:
        asyncio.run(flood(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
