"""The feedback LMTP listener: Postfix delivers bounce and FBL mail here (aiosmtpd's LMTP).

Point the VERP domain and the FBL addresses at it, e.g. in Postfix::

    transport_maps = inline:{ bounces.example = lmtp:inet:127.0.0.1:10041 }

Each message is handed to ``services.feedback.intake`` (parse, attribute through the VERP
token, store rows and events) on one worker thread, off the event loop. LMTP rules:
one reply per accepted recipient after DATA, including when aiosmtpd itself refuses
the data (``552`` over ``max_message_bytes``, ``500`` for an over-long line), which
it answers only once; those refusals are recorded as ``rejected:`` feedback rows.
A bad message gets its rejected row and ``250`` (retrying cannot help); only a
store failure, or a DKIM key that could not be fetched for a temporary reason, answers
``451`` so that Postfix retries later. One bad message never
stops the next (docs/testing.md B4). TCP listens on loopback only; a unix socket gets
mode 0660 and group postfix. Replies carry only our own vocabulary, never text
from the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from poolwarden.adapters.listeners import Listen, open_listeners
from poolwarden.core.errors import StoreError
from poolwarden.services.feedback.intake import DkimTemporaryError, FeedbackService

__all__ = ["MAX_RECIPIENTS", "LmtpServer", "ReportSink", "parse_listen"]

log = logging.getLogger("poolwarden.lmtpd")

MAX_RECIPIENTS = 100  # per transaction; more get 452 and come in the next one
TIMEOUT = 300.0  # seconds of client silence before the connection is closed


def parse_listen(text: str) -> Listen:
    """``tcp:HOST:PORT`` on a loopback address, or ``unix:PATH``; ``ValueError`` otherwise."""
    where = Listen.parse(text)
    if where.kind == "tcp":
        host = "127.0.0.1" if where.host == "localhost" else where.host
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"LMTP listen address {text!r}: TCP must be on a loopback "
                             "address (use unix:PATH for a socket Postfix can reach)")
        return Listen("tcp", host=host, port=where.port)
    return where


class _Handler:
    """aiosmtpd handler hooks: recipients, then the message to the feedback service."""

    def __init__(self, server: LmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session,  # noqa: N802
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        recipients = list(envelope.rcpt_tos)
        reply = await self.server.deliver(raw, envelope.mail_from, recipients)
        return "\r\n".join([reply] * max(len(recipients), 1))


class _Session(LMTP):
    """aiosmtpd's LMTP, answering aiosmtpd's own DATA refusals once per recipient."""

    def __init__(self, server: LmtpServer, **kwargs: Any) -> None:
        super().__init__(server.handler, **kwargs)
        self._pw_server = server
        self._data_phase = 0  # 1: DATA received, 354 not yet sent; 2: reading the data
        self._owed = 0  # replies owed after the data: one per recipient

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        self._data_phase, self._owed = 1, 0
        try:
            await super().smtp_DATA(arg)
        finally:
            self._data_phase, self._owed = 0, 0

    async def push(self, status: str | bytes) -> None:
        # one form for the base class (its parameter is AnyStr): text
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if self._data_phase == 1 and text.startswith("354"):
            self._data_phase = 2
            self._owed = len(self.envelope.rcpt_tos) if self.envelope is not None else 1
        elif self._data_phase == 2:
            self._data_phase = 0
            owed, self._owed = self._owed, 0
            if "\r\n" not in text:  # aiosmtpd's own verdict: one line for every recipient
                if text.startswith(("552", "500 Line too long")):
                    await self._pw_server.refused(text, self.envelope)
                for _ in range(owed - 1):
                    await super().push(text)
        await super().push(text)


class ReportSink(Protocol):
    """Where DMARC aggregate report mail goes instead of the bounce and complaint intake
    (``services.domains.dmarc_ingest.DmarcMailbox``)."""

    def wants(self, raw: bytes, recipients: list[str]) -> bool: ...

    def deliver(self, raw: bytes, *, source: str) -> str: ...


class LmtpServer:
    """The listener; ``start`` then ``stop``. Counts what it answered in ``replies``."""

    def __init__(self, service: FeedbackService, *, max_message_bytes: int,
                 timeout: float = TIMEOUT, hostname: str | None = None,
                 socket_mode: int = 0o660, socket_group: str | None = "postfix",
                 reports: ReportSink | None = None) -> None:
        self.service = service
        self.reports = reports
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        self.hostname = hostname or socket.gethostname()
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.handler = _Handler(self)
        self.servers: list[asyncio.Server] = []
        self.addresses: list[str] = []
        self.replies: dict[str, int] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")

    def _session(self) -> _Session:
        return _Session(self, data_size_limit=self.max_message_bytes, enable_SMTPUTF8=True,
                        hostname=self.hostname, ident="poolwarden feedback LMTP",
                        timeout=self.timeout, loop=asyncio.get_running_loop())

    async def start(self, listens: list[Listen]) -> None:
        servers, addresses = await open_listeners(
            listens, self._session, socket_mode=self.socket_mode,
            socket_group=self.socket_group)
        self.servers.extend(servers)
        self.addresses.extend(addresses)
        log.info("feedback LMTP listening on %s", ", ".join(self.addresses))

    def _count(self, reply: str) -> str:
        self.replies[reply[:3]] = self.replies.get(reply[:3], 0) + 1
        return reply

    async def _run(self, fn: functools.partial[Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def deliver(self, raw: bytes, sender: str | None, recipients: list[str]) -> str:
        """Process one message; the reply for each of its recipients."""
        if self.reports is not None and self.reports.wants(raw, recipients):
            try:
                summary = await self._run(functools.partial(
                    self.reports.deliver, raw, source="lmtp"))
            except StoreError as exc:
                log.error("DMARC report not stored, asking the client to retry: %s", exc)
                return self._count("451 4.3.0 Report store unavailable, try again later")
            except Exception:
                log.exception("DMARC report processing failed, asking the client to retry")
                return self._count("451 4.3.0 Internal error, try again later")
            return self._count(f"250 2.0.0 DMARC {summary}")
        try:
            assessment, _stored = await self._run(functools.partial(
                self.service.process, raw, source="lmtp", envelope_sender=sender or "",
                envelope_recipients=recipients))
        except StoreError as exc:
            log.error("feedback not stored, asking the client to retry: %s", exc)
            return self._count("451 4.3.0 Feedback store unavailable, try again later")
        except DkimTemporaryError as exc:
            log.warning("feedback deferred, asking the client to retry: %s", exc)
            return self._count("451 4.4.3 DKIM key lookup failed, try again later")
        except Exception:
            log.exception("feedback processing failed, asking the client to retry")
            return self._count("451 4.3.0 Internal error, try again later")
        return self._count(f"250 2.0.0 Feedback {assessment.status} ({assessment.kind})")

    async def refused(self, reply: str, envelope: Envelope | None) -> None:
        """Record a message aiosmtpd refused at DATA (too large, line too long)."""
        reason = ("rejected: too large (over max_message_bytes)" if reply.startswith("552")
                  else "rejected: line too long")
        identity = "|".join([repr(time.time()), str(envelope.mail_from if envelope else ""),
                             *(envelope.rcpt_tos if envelope else [])])
        self._count(reply)

        def record() -> None:
            service = self.service
            service.store([service.rejected(
                reason, source="lmtp", raw_size=0,
                identity=hashlib.sha256(identity.encode("utf-8", "replace")).hexdigest())])

        try:
            await self._run(functools.partial(record))
        except Exception:  # the refusal itself stands; only its record is lost
            log.exception("could not record a refused feedback message")

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._executor.shutdown(wait=True)
        for address in self.addresses:
            if address.startswith("unix:"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address[5:])
