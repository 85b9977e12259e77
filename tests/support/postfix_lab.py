"""A real Postfix in a private network namespace, with a recording sink and ``poolwarden serve``.

Test helper (``shared/postfix-recipe.md`` §1 and §8). ``PostfixLab.start()``:

1. holds a new network + mount namespace (``unshare -n -m --propagation private``) with only
   ``lo`` up and a private ``/etc/hosts`` (and an empty ``/etc/resolv.conf``) bind-mounted, so
   the test recipient domains resolve to the sink and **no packet can leave the machine**;
2. writes a private Postfix instance (``postfix -c DIR``) from ``adapters.postfix_conf`` plus
   the lab settings: queue and data directories under the lab directory (data owned by
   ``postfix``, pitfall P1), ``maillog_file`` with ``maillog_file_prefixes`` (P2), smtpd on
   127.0.0.1:10025, ``chroot`` n everywhere, DNS and PTR lookups off (P9), no relayhost;
3. runs, each through ``nsenter -t PID -n -m``: the sink (this module's ``sink`` command: an
   SMTP server on 127.0.0.53:25 that records the peer address, local address, HELO, envelope
   and Message-ID of every accepted message as JSON lines, and answers ``reject*@`` with
   550 5.1.1 and ``tempfail*@`` with 451 4.2.0, digits before them ignored as smtp-source
   numbers its recipients; with ``sink_tls`` it offers STARTTLS with a self-signed
   certificate), ``poolwarden serve`` with its policy socket
   under the queue directory's ``private/`` (or TCP on 127.0.0.1), and ``postfix start``;
   the Postfix log is searched for ``fatal:``/``panic:`` after start (P3).

Mail is injected by this module's ``send`` command, also inside the namespace: an SMTP client
that re-sends ``4.7.1`` recipients at once in a new transaction (the split technique, recipe
§3.4) and, when asked, retries other 4xx answers like an MTA's queue would, logging every
reply with its time. ``stop()`` ends every process in the namespace and the namespace itself,
and removes the lab directory; use ``running_lab()`` so that happens when a test fails too.

Run ``python tests/support/postfix_lab.py sink|send --help`` for the two helpers (they need
only the standard library, so they run as a script inside the namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HELPER = str(Path(__file__).resolve())  # run as a script: the sink and send commands

SMTPD_HOST = "127.0.0.1"
SMTPD_PORT = 10025
SINK_HOST = "127.0.0.53"
SINK_PORT = 25
POLICY_SOCKET = "private/poolwarden"  # relative to the queue directory
POLICY_TCP = "127.0.0.1:10040"
SINK_DOMAINS = ("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "yahoo.com",
                "icloud.com", "smallbiz.example", "example.org", "corp.example")

# the stock services of Debian's master.cf, with chroot n; smtpd listens on the lab port
_MASTER_SERVICES = """\
{smtpd_host}:{smtpd_port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
  -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class LabError(RuntimeError):
    """The lab could not be set up, or something in it failed; the message says what."""


def lab_unavailable() -> str | None:
    """Why a Postfix lab cannot run here (a reason for ``pytest.skip``), or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, postfix -c)"
    for tool in ("postfix", "postconf", "postqueue", "postsuper", "unshare", "nsenter", "ip"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} is not installed (scripts/setup.sh installs postfix and iproute2)"
    return None


def _tool(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise LabError(f"{name} is not installed")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """preexec_fn: SIGKILL this child when the test process dies (kept across exec)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply the sender got: when, to what, and what."""

    t: float
    stage: str  # CONNECT, MAIL, RCPT, DATA, END-OF-DATA, ERROR
    rcpt: str | None
    code: int
    text: str

    @property
    def enhanced(self) -> str:
        match = re.match(r"\s*(\d\.\d{1,3}\.\d{1,3})", self.text)
        return match.group(1) if match else ""


@dataclass(slots=True)
class SendResult:
    """What happened to one message: which recipients Postfix accepted, which failed, and
    every reply on the way."""

    id: str
    message_id: str
    accepted: dict[str, float] = field(default_factory=dict)  # recipient -> time of 250
    failed: dict[str, tuple[int, str]] = field(default_factory=dict)  # recipient -> last reply
    replies: list[Reply] = field(default_factory=list)
    transactions: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SendResult:
        return cls(id=data["id"], message_id=data["message_id"],
                   accepted=dict(data["accepted"]),
                   failed={k: (int(v[0]), str(v[1])) for k, v in data["failed"].items()},
                   replies=[Reply(**r) for r in data["replies"]],
                   transactions=int(data["transactions"]))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "message_id": self.message_id, "accepted": self.accepted,
                "failed": self.failed, "transactions": self.transactions,
                "replies": [{"t": r.t, "stage": r.stage, "rcpt": r.rcpt, "code": r.code,
                             "text": r.text} for r in self.replies]}

    def codes(self, stage: str | None = None) -> list[int]:
        return [r.code for r in self.replies if stage is None or r.stage == stage]

    def rcpt_reply(self, rcpt: str) -> Reply | None:
        """The first RCPT reply for ``rcpt``."""
        return next((r for r in self.replies if r.stage == "RCPT" and r.rcpt == rcpt), None)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recipient of one message as the sink received it."""

    t: float
    peer: str  # the source address Postfix connected from: the egress IP
    local: str
    helo: str
    mail_from: str
    rcpt: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Job:
    """One message for the sender."""

    sender: str
    rcpts: tuple[str, ...]
    message_id: str = ""
    sasl: str | None = None  # via XCLIENT LOGIN= (the SASL login name smtpd reports)
    client_address: str | None = None  # via XCLIENT ADDR=
    id: str = ""
    subject: str = "poolwarden lab"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "sender": self.sender, "rcpts": list(self.rcpts),
                "message_id": self.message_id, "sasl": self.sasl,
                "client_address": self.client_address, "subject": self.subject}


def new_message_id(tag: str = "lab") -> str:
    return f"<{tag}.{uuid.uuid4().hex}@lab.test>"


# -- the sink (runs inside the namespace) ---------------------------------------------------


def _address(arg: str) -> str:
    match = re.search(r"<([^>]*)>", arg)
    if match:
        return match.group(1)
    return arg.split(":", 1)[-1].strip().split(" ")[0]


def _message_id(data: bytes) -> str:
    headers = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    match = re.search(r"(?im)^message-id:\s*(<[^>\r\n]*>)", headers)
    return match.group(1) if match else ""


def scripted_reply(script: Path | None, peer: str, rcpt: str) -> str | None:
    """The reply a sink script gives to RCPT ``rcpt`` from source address ``peer``, if any.

    The script (re-read at every RCPT, so a test can change it while mail flows) is a JSON
    list of ``{"peer": "127.0.0.21" or "*", "domain": "gmail.com" or "*", "reply": "421
    4.7.28 ..."}``; the first entry that matches answers. Absent or empty: no script."""
    if script is None:
        return None
    try:
        rules = json.loads(script.read_text(encoding="utf-8") or "[]")
    except (OSError, ValueError):
        return None
    domain = rcpt.rpartition("@")[2].lower()
    for rule in rules:
        if rule.get("peer", "*") in ("*", peer) and rule.get("domain", "*") in ("*", domain):
            return str(rule["reply"])
    return None


async def _sink_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        out: Any, script: Path | None = None,
                        tls: ssl.SSLContext | None = None) -> None:
    peer = writer.get_extra_info("peername") or ("", 0)
    local = writer.get_extra_info("sockname") or ("", 0)

    async def reply(text: str) -> None:
        writer.write(text.encode() + b"\r\n")
        await writer.drain()

    helo = ""
    secure = False
    mail_from: str | None = None
    rcpts: list[str] = []
    try:
        await reply("220 sink.lab.test ESMTP poolwarden lab sink")
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            arg = command[len(verb):].strip()
            if verb in ("EHLO", "HELO"):
                helo, mail_from, rcpts = arg, None, []
                starttls = "250-STARTTLS\r\n" if tls is not None and not secure else ""
                await reply(f"250-sink.lab.test\r\n{starttls}250-8BITMIME\r\n250 SIZE 52428800"
                            if verb == "EHLO" else "250 sink.lab.test")
            elif verb == "STARTTLS" and tls is not None and not secure:
                await reply("220 2.0.0 Ready to start TLS")
                await writer.start_tls(tls)
                secure, helo, mail_from, rcpts = True, "", None, []  # RFC 3207: forget all
            elif verb == "MAIL":
                mail_from, rcpts = _address(arg), []
                await reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                if mail_from is None:
                    await reply("503 5.5.1 Error: need MAIL command")
                    continue
                rcpt = _address(arg)
                # smtp-source's -r and -N put digits before the local part (2tempfail@)
                local_part = rcpt.rpartition("@")[0].lower().lstrip("0123456789")
                scripted = scripted_reply(script, peer[0], rcpt)
                if scripted is not None:  # answers by source address (reaction-rule tests)
                    await reply(scripted)
                elif local_part.startswith("reject"):
                    await reply(f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
                elif local_part.startswith("tempfail"):
                    await reply(f"451 4.2.0 <{rcpt}>: mailbox busy, try later")
                else:
                    rcpts.append(rcpt)
                    await reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    await reply("503 5.5.1 Error: need RCPT command")
                    continue
                await reply("354 End data with <CR><LF>.<CR><LF>")
                chunks: list[bytes] = []
                while True:
                    data_line = await reader.readline()
                    if not data_line:
                        return
                    if data_line in (b".\r\n", b".\n"):
                        break
                    chunks.append(data_line[1:] if data_line.startswith(b".") else data_line)
                body = b"".join(chunks)
                record = {"t": time.time(), "peer": peer[0], "peer_port": peer[1],
                          "local": local[0], "local_port": local[1], "helo": helo,
                          "mail_from": mail_from, "rcpt_tos": rcpts,
                          "message_id": _message_id(body), "size": len(body)}
                out.write(json.dumps(record) + "\n")
                out.flush()  # recorded before the 250: Postfix retries anything not answered
                mail_from, rcpts = None, []
                await reply("250 2.0.0 Ok: queued by sink")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                await reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                await reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await reply("221 2.0.0 Bye")
                return
            elif verb == "VRFY":
                await reply("252 2.0.0 Send some mail, I'll try my best")
            else:
                await reply("502 5.5.2 Error: command not recognized")
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, ssl.SSLError):
        return
    finally:
        writer.close()


async def run_sink(listens: Sequence[tuple[str, int]], log_path: Path,
                   script: Path | None = None,
                   tls_files: tuple[Path, Path] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, appending one JSON line per accepted message. With
    ``tls_files`` (certificate, key) STARTTLS is offered, so Postfix logs its TLS lines."""
    tls = None
    if tls_files is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
    with log_path.open("a", encoding="utf-8") as out:
        servers = [await asyncio.start_server(
            lambda r, w: _sink_session(r, w, out, script, tls), host=host, port=port,
            reuse_address=True, limit=1 << 20) for host, port in listens]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for server in servers:
            server.close()


# -- the sender (runs inside the namespace) -------------------------------------------------


def _message_bytes(job: Job, message_id: str) -> bytes:
    headers = [f"From: <{job.sender}>", f"To: {', '.join(f'<{r}>' for r in job.rcpts)}",
               f"Subject: {job.subject}", f"Message-ID: {message_id}",
               "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
               "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii"]
    return ("\r\n".join(headers) + "\r\n\r\nHello from the poolwarden lab.\r\n").encode()


class _Client:
    """One SMTP connection, reopened when it breaks."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.smtp: smtplib.SMTP | None = None

    def open(self, result: SendResult, job: Job) -> smtplib.SMTP | None:
        xclient = job.sasl is not None or job.client_address is not None
        if self.smtp is not None and not xclient:
            return self.smtp
        self.close()
        try:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname="client.lab.test",
                                timeout=self.timeout)
            smtp.ehlo()
            if xclient:
                attrs = []
                if job.sasl is not None:
                    attrs.append(f"LOGIN={job.sasl}")
                if job.client_address is not None:
                    attrs.append(f"ADDR={job.client_address}")
                code, text = smtp.docmd("XCLIENT", " ".join(attrs))
                if code != 220:
                    result.replies.append(Reply(time.time(), "XCLIENT", None, code,
                                                text.decode("utf-8", "replace")))
                    smtp.close()
                    return None
                smtp.ehlo_resp = None
                smtp.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            result.replies.append(Reply(time.time(), "CONNECT", None, 0, repr(exc)))
            return None
        self.smtp = None if xclient else smtp
        return smtp

    def done(self, smtp: smtplib.SMTP) -> None:
        if smtp is not self.smtp:
            with contextlib.suppress(Exception):
                smtp.quit()

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(Exception):
                self.smtp.quit()
            with contextlib.suppress(Exception):
                self.smtp.close()
        self.smtp = None


def send_job(client: _Client, job: Job, *, retry_for: float = 0.0,
             retry_delay: float = 0.5) -> SendResult:
    """Send one message: every recipient in as few transactions as the agent allows.

    ``450/451 4.7.1`` recipients (another route) are re-sent at once in a new transaction;
    other 4xx recipients are retried after ``retry_delay`` until ``retry_for`` seconds have
    passed (0: no retry), then left in ``failed``; 5xx recipients go to ``failed`` at once."""
    message_id = job.message_id or new_message_id()
    result = SendResult(id=job.id, message_id=message_id)
    deadline = time.time() + retry_for
    pending = list(job.rcpts)
    data = _message_bytes(job, message_id)
    while pending:
        smtp = client.open(result, job)
        if smtp is None:
            if time.time() >= deadline:
                for rcpt in pending:
                    result.failed[rcpt] = (0, "cannot connect")
                break
            time.sleep(retry_delay)
            continue
        split: list[str] = []
        temp: list[str] = []
        try:
            result.transactions += 1
            code, text = smtp.mail(job.sender)
            result.replies.append(Reply(time.time(), "MAIL", None, code, text.decode()))
            if code >= 400:
                temp = list(pending) if code < 500 else []
                if code >= 500:
                    for rcpt in pending:
                        result.failed[rcpt] = (code, text.decode())
                smtp.rset()
            else:
                accepted: list[str] = []
                for rcpt in pending:
                    code, text = smtp.rcpt(rcpt)
                    reply = Reply(time.time(), "RCPT", rcpt, code, text.decode())
                    result.replies.append(reply)
                    if code < 300:
                        accepted.append(rcpt)
                    elif code >= 500:
                        result.failed[rcpt] = (code, reply.text)
                    elif reply.enhanced == "4.7.1":
                        split.append(rcpt)
                    else:
                        temp.append(rcpt)
                if accepted:
                    answer: bytes | str
                    try:
                        code, answer = smtp.data(data)
                        stage = "END-OF-DATA"
                    except smtplib.SMTPDataError as exc:
                        code, answer, stage = exc.smtp_code, exc.smtp_error, "DATA"
                    reply = Reply(time.time(), stage, None, code,
                                  answer.decode() if isinstance(answer, bytes) else answer)
                    result.replies.append(reply)
                    if code < 300:
                        for rcpt in accepted:
                            result.accepted[rcpt] = reply.t
                    elif code >= 500:
                        for rcpt in accepted:
                            result.failed[rcpt] = (code, reply.text)
                    else:
                        temp += accepted
                    if code >= 300:
                        # Postfix 3.7 keeps the transaction open after a reject at
                        # END-OF-MESSAGE: the next MAIL would get "503 5.5.1 nested MAIL"
                        smtp.rset()
                else:
                    smtp.rset()
        except (OSError, smtplib.SMTPException) as exc:
            result.replies.append(Reply(time.time(), "ERROR", None, 0, repr(exc)))
            client.close()
            temp = [r for r in pending if r not in result.accepted and r not in result.failed
                    and r not in split]
        else:
            client.done(smtp)
        if temp and time.time() >= deadline:
            for rcpt in temp:
                last = next((r for r in reversed(result.replies)
                             if r.rcpt in (rcpt, None) and r.code), None)
                result.failed[rcpt] = (last.code, last.text) if last else (0, "no reply")
            temp = []
        if temp and not split:
            time.sleep(retry_delay)
        pending = split + temp
    for rcpt in result.accepted:
        result.failed.pop(rcpt, None)
    return result


def run_sender(jobs: Sequence[Job], out_path: Path, *, host: str = SMTPD_HOST,
               port: int = SMTPD_PORT, concurrency: int = 1, retry_for: float = 0.0,
               retry_delay: float = 0.5, timeout: float = 60.0) -> None:
    """Send ``jobs`` over ``concurrency`` connections; one JSON result line per job."""
    queue = list(reversed(jobs))
    lock = threading.Lock()
    with out_path.open("a", encoding="utf-8") as out:
        def worker() -> None:
            client = _Client(host, port, timeout)
            try:
                while True:
                    with lock:
                        if not queue:
                            return
                        job = queue.pop()
                    result = send_job(client, job, retry_for=retry_for,
                                      retry_delay=retry_delay)
                    with lock:
                        out.write(json.dumps(result.to_json()) + "\n")
                        out.flush()
            finally:
                client.close()

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(max(1, min(concurrency, len(jobs))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


# -- the lab ----------------------------------------------------------------------------


class SendBatch:
    """A sender running in the background (``PostfixLab.start_sending``)."""

    def __init__(self, process: subprocess.Popen[bytes], out_path: Path, count: int) -> None:
        self.process = process
        self.out_path = out_path
        self.count = count

    def results(self) -> list[SendResult]:
        if not self.out_path.exists():
            return []
        lines = self.out_path.read_text(encoding="utf-8").splitlines()
        return [SendResult.from_json(json.loads(line)) for line in lines if line.strip()]

    def wait(self, timeout: float) -> list[SendResult]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait()
            raise LabError(f"sender still running after {timeout:.0f} s: "
                           f"{len(self.results())}/{self.count} messages done") from exc
        if self.process.returncode != 0:
            raise LabError(f"sender exited with status {self.process.returncode}")
        return self.results()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class PostfixLab:
    """One private Postfix, a sink and ``poolwarden serve``, in their own network namespace."""

    def __init__(self, config: Path, *, policy: str = "unix",
                 sink_domains: Iterable[str] = SINK_DOMAINS,
                 extra_main_cf: str = "", extra_master_cf: str = "",
                 keep: bool | None = None,
                 log_level: str = "INFO", sink_tls: bool = False,
                 sender_login: bool = False) -> None:
        if policy not in ("unix", "tcp"):
            raise ValueError("policy is unix or tcp")
        self.source_config = Path(config)
        self.policy_kind = policy
        self.sink_domains = tuple(sink_domains)
        self.extra_main_cf = extra_main_cf
        self.extra_master_cf = extra_master_cf  # services added after the generated ones
        self.sink_tls = sink_tls  # the sink offers STARTTLS (a self-signed certificate)
        # the generator's sender login restrictions (tenant_lookup): off by default, as most
        # tests inject unauthenticated mail in the tenants' domains like their relays would
        self.sender_login = sender_login
        self.keep = bool(os.environ.get("POOLWARDEN_LAB_KEEP")) if keep is None else keep
        self.log_level = log_level
        self.dir = Path(tempfile.mkdtemp(prefix="pw-postfix-lab-", dir="/tmp"))
        os.chmod(self.dir, 0o755)  # Postfix's daemons run as postfix
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.data = self.dir / "data"
        self.logdir = self.dir / "log"
        self.maillog = self.logdir / "postfix.log"
        self.pw = self.dir / "pw"
        self.config = self.pw / "poolwarden.toml"
        self.agent_log = self.logdir / "serve.log"
        self.sink_log = self.dir / "sink.jsonl"
        self.sink_script = self.dir / "sink-script.json"  # see script_sink()
        self.holder: subprocess.Popen[bytes] | None = None
        self.sink: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self._batches: list[SendBatch] = []
        self._netns: str | None = None
        self._runs = 0

    # -- addresses --------------------------------------------------------------------

    @property
    def policy_listen(self) -> str:
        """The ``--policy`` argument of ``poolwarden serve``."""
        if self.policy_kind == "unix":
            return f"unix:{self.spool / POLICY_SOCKET}"
        return f"tcp:{POLICY_TCP}"

    @property
    def policy_endpoint(self) -> str:
        """The same endpoint in Postfix's syntax (relative to the queue directory)."""
        return f"unix:{POLICY_SOCKET}" if self.policy_kind == "unix" else f"inet:{POLICY_TCP}"

    # -- processes in the namespace ------------------------------------------------------

    def ns_command(self, *argv: str) -> list[str]:
        """``argv`` run through nsenter inside the lab's namespaces."""
        if self.holder is None:
            raise LabError("the namespace is not up")
        return [_tool("nsenter"), "-t", str(self.holder.pid), "-n", "-m", "--", *argv]

    def run_in_ns(self, *argv: str, check: bool = True,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.ns_command(*argv), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stdout}{done.stderr}")
        return done

    def _spawn(self, argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(self.ns_command(*argv), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def listening(self, host: str, port: int) -> bool:
        """Whether something in the namespace listens on TCP host:port (from /proc)."""
        if self.holder is None:
            return False
        want = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
        try:
            table = Path(f"/proc/{self.holder.pid}/net/tcp").read_text()
        except OSError:
            return False
        return any(parts[1] == want and parts[3] == "0A"
                   for parts in (line.split() for line in table.splitlines()[1:]))

    # -- setup ----------------------------------------------------------------------------

    def start(self) -> PostfixLab:
        reason = lab_unavailable()
        if reason is not None:
            raise LabError(reason)
        try:
            self._make_dirs()
            self._start_namespace()
            self._write_postfix_config()
            self.start_sink()
            self.start_agent()
            self._start_postfix()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_dirs(self) -> None:
        for path in (self.etc, self.logdir, self.pw, self.spool):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o755)
        shutil.copy(self.source_config, self.config)
        hosts = ["127.0.0.1 localhost mta.lab.test client.lab.test",
                 f"{SINK_HOST} sink.lab.test " + " ".join(self._domains())]
        (self.dir / "hosts").write_text("\n".join(hosts) + "\n")
        (self.dir / "resolv.conf").write_text("# poolwarden lab: no DNS\n")

    def _domains(self) -> list[str]:
        """Recipient domains plus every tenant domain (bounces go to tenants' senders)."""
        from poolwarden.config.load import load_config

        inventory = load_config(self.config).inventory
        domains = list(self.sink_domains)
        for tenant in inventory.tenants:
            domains += [d for d in tenant.domains if d not in domains]
        return domains

    def _start_namespace(self) -> None:
        script = (f"mount --bind {self.dir}/hosts /etc/hosts && "
                  f"{{ mount --bind {self.dir}/resolv.conf /etc/resolv.conf 2>/dev/null; "
                  "true; } && ip link set lo up && exec sleep infinity")
        self.holder = subprocess.Popen(
            [_tool("unshare"), "-n", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.holder.poll() is not None:
                raise LabError(f"unshare exited with status {self.holder.returncode}")
            with contextlib.suppress(OSError):
                netns = os.readlink(f"/proc/{self.holder.pid}/ns/net")
                cmdline = Path(f"/proc/{self.holder.pid}/cmdline").read_bytes()
                if netns != ours and cmdline.startswith(b"sleep"):
                    self._netns = netns
                    break
            time.sleep(0.02)
        else:
            raise LabError("the network namespace did not come up")
        links = self.run_in_ns(_tool("ip"), "-o", "link").stdout.splitlines()
        if len(links) != 1 or ": lo:" not in links[0] or "UP" not in links[0]:
            raise LabError(f"the lab namespace must have only lo, up; it has: {links}")
        hosts = self.run_in_ns("cat", "/etc/hosts").stdout
        if SINK_HOST not in hosts:
            raise LabError("the private /etc/hosts is not mounted in the namespace")

    def main_cf_text(self) -> str:
        from poolwarden.adapters.postfix_conf import main_cf
        from poolwarden.config.load import load_config

        inventory = load_config(self.config).inventory
        # tenants found by client address relay through us like hosting servers (XCLIENT ADDR)
        clients = "".join(f", {a}" for t in inventory.tenants for a in t.client_addresses)
        lab = f"""\
# --- lab settings (shared/postfix-recipe.md) ---
compatibility_level = 3.6
queue_directory = {self.spool}
data_directory = {self.data}
maillog_file = {self.maillog}
maillog_file_prefixes = /var, /dev/stdout, {self.logdir}
myhostname = mta.lab.test
mydestination =
local_transport = error:5.1.1 no local delivery in the lab
alias_maps =
alias_database =
biff = no
inet_interfaces = {SMTPD_HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8{clients}
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_authorized_xclient_hosts = 127.0.0.0/8
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
"""
        # a lab setting that extra_main_cf sets again is left out here: Postfix would warn
        # "overriding earlier entry" at every daemon start
        overridden = set(re.findall(r"(?m)^\s*([a-z0-9_]+)\s*=", self.extra_main_cf))
        lab = "".join(line for line in lab.splitlines(keepends=True)
                      if line.partition("=")[0].strip() not in overridden)
        lookup = load_config(self.config).settings.routing.tenant_lookup
        if self.sender_login:  # XCLIENT LOGIN= and the mismatch check both need SASL on
            lab += "smtpd_sasl_auth_enable = yes\n"
        return (lab + "\n" + main_cf(inventory, policy_endpoint=self.policy_endpoint,
                                     tenant_lookup=lookup if self.sender_login else ())
                + self.extra_main_cf)

    def master_cf_text(self) -> str:
        from poolwarden.adapters.postfix_conf import master_cf
        from poolwarden.config.load import load_config

        inventory = load_config(self.config).inventory
        return (_MASTER_SERVICES.format(smtpd_host=SMTPD_HOST, smtpd_port=SMTPD_PORT)
                + "\n" + master_cf(inventory) + self.extra_master_cf)

    def _write_postfix_config(self) -> None:
        (self.etc / "main.cf").write_text(self.main_cf_text())
        (self.etc / "master.cf").write_text(self.master_cf_text())
        self.data.mkdir(exist_ok=True)
        shutil.chown(self.data, "postfix", "postfix")  # P1: master.lock lives here
        self.run_in_ns(_tool("postfix"), "-c", str(self.etc), "check")
        shutil.chown(self.data, "postfix", "postfix")

    def _start_postfix(self) -> None:
        self.run_in_ns(_tool("postfix"), "-c", str(self.etc), "start")
        self.wait_until(lambda: self.listening(SMTPD_HOST, SMTPD_PORT), 15,
                        "Postfix's smtpd to listen on 127.0.0.1:10025")
        # smtpd reads its restriction lists when it starts, i.e. at the first connection:
        # make one, so a malformed main.cf shows up now as fatal:, not as hanging clients
        probe = ("import smtplib\n"
                 f"s = smtplib.SMTP({SMTPD_HOST!r}, {SMTPD_PORT}, timeout=5)\n"
                 "s.ehlo('probe.lab.test'); s.quit()\n")
        self.run_in_ns(sys.executable, "-c", probe, check=False, timeout=30)
        time.sleep(0.2)
        self.assert_no_fatal()

    def assert_no_fatal(self) -> None:
        """Fail loudly on fatal:/panic: in the Postfix log (a bad main.cf keeps smtpd
        dying while master throttles and clients hang: pitfall P3)."""
        bad = [line for line in self.log_text().splitlines()
               if re.search(r"\b(fatal|panic):", line)]
        if bad:
            raise LabError("Postfix logged fatal errors:\n" + "\n".join(bad[-20:]))

    def _sink_certificate(self) -> list[str]:
        """``--tls-cert``/``--tls-key`` of a self-signed certificate made for the sink."""
        cert, key = self.dir / "sink-cert.pem", self.dir / "sink-key.pem"
        if not cert.exists():
            subprocess.run([_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", str(key), "-out", str(cert), "-days", "2",
                            "-subj", "/CN=sink.lab.test"], capture_output=True, check=True,
                           timeout=60)
        return ["--tls-cert", str(cert), "--tls-key", str(key)]

    def start_sink(self) -> None:
        tls = self._sink_certificate() if self.sink_tls else []
        self.sink = self._spawn([sys.executable, _HELPER, "sink",
                                 "--listen", f"{SINK_HOST}:{SINK_PORT}",
                                 "--log", str(self.sink_log),
                                 "--script", str(self.sink_script), *tls],
                                self.logdir / "sink.log")
        self.wait_until(lambda: self.listening(SINK_HOST, SINK_PORT), 15,
                        "the sink to listen", process=self.sink)

    def agent_argv(self) -> list[str]:
        """The ``poolwarden serve`` command (the same one at every restart)."""
        return [sys.executable, "-c", "from poolwarden.main import app; app()", "serve",
                "--config", str(self.config), "--policy", self.policy_listen,
                # the agent starts before Postfix, whose log a test may have it follow
                "--wait-for-log", "--log-level", self.log_level]

    def script_sink(self, rules: Sequence[dict[str, str]]) -> None:
        """Make the sink answer RCPT by source address and recipient domain from now on
        (``scripted_reply``), e.g. ``[{"peer": "127.0.0.21", "domain": "gmail.com",
        "reply": "421 4.7.28 ..."}]``; ``[]`` goes back to answering by address only."""
        tmp = self.sink_script.with_suffix(".tmp")
        tmp.write_text(json.dumps(list(rules)), encoding="utf-8")
        tmp.replace(self.sink_script)  # whole or not at all: the sink re-reads it per RCPT

    def start_agent(self, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start ``poolwarden serve`` in the namespace; with ``wait``, until it answers."""
        if self.policy_kind == "unix":
            (self.spool / "private").mkdir(parents=True, exist_ok=True)
        self._runs += 1
        with self.agent_log.open("a") as log:
            log.write(f"===== lab: agent start #{self._runs} at {time.time():.3f}\n")
        self.agent = self._spawn(self.agent_argv(), self.agent_log)
        if wait:
            self.wait_agent_ready()
        return self.agent

    def agent_answers(self) -> bool:
        """Whether the agent answers a policy request right now (from outside the
        namespace for a unix socket, which is a filesystem path)."""
        request = (b"request=smtpd_access_policy\nprotocol_state=CONNECT\n"
                   b"instance=lab.probe\n\n")
        if self.policy_kind == "tcp":  # the snapshot is built before the server listens
            host, _, port = POLICY_TCP.partition(":")
            return self.listening(host, int(port))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.spool / POLICY_SOCKET))
                sock.sendall(request)
                return sock.recv(256).startswith(b"action=")
        except OSError:
            return False

    def wait_agent_ready(self, timeout: float = 20) -> float:
        """Wait until the agent answers; returns the time it first did."""
        self.wait_until(self.agent_answers, timeout, "poolwarden serve to answer",
                        process=self.agent)
        return time.time()

    def stop_agent(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        agent = self.agent
        if agent is None or agent.poll() is not None:
            return
        agent.send_signal(sig)
        try:
            agent.wait(timeout)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()

    def kill_agent(self) -> float:
        """kill -9 the agent; returns when."""
        if self.agent is None:
            raise LabError("no agent running")
        self.agent.kill()
        when = time.time()
        self.agent.wait()
        return when

    def signal_agent(self, sig: int) -> float:
        if self.agent is None:
            raise LabError("no agent running")
        self.agent.send_signal(sig)
        return time.time()

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str,
                   process: subprocess.Popen[bytes] | None = None,
                   interval: float = 0.05) -> None:
        deadline = time.time() + timeout
        while not predicate():
            if process is not None and process.poll() is not None:
                raise LabError(f"waiting for {what}: the process exited with status "
                               f"{process.returncode}\n{self.tail()}")
            if time.time() >= deadline:
                raise LabError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                               f"{self.tail()}")
            time.sleep(interval)

    # -- mail -----------------------------------------------------------------------------

    def _sender_argv(self, jobs_path: Path, out_path: Path, concurrency: int,
                     retry_for: float, retry_delay: float) -> list[str]:
        return [sys.executable, _HELPER, "send",
                "--jobs", str(jobs_path), "--out", str(out_path),
                "--concurrency", str(concurrency), "--retry-for", str(retry_for),
                "--retry-delay", str(retry_delay)]

    def _write_jobs(self, jobs: Sequence[Job]) -> tuple[Path, Path]:
        batch = uuid.uuid4().hex[:8]
        jobs_path = self.dir / f"jobs-{batch}.jsonl"
        out_path = self.dir / f"results-{batch}.jsonl"
        numbered = [job if job.id else dataclasses.replace(job, id=str(i))
                    for i, job in enumerate(jobs)]
        jobs_path.write_text("".join(json.dumps(j.to_json()) + "\n" for j in numbered))
        return jobs_path, out_path

    def start_sending(self, jobs: Sequence[Job], *, concurrency: int = 4,
                      retry_for: float = 0.0, retry_delay: float = 0.5) -> SendBatch:
        """Send ``jobs`` in the background (see ``send_job`` for the retry rules)."""
        jobs_path, out_path = self._write_jobs(jobs)
        process = self._spawn(self._sender_argv(jobs_path, out_path, concurrency, retry_for,
                                                retry_delay), self.logdir / "sender.log")
        batch = SendBatch(process, out_path, len(jobs))
        self._batches.append(batch)
        return batch

    def send_many(self, jobs: Sequence[Job], *, concurrency: int = 4, retry_for: float = 0.0,
                  retry_delay: float = 0.5, timeout: float = 120) -> list[SendResult]:
        results = self.start_sending(jobs, concurrency=concurrency, retry_for=retry_for,
                                     retry_delay=retry_delay).wait(timeout)
        by_id = {r.id: r for r in results}
        return [by_id[str(i)] if not job.id else by_id[job.id] for i, job in enumerate(jobs)]

    def send(self, sender: str, rcpts: Sequence[str], *, sasl: str | None = None,
             client_address: str | None = None, message_id: str | None = None,
             retry_for: float = 0.0) -> SendResult:
        """Send one message from inside the namespace; 4.7.1 recipients are re-sent at once
        in a new transaction."""
        job = Job(sender=sender, rcpts=tuple(rcpts), message_id=message_id or new_message_id(),
                  sasl=sasl, client_address=client_address)
        return self.send_many([job], concurrency=1, retry_for=retry_for)[0]

    # -- observation ------------------------------------------------------------------------

    def sink_records(self) -> list[dict[str, Any]]:
        if not self.sink_log.exists():
            return []
        return [json.loads(line) for line in
                self.sink_log.read_text(encoding="utf-8").splitlines() if line.strip()]

    def deliveries(self, message_ids: Iterable[str] | None = None) -> list[Delivery]:
        """Every recipient the sink accepted, optionally of some Message-IDs only."""
        wanted = set(message_ids) if message_ids is not None else None
        out = []
        for record in self.sink_records():
            if wanted is not None and record["message_id"] not in wanted:
                continue
            for rcpt in record["rcpt_tos"]:
                out.append(Delivery(record["t"], record["peer"], record["local"],
                                    record["helo"], record["mail_from"], rcpt,
                                    record["message_id"]))
        return out

    def wait_delivered(self, count: int, timeout: float = 30,
                       message_ids: Iterable[str] | None = None) -> list[Delivery]:
        """Wait until the sink has ``count`` recipient deliveries (of ``message_ids``)."""
        ids = set(message_ids) if message_ids is not None else None
        found: list[Delivery] = []

        def enough() -> bool:
            nonlocal found
            found = self.deliveries(ids)
            return len(found) >= count

        try:
            self.wait_until(enough, timeout, f"{count} deliveries at the sink", interval=0.1)
        except LabError as exc:
            raise LabError(f"{len(found)} of {count} deliveries after {timeout:.0f} s; "
                           f"queue: {self.postqueue_json()}\n{self.tail()}") from exc
        return found

    def postqueue_json(self) -> list[dict[str, Any]]:
        """``postqueue -j``: one object per queued message (``queue_name``: active,
        deferred, hold, incoming, maildrop)."""
        done = subprocess.run([_tool("postqueue"), "-c", str(self.etc), "-j"],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise LabError(f"postqueue -j failed: {done.stderr}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def log_text(self) -> str:
        try:
            return self.maillog.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def agent_log_text(self) -> str:
        try:
            return self.agent_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def snapshot_versions(self) -> list[int]:
        """Snapshot versions the current agent logged, in order."""
        text = self.agent_log_text().rsplit("===== lab: agent start", 1)[-1]
        return [int(v) for v in re.findall(r"snapshot v(\d+) ", text)]

    def wait_snapshot_after(self, version: int, timeout: float = 10) -> int:
        """Wait for the agent to log a snapshot newer than ``version``; returns it."""
        self.wait_until(lambda: max(self.snapshot_versions() or [0]) > version, timeout,
                        f"a snapshot newer than v{version}", process=self.agent)
        return max(self.snapshot_versions())

    def routes(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """What the routing agent should decide now for each (sender, recipient): the
        ``Decision`` of ``decide()`` on a snapshot built from the lab's store."""
        from poolwarden.adapters.sqlstore import open_store
        from poolwarden.config.load import load_config
        from poolwarden.core.policy import RouteRequest
        from poolwarden.services.reputation.engine import Engine

        config = load_config(self.config)
        store = open_store(config.store_url)
        try:
            now = time.time()
            engine = Engine(config, store, now=now)
            return {(sender, rcpt): engine.route(RouteRequest(recipient=rcpt, sender=sender),
                                                 now)
                    for sender, rcpt in pairs}
        finally:
            store.close()

    def tenant_traffic(self, count: int, *, multi_every: int = 5,
                       tag: str = "traffic") -> list[Job]:
        """``count`` messages spread over every tenant of the configuration (sender domain =
        the tenant's first domain) and over several recipient domains; every
        ``multi_every``-th message has two recipients (a major provider and another)."""
        from poolwarden.config.load import load_config

        tenants = [t for t in load_config(self.config).inventory.tenants if t.domains]
        domains = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "smallbiz.example",
                   "example.org")
        jobs = []
        for i in range(count):
            tenant = tenants[i % len(tenants)]
            rcpts: tuple[str, ...] = (f"u{i}@{domains[i % len(domains)]}",)
            if multi_every and i % multi_every == multi_every - 1:
                rcpts = (f"u{i}@gmail.com", f"v{i}@smallbiz.example")
            jobs.append(Job(sender=f"m{i}@{tenant.domains[0]}", rcpts=rcpts,
                            message_id=new_message_id(f"{tag}-{i}"), id=str(i)))
        return jobs

    def check_routed_once(self, jobs: Sequence[Job], results: Sequence[SendResult], *,
                          timeout: float = 60) -> list[str]:
        """Wait for every accepted recipient at the sink, then list every way the traffic
        broke exactly-once routing: a recipient not accepted, missing or delivered twice at
        the sink, or arriving from an address outside the pool its route names (and, for
        one-recipient messages, from another IP than the agent's decision)."""
        from poolwarden.config.load import load_config

        problems: list[str] = []
        senders = {job.message_id: job for job in jobs}
        accepted = sum(len(r.accepted) for r in results)
        for result in results:
            job = senders[result.message_id]
            missing = set(job.rcpts) - set(result.accepted)
            if missing:
                problems.append(f"{result.message_id}: never accepted {sorted(missing)}: "
                                f"{result.failed}")
        ids = list(senders)
        with contextlib.suppress(LabError):
            self.wait_delivered(accepted, timeout=timeout, message_ids=ids)
        time.sleep(0.5)  # duplicates would land right behind
        deliveries = self.deliveries(ids)
        seen: dict[tuple[str, str], list[Delivery]] = {}
        for d in deliveries:
            seen.setdefault((d.message_id, d.rcpt), []).append(d)
        inventory = load_config(self.config).inventory
        pools = {p.name: set(p.ips) for p in inventory.pools}
        pools.update({f"dedicated:{t.name}": set(t.dedicated_ips) for t in inventory.tenants})
        decisions = self.routes([(job.sender, rcpt) for job in jobs for rcpt in job.rcpts])
        for job in jobs:
            for rcpt in job.rcpts:
                got = seen.get((job.message_id, rcpt), [])
                if len(got) != 1:
                    problems.append(f"{job.message_id} {rcpt}: delivered {len(got)} times")
                    continue
                decision = decisions[(job.sender, rcpt)]
                allowed = pools.get(decision.pool or "", set())
                if got[0].peer not in allowed:
                    problems.append(f"{job.message_id} {rcpt}: from {got[0].peer}, not in "
                                    f"{decision.pool} {sorted(allowed)}")
                elif len(job.rcpts) == 1 and got[0].peer != decision.ip:
                    problems.append(f"{job.message_id} {rcpt}: from {got[0].peer}, the agent "
                                    f"routes it to {decision.ip}")
        return problems

    def helo_of(self, ip: str) -> str:
        from poolwarden.config.load import load_config

        return next(e.helo for e in load_config(self.config).inventory.ips if e.address == ip)

    def poolwarden(self, *args: str, check: bool = True,
                   timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the poolwarden CLI (outside the namespace: it only needs files and the
        Postfix commands' filesystem sockets)."""
        argv = [sys.executable, "-c", "from poolwarden.main import app; app()", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, env={**os.environ, "COLUMNS": "200"})
        if check and done.returncode != 0:
            raise LabError(f"poolwarden {' '.join(args)} exited {done.returncode}:\n"
                           f"{done.stdout}{done.stderr}")
        return done

    def tail(self, lines: int = 30) -> str:
        parts = []
        for name, text in (("postfix log", self.log_text()),
                           ("agent log", self.agent_log_text())):
            parts.append(f"--- {name} (last {lines} lines) ---\n"
                         + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    # -- teardown ----------------------------------------------------------------------------

    def _pids_in_namespace(self) -> list[int]:
        if self._netns is None:
            return []
        holder = self.holder.pid if self.holder is not None else -1
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in (holder, os.getpid()):
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/net") == self._netns:
                    pids.append(int(entry))
        return pids

    def stop(self) -> None:
        """End every process of the lab and the namespace; remove the lab directory."""
        for batch in self._batches:
            batch.kill()
        self.stop_agent()
        if self.holder is not None and self.holder.poll() is None and self.etc.exists():
            with contextlib.suppress(Exception):
                self.run_in_ns(_tool("postfix"), "-c", str(self.etc), "stop", check=False,
                               timeout=20)
        for process in (self.sink,):
            if process is not None and process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
        deadline = time.time() + 5
        while self._pids_in_namespace() and time.time() < deadline:
            time.sleep(0.1)
        for pid in self._pids_in_namespace():  # only processes started inside our namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in (self.sink, self.agent, self.holder):
            if process is not None and process.poll() is None:
                process.kill()
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
        self.holder = None
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_lab(config: Path, **options: Any) -> Iterator[PostfixLab]:
    """A started lab, stopped (everything killed, namespace gone) however the block ends.
    On an error the tail of the Postfix and agent logs is printed."""
    lab = PostfixLab(config, **options)
    lab.start()
    try:
        yield lab
    except BaseException:
        print(lab.tail(60), file=sys.stderr)
        raise
    finally:
        lab.stop()


# -- command line of the helpers -------------------------------------------------------------


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/support/postfix_lab.py")
    commands = parser.add_subparsers(dest="command", required=True)
    sink = commands.add_parser("sink", help="record every accepted message as JSON lines")
    sink.add_argument("--listen", action="append", type=_listen, required=True,
                      help="HOST:PORT (repeatable)")
    sink.add_argument("--log", type=Path, required=True)
    sink.add_argument("--script", type=Path, default=None,
                      help="JSON answers by source address and domain (scripted_reply)")
    sink.add_argument("--tls-cert", type=Path, default=None, help="offer STARTTLS (PEM)")
    sink.add_argument("--tls-key", type=Path, default=None)
    send = commands.add_parser("send", help="send jobs (JSON lines) to Postfix")
    send.add_argument("--jobs", type=Path, required=True)
    send.add_argument("--out", type=Path, required=True)
    send.add_argument("--host", default=SMTPD_HOST)
    send.add_argument("--port", type=int, default=SMTPD_PORT)
    send.add_argument("--concurrency", type=int, default=1)
    send.add_argument("--retry-for", type=float, default=0.0)
    send.add_argument("--retry-delay", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.command == "sink":
        tls_files = (args.tls_cert, args.tls_key) if args.tls_cert is not None else None
        asyncio.run(run_sink(args.listen, args.log, args.script, tls_files))
        return 0
    jobs = []
    for line in args.jobs.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            data["rcpts"] = tuple(data["rcpts"])
            jobs.append(Job(**data))
    run_sender(jobs, args.out, host=args.host, port=args.port, concurrency=args.concurrency,
               retry_for=args.retry_for, retry_delay=args.retry_delay)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
