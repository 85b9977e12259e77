"""Where alerts go: a webhook (JSON POST with httpx) and e-mail (SMTP to a relay), each
behind a per-channel token bucket.

A channel's ``send`` never raises and never blocks the event loop: the webhook
is an async HTTP client with a timeout per request, e-mail runs ``smtplib`` on a
worker thread. Temporary failures (connection errors, timeouts, HTTP 5xx and
429, SMTP 4xx) are retried with exponential backoff; permanent ones (other 4xx,
SMTP 5xx) are not. Reads no configuration file and no store: the alerter
builds the channels from ``[alerts]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import httpx

log = logging.getLogger("poolwarden.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a condition (``key``), its explanation with the numbers behind it, and
    the dashboard page that explains it."""

    key: str  # one per condition: the same key is not sent again until it clears
    kind: str
    subject: str
    text: str
    link: str
    at: float
    numbers: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None
    ip: str | None = None
    standing: bool = False  # a state that holds until it clears (else a one-off event)

    def payload(self) -> dict[str, Any]:
        """The webhook body (and the facts of the mail)."""
        return {"source": "poolwarden", "kind": self.kind, "key": self.key,
                "subject": self.subject, "text": self.text, "link": self.link, "at": self.at,
                "tenant": self.tenant, "ip": self.ip, "numbers": self.numbers}


def flatten(numbers: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested numbers as sorted (dotted name, value) pairs, for a mail a human reads."""
    out: list[tuple[str, Any]] = []
    for name, value in sorted(numbers.items()):
        if isinstance(value, dict) and value:
            out.extend(flatten(value, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", value))
    return out


class Channel(Protocol):
    name: str

    async def send(self, alert: Alert) -> bool:
        """Deliver one alert; True when delivered. Never raises."""
        ...

    async def aclose(self) -> None: ...


class TokenBucket:
    """``capacity`` alerts at once, refilled at ``rate`` per second."""

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = rate
        self.tokens = float(capacity)
        self.updated = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class WebhookChannel:
    """POSTs each alert as JSON to every configured URL."""

    name = "webhook"

    def __init__(self, urls: Sequence[str], *, timeout: float, retries: int, backoff: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.attempts = 0  # requests made, retries included
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # no proxy from the environment: alerts go where the configuration says
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self._transport,
                                             trust_env=False, follow_redirects=False)
        return self._client

    async def send(self, alert: Alert) -> bool:
        body = json.dumps(alert.payload(), sort_keys=True).encode()
        results = await asyncio.gather(*(self._post(url, body) for url in self.urls))
        return all(results)

    async def _post(self, url: str, body: bytes) -> bool:
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            self.attempts += 1
            try:
                response = await self._http().post(
                    url, content=body, headers={"content-type": "application/json"})
            except httpx.HTTPError as exc:
                log.warning("alert webhook %s: %s (attempt %d)", url, exc, attempt + 1)
                continue
            if response.is_success:
                return True
            log.warning("alert webhook %s answered %d (attempt %d)", url,
                        response.status_code, attempt + 1)
            if response.status_code < 500 and response.status_code != 429:
                return False  # the receiver refuses this alert: retrying will not help
        return False

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class EmailChannel:
    """Mails each alert through an SMTP relay (``smtplib`` on a worker thread)."""

    name = "email"

    def __init__(self, host: str, port: int, *, sender: str, recipients: Sequence[str],
                 timeout: float, starttls: bool, retries: int, backoff: float) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.timeout = timeout
        self.starttls = starttls
        self.retries = retries
        self.backoff = backoff
        self.attempts = 0

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        # header values are one line: a name with a line break must not add headers
        msg["Subject"] = " ".join(f"[poolwarden] {alert.subject}".split())[:900]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(alert.at)
        msg["Message-ID"] = make_msgid(domain="poolwarden.invalid")
        msg["X-Poolwarden-Alert"] = " ".join(alert.key.split())[:900]
        numbers = "\n".join(f"  {name}: {json.dumps(value, sort_keys=True)}"
                            for name, value in flatten(alert.numbers))
        msg.set_content(f"{alert.text}\n\nExplained at: {alert.link}\n\n"
                        f"Numbers:\n{numbers}\n")
        return msg

    async def send(self, alert: Alert) -> bool:
        msg = self.message(alert)
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            self.attempts += 1
            try:
                await asyncio.to_thread(self._deliver, msg)
                return True
            except smtplib.SMTPResponseException as exc:
                log.warning("alert mail via %s:%d: %d %s (attempt %d)", self.host, self.port,
                            exc.smtp_code, exc.smtp_error[:200], attempt + 1)
                if exc.smtp_code >= 500:
                    return False  # refused for good
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("alert mail via %s:%d: %s (attempt %d)", self.host, self.port,
                            exc, attempt + 1)
        return False

    def _deliver(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            smtp.send_message(msg, from_addr=self.sender, to_addrs=list(self.recipients))

    async def aclose(self) -> None:
        return None
