"""Feedback mail in, trusted events and feedback rows out: bounces, complaints, auto-replies.

One raw message at a time (from the LMTP listener or ``poolwarden ingest mail``):

1. Caps first: a message over ``max_message_bytes``, or one ``wire.dsn.parse`` rejects
   (size, header count and length, MIME parts and depth), becomes one feedback row
   ``rejected: <reason>`` and nothing else (docs/testing.md B4).
2. Attribution only through our own VERP token (``wire.verp``): the envelope recipient
   the message was delivered to, the Delivered-To / X-Original-To headers, the returned
   message's return path, an ARF Original-Mail-From, then any ``+token@`` address in
   the message, each HMAC-verified. Tenant and egress IP come from the token alone,
   never from ``Original-Recipient``, ``From`` or any other text (B4/B5). A token that
   names no configured tenant, or two different valid tokens, attribute nothing.
3. Trust (B5): a bounce is trusted when it carries a valid token; a complaint also
   needs its sender (From address, and the envelope sender when known) on the
   ``fbl_sources`` list and, with ``fbl_require_dkim`` (the default), a DKIM signature
   that verifies (``services.feedback.dkim_verify``) by the matching entry's domain or a
   subdomain of it: a From header is forgeable, the FBL's signature is not. A missing,
   failing or foreign signature makes the complaint untrusted with that reason; a key
   that cannot be fetched for a temporary reason raises ``DkimTemporaryError`` (nothing
   stored: the LMTP listener answers 451 and Postfix retries). Each token may count for
   at most ``max_events_per_message`` recipients (a recipient replaying a genuine token
   cannot bounce its tenant down); the rest is untrusted.
4. Trusted bounces become HARD_BOUNCE / SOFT_BOUNCE events (delay notices none, DSNs
   of our own MTAs none: the log ingester counts those), trusted abuse/fraud/virus
   complaints COMPLAINT events, stored through ``Engine.add_events``; every message
   also becomes feedback rows (one per recipient it names), trusted or not, counted
   and, when untrusted, alerted in the log (rate-limited).

Events carry the token's tenant and IP (or, for a token without an IP whose reference
is a queue id, the IP of the routing decision for that message and recipient), the
recipient's provider, and the tenant's sending domain when it has exactly one. Event
times come from the report (Arrival-Date, Date) when within 30 days before / 1 day
after its arrival, else the arrival time. Untrusted rows still name the tenant a valid
token named (whom a forgery was aimed at) but never count.

Idempotent (I7 b): a feedback row's key is the feedback mail's Message-ID (else the
hash of its bytes) with the kind, recipient and token; an event's key is the token's
tenant and message reference with the recipient and kind. The same DSN delivered
twice adds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime

from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event, EventKind
from poolwarden.ports import FeedbackRow
from poolwarden.services.feedback.dkim_verify import (
    DkimTemporaryError,
    DkimVerifier,
    TxtLookup,
    txt_lookup,
)
from poolwarden.services.feedback.settings import FeedbackSettings, feedback_settings
from poolwarden.services.reputation.engine import Engine
from poolwarden.wire import dsn, verp
from poolwarden.wire.arf import Complaint

__all__ = [
    "Assessment",
    "DkimTemporaryError",
    "FeedbackService",
    "FeedbackSettings",
    "StoreResult",
    "feedback_settings",
    "mailbox",
]

log = logging.getLogger("poolwarden.feedback")

TRUSTED, UNTRUSTED, REJECTED = "trusted", "untrusted", "rejected"
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})  # the rest: no event
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
MAX_CANDIDATES = 20  # addresses verified per message, per source
EVENT_TIME_PAST = 30 * 86400  # a feedback date further from its arrival is not believed
EVENT_TIME_FUTURE = 86400
ALERT_INTERVAL = 60.0  # seconds between two warnings about untrusted feedback
_KNOWN_REFS = 10_000  # token references whose counted recipients are kept in memory
_REPORTING_MTA = re.compile(rb"^reporting-mta[ \t]*:[ \t]*(?:dns[ \t]*;)?[ \t]*([^\s;]{1,255})",
                            re.I | re.M)
_RECIPIENT_FIELD = re.compile(rb"^(?:final|original)-recipient[ \t]*:[ \t]*(?:[\w-]{1,20}[ \t]*;)?"
                              rb"[ \t]*<?([^\s<>;@]{1,256}@[^\s<>;]{1,256})", re.I | re.M)
_ACTION_FIELD = re.compile(rb"^action[ \t]*:[ \t]*([a-z]{1,20})", re.I | re.M)
_BLANK_LINE = re.compile(rb"\r?\n[ \t]*\r?\n")
MAX_DSN_BLOCKS = 1000
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_LOCAL_BAD = re.compile(r"[\s\"(),:;<>\[\]\\]")


@dataclass(frozen=True, slots=True)
class Assessment:
    """What one message is: its status, and the rows and events it would store."""

    status: str  # trusted | untrusted | rejected
    kind: str  # bounce | complaint | autoreply | delivered | other
    reason: str  # why untrusted or rejected ("" when trusted)
    rows: tuple[FeedbackRow, ...]
    events: tuple[Event, ...] = ()
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    rows_added: int
    events_added: int


def mailbox(text: str | None) -> str | None:
    """The one address a header value names, lower-cased, or None when it is not exactly one
    plain address. The angle-addr wins over any display name, so the CVE-2023-27043 shape
    ``"staff@hotmail.com" <x@evil.example>`` is ``x@evil.example``; several ``@``
    (CVE-2019-16056) or a source route give None."""
    if not text:
        return None
    value = " ".join(text.split())[:1024]
    if "<" in value or ">" in value:
        inner = re.findall(r"<([^<>]*)>", value)
        if len(inner) != 1:
            return None
        value = inner[0].strip()
    value = value.strip()
    if value.count("@") != 1:
        return None
    local, domain = value.split("@")
    domain = domain.lower().rstrip(".")
    if not local or _LOCAL_BAD.search(local) or not _DOMAIN.fullmatch(domain):
        return None
    return f"{local.lower()}@{domain}"


def _matching_source(address: str, sources: Sequence[str]) -> str | None:
    """The first ``fbl_sources`` entry that covers ``address``, or None."""
    domain = address.rpartition("@")[2]
    for entry in sources:
        if "@" in entry:
            if address == entry:
                return entry
        elif domain == entry or domain.endswith("." + entry):
            return entry
    return None


def _source_ok(address: str, sources: Sequence[str]) -> bool:
    return _matching_source(address, sources) is not None


def _within(domain: str, parent: str) -> bool:
    return domain == parent or domain.endswith("." + parent)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def _headers(raw: bytes) -> Message:
    """The top-level header block only (parse() has already applied the caps to it)."""
    if raw.startswith(b"From ") and b"\n" in raw[:1000]:
        raw = raw[raw.index(b"\n") + 1:]
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    head = raw[:min(ends)] if ends else raw
    return BytesHeaderParser(policy=policy.compat32).parsebytes(head + b"\n\n")


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return " ".join(str(value).split())[:1024] if value is not None else ""


def _all(msg: Message, name: str) -> list[str]:
    return [" ".join(str(v).split())[:1024] for v in (msg.get_all(name) or [])]


def _parse_date(text: str | None) -> float | None:
    if not text:
        return None
    text = text.strip()
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _actions(raw: bytes) -> dict[str, str]:
    """Recipient -> DSN Action field, read from the raw delivery-status blocks (a delay
    notice says "delayed": the message is still being retried, nothing failed yet)."""
    actions: dict[str, str] = {}
    for count, match in enumerate(_RECIPIENT_FIELD.finditer(raw)):
        if count >= MAX_DSN_BLOCKS:
            break
        blank = _BLANK_LINE.search(raw, match.end())
        block = raw[match.end():blank.start() if blank else len(raw)]
        action = _ACTION_FIELD.search(block)
        if action is not None:
            address = match.group(1).decode("utf-8", "replace").lower()
            actions.setdefault(address, action.group(1).decode("ascii").lower())
    return actions


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


class _Alert:
    """Warn about untrusted feedback at once, then at most once per interval with a count."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = float("-inf")
        self._pending = 0

    def untrusted(self, reason: str, source: str) -> None:
        self._pending += 1
        now = self._clock()
        if now - self._last >= ALERT_INTERVAL:
            log.warning("untrusted feedback: %d message(s) since the last warning; latest "
                        "from %s: %s", self._pending, source, reason)
            self._pending = 0
            self._last = now


class FeedbackService:
    """Assess and store feedback mail for one engine (one store, one configuration)."""

    def __init__(self, engine: Engine, settings: FeedbackSettings, *,
                 clock: Callable[[], float] = time.time,
                 dnsfunc: TxtLookup | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self._clock = clock
        self._dnsfunc = dnsfunc  # None: txt_lookup on the configured servers, made lazily
        self._dkim: DkimVerifier | None = None
        self.counts: Counter[str] = Counter()  # messages by status since start
        self._alert = _Alert(clock)
        # (tenant, message ref) -> recipients already counted for that token
        self._counted: OrderedDict[tuple[str, str], set[str]] = OrderedDict()
        self._sending_domain = {t.name: t.domains[0] for t in engine.tenants.values()
                                if len(t.domains) == 1}

    # -- the whole path ---------------------------------------------------------

    def process(self, raw: bytes, *, source: str, envelope_sender: str | None = None,
                envelope_recipients: Sequence[str] = (),
                received_at: float | None = None) -> tuple[Assessment, StoreResult]:
        """Assess one message and store its rows and events. Raises only ``StoreError``
        and ``DkimTemporaryError`` (try the message again later)."""
        assessment = self.assess(raw, source=source, envelope_sender=envelope_sender,
                                 envelope_recipients=envelope_recipients,
                                 received_at=received_at)
        return assessment, self.store([assessment])

    def store(self, assessments: Iterable[Assessment]) -> StoreResult:
        """Store the events (through the engine) then the rows, each idempotently.

        Events go first: if storing the rows fails, the message is refused and comes
        again, and its events are recognised as already stored."""
        chosen = list(assessments)
        events = [ev for a in chosen for ev in a.events]
        added_events = self.engine.add_events(events).added if events else 0
        rows = [row for a in chosen for row in a.rows]
        added_rows = self.engine.store.add_feedback(rows) if rows else 0
        return StoreResult(rows_added=added_rows, events_added=added_events)

    # -- assessing ----------------------------------------------------------------

    def rejected(self, reason: str, *, source: str, raw_size: int, identity: str,
                 received_at: float | None = None) -> Assessment:
        """A message refused before parsing (e.g. too large at the LMTP DATA phase);
        ``identity`` is whatever distinguishes it (a hash of what was seen)."""
        at = self._clock() if received_at is None else received_at
        row = FeedbackRow(key="fbr:" + _hash(identity, reason), received_at=at, kind="other",
                          trusted=False, reason=reason, source=source, raw_size=raw_size)
        return self._count(Assessment(REJECTED, "other", reason, (row,)), source)

    def assess(self, raw: bytes, *, source: str, envelope_sender: str | None = None,
               envelope_recipients: Sequence[str] = (),
               received_at: float | None = None) -> Assessment:
        """What ``raw`` is and what it would store. Never raises for bad input; reads the
        store only for the per-token recipient count and the decision log."""
        at = self._clock() if received_at is None else received_at
        identity = "sha256:" + hashlib.sha256(raw).hexdigest()
        cap = self.settings.max_message_bytes
        if len(raw) > cap:
            return self.rejected(f"rejected: too large ({len(raw)} bytes > {cap})",
                                 source=source, raw_size=len(raw), identity=identity,
                                 received_at=at)
        try:
            parsed = dsn.parse(raw)
            refused = next((p for p in parsed.problems if p.startswith("rejected:")), None)
            if refused is not None:
                return self.rejected(refused, source=source, raw_size=len(raw),
                                     identity=identity, received_at=at)
            return self._assess(parsed, raw, _headers(raw), source=source, at=at,
                                identity=identity, envelope_sender=envelope_sender,
                                envelope_recipients=envelope_recipients)
        except (StoreError, DkimTemporaryError):
            raise
        except Exception as exc:  # a bug on one message must not stop the next one (B4)
            log.exception("feedback from %s could not be assessed", source)
            return self.rejected(f"rejected: internal error ({type(exc).__name__})",
                                 source=source, raw_size=len(raw), identity=identity,
                                 received_at=at)

    def _count(self, assessment: Assessment, source: str) -> Assessment:
        self.counts[assessment.status] += 1
        if assessment.status == UNTRUSTED:
            self._alert.untrusted(assessment.reason, source)
        return assessment

    def _find_token(self, parsed: dsn.ParsedFeedback, raw: bytes, head: Message,
                    envelope_recipients: Sequence[str]) -> tuple[verp.VerpToken | None, str]:
        keys = self.settings.secrets
        if not keys:
            return None, "no VERP secret configured"
        direct = [*envelope_recipients]
        for name in ENVELOPE_HEADERS:
            direct.extend(_all(head, name))
        for address in direct[:MAX_CANDIDATES]:
            token = verp.decode(keys, address)
            if token is not None:
                return token, ""
        inner = [parsed.original_return_path or ""]
        inner.extend(c.original_mail_from or "" for c in parsed.complaints)
        found = [t for t in (verp.decode(keys, a) for a in inner[:MAX_CANDIDATES] if a)
                 if t is not None]
        found.extend(verp.find_tokens(keys, raw, domain=self.settings.verp_domains or None,
                                      limit=MAX_CANDIDATES))
        if not found:
            return None, "no valid VERP token"
        if len({(t.tenant, t.message_ref, t.ip) for t in found}) > 1:
            return None, "conflicting VERP tokens"
        return found[0], ""

    def _complaint_sender(self, head: Message, envelope_sender: str | None,
                          raw: bytes) -> str:
        """Why the complaint's sender is not trusted ("" when it is)."""
        sources = self.settings.fbl_sources
        froms = _all(head, "From")
        if len(froms) != 1:
            return "complaint without exactly one From header"
        sender = mailbox(froms[0])
        if sender is None:
            return "complaint From is not one plain address"
        if not sources:
            return "no FBL source configured"
        entry = _matching_source(sender, sources)
        if entry is None:
            return f"complaint sender {sender} is not a configured FBL source"
        envelope = envelope_sender if envelope_sender is not None else _header(head,
                                                                               "Return-Path")
        if envelope.strip().strip("<>").strip():
            address = mailbox(envelope)
            if address is None or not _source_ok(address, sources):
                return (f"complaint envelope sender {address or '(unparseable)'} is not a "
                        "configured FBL source")
        if self.settings.require_dkim:
            return self._dkim_problem(raw, sender, entry.rpartition("@")[2])
        return ""

    def verifier(self) -> DkimVerifier:
        if self._dkim is None:
            timeout = self.settings.dkim_timeout
            dnsfunc = self._dnsfunc or txt_lookup(self.settings.dkim_nameservers, timeout)
            self._dkim = DkimVerifier(dnsfunc, timeout=timeout)
        return self._dkim

    def _dkim_problem(self, raw: bytes, sender: str, source_domain: str) -> str:
        """Why the complaint's DKIM does not vouch for the FBL source ("" when it does)."""
        result = self.verifier().verify(raw)
        if any(_within(d, source_domain) for d in result.valid):
            return ""
        prefix = f"complaint from {sender}: DKIM required (fbl_require_dkim): "
        if not result.signatures:
            return prefix + "no DKIM signature"
        if result.valid and not result.failures:
            return (prefix + f"signed by {', '.join(result.valid)}, not by the FBL source "
                    f"domain {source_domain}")
        return (prefix + f"no valid signature by {source_domain} ({result.describe()})")[:1024]

    def _reporting_mta(self, raw: bytes) -> str:
        match = _REPORTING_MTA.search(raw)
        return match.group(1).decode("ascii", "replace").lower().rstrip(".") if match else ""

    def _counted_for(self, tenant: str, ref: str) -> set[str]:
        key = (tenant, ref)
        known = self._counted.get(key)
        if known is None:
            cap = self.settings.max_events_per_message
            rows = self.engine.store.feedback(trusted=True, message_ref=ref,
                                              limit=cap * 4 + 16)
            known = {(r.recipient or "").lower() for r in rows if r.tenant == tenant}
            self._counted[key] = known
            while len(self._counted) > _KNOWN_REFS:
                self._counted.popitem(last=False)
        else:
            self._counted.move_to_end(key)
        return known

    def _ip_for(self, token: verp.VerpToken, recipient: str) -> str | None:
        """The token's egress IP; else the routing decision for that message and recipient."""
        if token.ip is not None or not token.message_ref:
            return token.ip
        rows = self.engine.store.decisions(queue_id=token.message_ref, tenant=token.tenant,
                                           limit=500)
        by_recipient = {r.recipient.lower(): r.ip for r in rows if r.ip}
        if recipient.lower() in by_recipient:
            return by_recipient[recipient.lower()]
        ips = set(by_recipient.values())
        return ips.pop() if len(ips) == 1 else None

    def _event_time(self, at: float, *dates: str | None) -> float:
        for text in dates:
            when = _parse_date(text)
            if when is not None and at - EVENT_TIME_PAST <= when <= at + EVENT_TIME_FUTURE:
                return when
        return at

    def _assess(self, parsed: dsn.ParsedFeedback, raw: bytes, head: Message, *, source: str,
                at: float, identity: str, envelope_sender: str | None,
                envelope_recipients: Sequence[str]) -> Assessment:
        kind = parsed.kind
        message_key = _header(head, "Message-ID") or identity
        token, why = self._find_token(parsed, raw, head, envelope_recipients)
        if token is not None and token.tenant not in self.engine.tenants:
            why = f"VERP token names unknown tenant '{token.tenant}'"
            token = None
        if kind == "complaint" and not why:
            why = self._complaint_sender(head, envelope_sender, raw)
        no_events = ""
        if kind == "bounce" and not why and self.settings.local_reporting_mtas:
            mta = self._reporting_mta(raw)
            if mta in self.settings.local_reporting_mtas:
                no_events = f"reported by our own MTA {mta}: counted from the logs"
        trusted = token is not None and not why
        ref = token.message_ref if token else ""
        # untrusted rows still say what a valid token named (whom a forgery was aimed at)
        tenant = token.tenant if token else None
        token_ip = token.ip if token else None
        date = _header(head, "Date")
        rows: list[FeedbackRow] = []
        events: list[Event] = []

        def row(recipient: str | None, *, ok: bool, note: str, ip: str | None,
                message_id: str | None, bounce: dsn.FailedRecipient | None = None,
                feedback_type: str | None = None) -> FeedbackRow:
            return FeedbackRow(
                key="fb:" + _hash(message_key, kind, (recipient or "").lower(), ref,
                                  tenant or ""),
                received_at=at, kind=kind, trusted=ok, reason=note, tenant=tenant, ip=ip,
                recipient=recipient, message_ref=token.message_ref if token else None,
                message_id=message_id, bounce_reason=bounce.reason if bounce else None,
                bounce_class=bounce.bounce_class if bounce else None,
                dsn_status=(bounce.dsn_status or None) if bounce else None,
                feedback_type=feedback_type, source=source, raw_size=len(raw))

        def admit(recipient: str) -> str:
            """'' when this recipient may count against the token, else why not."""
            if token is None:
                return why
            known = self._counted_for(token.tenant, ref)
            name = recipient.lower()
            if name in known:
                return ""
            if len(known) >= self.settings.max_events_per_message:
                return (f"VERP token already counted for {len(known)} recipients "
                        "(max_events_per_message): replayed?")
            known.add(name)
            return ""

        if kind == "bounce":
            actions = _actions(raw)
            for r in parsed.recipients:
                note = why or admit(r.address)
                ok = trusted and not note
                ip = self._ip_for(token, r.address) if ok and token else None
                if ok:
                    note = no_events or ("delay notice: no event"
                                         if actions.get(r.address.lower()) == "delayed" else "")
                rows.append(row(r.address, ok=ok, note=note, ip=ip if ok else token_ip,
                                message_id=parsed.original_message_id, bounce=r))
                if ok and not note and token is not None:
                    events.append(self._bounce_event(token, r, ip, self._event_time(at, date)))
        elif kind == "complaint":
            for c in parsed.complaints:
                note = why or admit(c.recipient)
                ok = trusted and not note
                ip = self._ip_for(token, c.recipient) if ok and token else None
                if ok and c.feedback_type not in COMPLAINT_TYPES:
                    note = f"feedback type {c.feedback_type}: no event"
                rows.append(row(c.recipient, ok=ok, note=note, ip=ip if ok else token_ip,
                                message_id=c.original_message_id,
                                feedback_type=c.feedback_type))
                if ok and not note and token is not None:
                    when = self._event_time(at, c.arrival_date, date)
                    events.append(self._complaint_event(token, c, ip, when,
                                                        _header(head, "From")))
        if not rows:  # delivered, autoreply, other, or a bounce naming nobody
            rows.append(row(None, ok=trusted, note=why, ip=token_ip,
                            message_id=parsed.original_message_id))
        any_trusted = any(r.trusted for r in rows)
        status = TRUSTED if any_trusted else UNTRUSTED
        reason = "" if any_trusted else (rows[0].reason or why)
        return self._count(Assessment(status, kind, reason, tuple(rows), tuple(events), tenant),
                           source)

    def _bounce_event(self, token: verp.VerpToken, r: dsn.FailedRecipient, ip: str | None,
                      when: float) -> Event:
        kind = EventKind.HARD_BOUNCE if r.hard else EventKind.SOFT_BOUNCE
        domain = _domain_of(r.address)
        mx = (r.remote_mta,) if r.remote_mta else ()
        reason = f"{r.reason} ({r.dsn_status})" if r.dsn_status else r.reason
        return Event(
            key="fb:" + _hash(token.tenant, token.message_ref, r.address.lower(), kind.value),
            time=when, kind=kind, tenant=token.tenant,
            provider=self.engine.providers.for_domain(domain, mx), ip=ip,
            sending_domain=self._sending_domain.get(token.tenant),
            recipient_domain=domain or None, reason=("async bounce: " + reason)[:1024])

    def _complaint_event(self, token: verp.VerpToken, c: Complaint, ip: str | None,
                         when: float, reporter: str) -> Event:
        domain = _domain_of(c.recipient) if "@" in c.recipient else ""
        # a redacted complainer: the FBL that reported it names the provider
        provider = self.engine.providers.for_domain(domain or _domain_of(mailbox(reporter)
                                                                         or ""))
        return Event(
            key="fbc:" + _hash(token.tenant, token.message_ref, c.recipient.lower()),
            time=when, kind=EventKind.COMPLAINT, tenant=token.tenant, provider=provider,
            ip=ip, sending_domain=self._sending_domain.get(token.tenant),
            recipient_domain=domain or None,
            reason=f"complaint ({c.feedback_type}, {c.format})"[:1024])
