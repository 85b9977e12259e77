"""The pipe(8) helper that hands one re-queued recipient back to Postfix's policy check.

Postfix runs it (``pw-reroute`` in master.cf, one recipient per delivery, as an unprivileged
user) for mail that was moved off an IP: the message arrives on stdin, and the helper
submits it to the loopback smtpd on ``--port`` (127.0.0.1:10026), announcing the original
client with ``XCLIENT ADDR= HELO= LOGIN=`` so the routing agent sees the same request as on
the first pass (``policy_context=reroute``) and answers with the route the policy gives
now. Exit 0 only on 250 after DATA; 75 (EX_TEMPFAIL: Postfix keeps the message and tries
again) on any other answer or error, 5xx included (a 5xx here must never bounce mail).

Exactly once: after the 250 the helper writes ``--done DIR/<queue id>.<recipient hash>``;
a retry that finds the file exits 0 without submitting again (Postfix retries when the
helper's exit status was lost). Standard library only: it runs with no configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import smtplib
import sys
from pathlib import Path

EX_OK = 0
EX_TEMPFAIL = 75


def _xtext(value: str) -> str:
    """RFC 1891 xtext, as XCLIENT wants its values."""
    return "".join(c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}"
                   for c in value)


def marker(done: Path, queue_id: str, recipient: str) -> Path:
    digest = hashlib.sha256(recipient.lower().encode()).hexdigest()[:24]
    safe = "".join(c for c in queue_id if c.isalnum()) or "noid"
    return done / f"{safe}.{digest}"


def submit(args: argparse.Namespace, message: bytes) -> int:
    done = Path(args.done)
    mark = marker(done, args.queue_id, args.recipient)
    if mark.exists():
        return EX_OK  # submitted before; only the exit status was lost
    try:
        with smtplib.SMTP(args.host, args.port, local_hostname="reroute.localhost",
                          timeout=args.timeout) as smtp:
            smtp.ehlo()
            attrs = []
            if args.client_address:
                attrs.append(f"ADDR={_xtext(args.client_address)}")
            if args.client_helo:
                attrs.append(f"HELO={_xtext(args.client_helo)}")
            if args.sasl_username:
                attrs.append(f"LOGIN={_xtext(args.sasl_username)}")
            if attrs:
                code, _ = smtp.docmd("XCLIENT", " ".join(attrs))
                if code != 220:
                    return EX_TEMPFAIL
                smtp.ehlo_resp = None
                smtp.ehlo()
            code, _ = smtp.mail(args.sender)
            if code != 250:
                return EX_TEMPFAIL
            code, _ = smtp.rcpt(args.recipient)
            if code not in (250, 251):
                return EX_TEMPFAIL
            code, _ = smtp.data(message)
            if code != 250:
                return EX_TEMPFAIL
    except (OSError, smtplib.SMTPException):
        return EX_TEMPFAIL
    with contextlib.suppress(OSError):
        done.mkdir(parents=True, exist_ok=True)
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT, 0o644)
        os.fsync(fd)
        os.close(fd)
    return EX_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--done", required=True, help="Directory of submitted markers.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10026)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--sender", default="")
    parser.add_argument("--sasl-username", default="")
    parser.add_argument("--client-address", default="")
    parser.add_argument("--client-helo", default="")
    parser.add_argument("--queue-id", default="")
    parser.add_argument("--recipient", required=True)
    args = parser.parse_args(argv)
    return submit(args, sys.stdin.buffer.read())


if __name__ == "__main__":  # pragma: no cover - run by Postfix's pipe(8)
    raise SystemExit(main())
