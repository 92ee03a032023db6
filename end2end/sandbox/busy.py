#!/usr/bin/python3
"""The sandbox's benign busy host: a monitor scraping many ports, and the ports it scrapes.

  answer  in the guest namespace: listens on every port of a range, answers each connection
          with one line and closes it (as an exporter answers a scrape);
  scrape  in the internet namespace: from one source address, connects to every port of the
          range, reads the answer and closes, every --interval seconds for --seconds.

Every connection completes and is answered, so the router holds assured entries (TIME_WAIT for
two minutes after each scrape) to many destination ports of one host: what a port scan also
reaches, and what the panel must not call one. The reverse proxy and the NAT's users of the same
scenario are connflood.py's held connections (sandbox.sh busy-host). Bounded in ports and time;
only the standard library is used.
"""

import argparse
import asyncio
import sys
import time

HARD_MAX_PORTS = 200
HARD_MAX_SECONDS = 1_800
CONNECT_TIMEOUT_SECONDS = 1.0


def port_range(text: str) -> range:
    first, _, last = text.partition("-")
    ports = range(int(first), int(last or first) + 1)
    if not 1 <= len(ports) <= HARD_MAX_PORTS or ports[0] < 1 or ports[-1] > 65535:
        raise argparse.ArgumentTypeError(f"1..{HARD_MAX_PORTS} ports of 1..65535, e.g. 9100-9129")
    return ports


async def answer(bind: str, ports: range, seconds: float) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok\n")
        try:
            await writer.drain()
        finally:
            writer.close()

    servers = [await asyncio.start_server(reply, bind, port, reuse_address=True) for port in ports]
    await asyncio.sleep(seconds)
    for server in servers:
        server.close()


async def scrape_once(source: str, host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0)), CONNECT_TIMEOUT_SECONDS
        )
        await asyncio.wait_for(reader.read(64), CONNECT_TIMEOUT_SECONDS)
        writer.close()
        return True
    except (OSError, asyncio.TimeoutError):
        return False


async def scrape(source: str, host: str, ports: range, interval: float, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        results = await asyncio.gather(*(scrape_once(source, host, port) for port in ports))
        print(f"scraped {sum(results)} of {len(ports)} ports", file=sys.stderr, flush=True)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    answer_args = sub.add_parser("answer")
    answer_args.add_argument("--bind", required=True)
    scrape_args = sub.add_parser("scrape")
    scrape_args.add_argument("--source", required=True)
    scrape_args.add_argument("--to", required=True)
    scrape_args.add_argument("--interval", type=float, default=10.0)
    for mode in (answer_args, scrape_args):
        mode.add_argument("--ports", type=port_range, required=True)
        mode.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    if not 0 < args.seconds <= HARD_MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {HARD_MAX_SECONDS}]")
    if args.mode == "answer":
        asyncio.run(answer(args.bind, args.ports, args.seconds))
    else:
        if not 1 <= args.interval <= 600:
            parser.error("--interval must be 1..600")
        asyncio.run(scrape(args.source, args.to, args.ports, args.interval, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
