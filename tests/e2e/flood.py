"""A hostile local peer for the S7 test: opens and holds idle and slow-loris policy connections.

Run as a script inside the lab's namespace (standard library only)::

    python flood.py --tcp 127.0.0.1:10040 --idle 2000 --loris 50 --hold 20 --out result.json

Opens ``--idle`` connections that never send anything and ``--loris`` that send the
start of a request and then one byte a second, holds them for ``--hold`` seconds
(re-opening none), and writes how many of each the server closed, and when.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import selectors
import socket
import time


def connect(args: argparse.Namespace) -> socket.socket:
    if args.unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(args.unix)
    else:
        host, _, port = args.tcp.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp")
    parser.add_argument("--unix")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--loris", type=int, default=50)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    selector = selectors.DefaultSelector()
    started = time.time()
    opened = {"idle": 0, "loris": 0}
    closed = {"idle": [], "loris": []}  # seconds after start of each close seen
    loris: list[socket.socket] = []
    for kind, count in (("idle", args.idle), ("loris", args.loris)):
        for _ in range(count):
            sock = connect(args)
            opened[kind] += 1
            if kind == "loris":
                sock.send(b"request=smtpd_access_policy\nprotocol_state=RCPT\n")
                loris.append(sock)
            selector.register(sock, selectors.EVENT_READ, kind)
    print("ready", flush=True)
    deadline = started + args.hold
    last_drip = time.time()
    while time.time() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            try:
                data = sock.recv(4096)  # type: ignore[union-attr]
            except (ConnectionError, OSError):
                data = b""
            if not data:
                closed[key.data].append(round(time.time() - started, 2))
                selector.unregister(sock)
                sock.close()  # type: ignore[union-attr]
        if time.time() - last_drip >= 1.0:
            last_drip = time.time()
            for sock in loris:
                if sock.fileno() >= 0:
                    with contextlib.suppress(OSError):
                        sock.send(b"x")
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"opened": opened, "closed": closed,
                   "open_at_end": len(selector.get_map())}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
