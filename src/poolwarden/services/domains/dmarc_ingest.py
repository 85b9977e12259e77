"""DMARC aggregate reports in: files, directories, Maildirs and LMTP mail, stored once each.

``DmarcIngest.ingest(data, source=...)`` takes one input (a report file or a mail), finds
its reports (``wire.dmarc_mail``), opens and parses each under the caps
(``wire.dmarc_archive``, ``wire.dmarc_xml``), joins the records to our egress IPs, tenants
and routes (``core.dmarc_join``, with the store's per-IP-and-tenant day counters for the
report's window) and stores the report with its records in one transaction.

Safe by construction (RELIABILITY B1-B3): every refusal is stored as a ``rejected`` row
with its reason (keyed by the hash of the bytes, so the same bad file is recorded once);
failure and TLS reports are recorded as ``skipped``; a stored report's key is its
reporter and report id, so the same report from a file, a mail and a second delivery is
stored once. Any error in one input becomes that input's rejection: the next input is
always processed. Only a store failure propagates (the LMTP listener answers 451 and
Postfix retries; nothing partial was written).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from poolwarden.config.domain_settings import DmarcSettings
from poolwarden.config.load import LoadedConfig
from poolwarden.core.counters import Scope
from poolwarden.core.dmarc import AggregateReport
from poolwarden.core.dmarc_join import DAY, Joiner, window_days
from poolwarden.core.errors import StoreError
from poolwarden.core.model import Inventory
from poolwarden.ports import DmarcReportRow, Store
from poolwarden.wire.dmarc_archive import DEFAULT_CAPS, Caps, ReportRejected
from poolwarden.wire.dmarc_mail import AGGREGATE, parts_of
from poolwarden.wire.dmarc_xml import parse_report

log = logging.getLogger(__name__)

SENDER_DAYS = 45  # how far back the day counters are read to tell who sent from an IP


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one report (or of an input that held none)."""

    source: str
    status: str  # stored | duplicate | rejected | skipped
    reason: str = ""
    key: str = ""
    records: int = 0
    messages: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class IngestSummary:
    inputs: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


class DmarcIngest:
    """One per process; thread-compatible (the LMTP listener calls it from one worker)."""

    def __init__(self, store: Store, inventory: Inventory, *,
                 caps: Caps = DEFAULT_CAPS, clock: Callable[[], float] | None = None,
                 ) -> None:
        self.store = store
        self.joiner = Joiner(inventory)
        self.caps = caps
        self.clock = clock or time.time
        self._senders: dict[int, dict[str, set[str]]] | None = None
        self._first_day = 0

    def _load_senders(self) -> dict[int, dict[str, set[str]]]:
        if self._senders is None:
            self._first_day = int(self.clock() // DAY) - SENDER_DAYS
            by_day: dict[int, dict[str, set[str]]] = {}
            for row in self.store.counters(since_day=self._first_day):
                if row.scope is not Scope.IP_TENANT or row.provider != "*":
                    continue
                ip, _, tenant = row.scope_id.partition("|")
                by_day.setdefault(row.day, {}).setdefault(ip, set()).add(tenant)
            self._senders = by_day
        return self._senders

    def senders(self, report: AggregateReport) -> dict[str, frozenset[str]] | None:
        """Our IPs and the tenants that sent from them in the report's window; None when
        the window is older than the counters read."""
        days = window_days(report)
        by_day = self._load_senders()
        if days.start < self._first_day:
            return None
        found: dict[str, set[str]] = {}
        for day in days:
            for ip, tenants in by_day.get(day, {}).items():
                found.setdefault(ip, set()).update(tenants)
        return {ip: frozenset(t) for ip, t in found.items()}

    def refresh(self) -> None:
        """Read the counters again at the next report (after new deliveries were stored)."""
        self._senders = None

    def ingest(self, data: bytes, *, source: str, name: str = "") -> list[Outcome]:
        """Every report in one input, each stored or recorded with its reason."""
        at = self.clock()
        try:
            parts = parts_of(data, name=name or source)
        except ReportRejected as exc:
            return [self._refused(data, source, at, "rejected", exc.reason)]
        except Exception as exc:  # a bug meeting hostile input: that input only
            log.exception("DMARC input %s could not be read", source)
            return [self._refused(data, source, at, "rejected",
                                  f"internal error: {type(exc).__name__}")]
        outcomes = []
        for part in parts:
            inner = part.name and part.name not in (source, name)
            where = f"{source} ({part.name})" if inner else source
            if part.kind != AGGREGATE:
                outcomes.append(self._refused(
                    data + part.name.encode(), where, at, "skipped",
                    f"a DMARC {part.kind.replace('_', ' ')} report, not an aggregate "
                    "report"))
                continue
            outcomes.append(self._one(part.data, part.name, where, at))
        return outcomes

    def _one(self, data: bytes, name: str, source: str, at: float) -> Outcome:
        try:
            report = parse_report(data, name=name, caps=self.caps)
            joined = self.joiner.join(report, self.senders(report))
        except ReportRejected as exc:
            return self._refused(data, source, at, "rejected", exc.reason)
        except StoreError:
            raise
        except Exception as exc:
            log.exception("DMARC report %s could not be parsed", source)
            return self._refused(data, source, at, "rejected",
                                 f"internal error: {type(exc).__name__}")
        row = DmarcReportRow(
            key=report.key, status="stored", received_at=at, source=source,
            org_name=report.org_name, report_id=report.report_id,
            policy_domain=report.policy.domain, policy_p=report.policy.p or "",
            begin=report.begin, end=report.end, records=len(report.records),
            messages=report.messages, warnings=report.warnings)
        added = self.store.add_dmarc_report(row, joined)
        return Outcome(source, "stored" if added else "duplicate",
                       "" if added else "this report (reporter and report id) is already "
                       "stored", report.key, len(report.records), report.messages,
                       report.warnings)

    def _refused(self, data: bytes, source: str, at: float, status: str,
                 reason: str) -> Outcome:
        key = f"{status}:sha256:{hashlib.sha256(data).hexdigest()}"
        self.store.add_dmarc_report(DmarcReportRow(key=key, status=status, received_at=at,
                                                   source=source, reason=reason), ())
        return Outcome(source, status, reason, key)


class DmarcMailbox:
    """The feedback LMTP listener's way in: which mail is a DMARC report, and storing it."""

    def __init__(self, ingest: DmarcIngest, addresses: Iterable[str] = ()) -> None:
        self.ingest = ingest
        self.addresses = frozenset(a.lower() for a in addresses)

    def wants(self, raw: bytes, recipients: list[str]) -> bool:
        """Mail to a configured rua address, or whose subject is a report's (RFC 7489
        7.2.1.2: "Report Domain: ... Submitter: ... Report-ID: ...")."""
        if any(r.strip("<>").lower() in self.addresses for r in recipients):
            return True
        end = raw.find(b"\n\n")
        head = raw[:end if 0 <= end < 65536 else 65536]
        return re.search(rb"^subject:[ \t]*report domain:", head, re.I | re.M) is not None

    def deliver(self, raw: bytes, *, source: str) -> str:
        """Store the mail's reports; a short summary for the LMTP reply (our words only)."""
        outcomes = self.ingest.ingest(raw, source=source)
        counts = {s: sum(1 for o in outcomes if o.status == s)
                  for s in ("stored", "duplicate", "rejected", "skipped")}
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing found"


def dmarc_mailbox(store: Store, config: LoadedConfig,
                  clock: Callable[[], float] | None = None) -> DmarcMailbox:
    """The LMTP listener's report sink for a configuration."""
    dmarc = config.settings.dmarc
    return DmarcMailbox(DmarcIngest(store, config.inventory, caps=caps_of(dmarc), clock=clock),
                        dmarc.addresses)


def caps_of(settings: DmarcSettings) -> Caps:
    """The ingest caps a configuration's ``[dmarc]`` section sets."""
    return Caps(max_input=settings.max_report_bytes, max_output=settings.max_xml_bytes)


def input_files(path: Path) -> list[Path]:
    """The inputs at ``path``: the file itself; a Maildir's ``cur/`` and ``new/``; or every
    file of a directory, in name order (hidden files and ``tmp/`` left alone)."""
    if not path.is_dir():
        return [path]
    if (path / "cur").is_dir() or (path / "new").is_dir():
        return [p for sub in ("cur", "new") if (path / sub).is_dir()
                for p in sorted((path / sub).iterdir())
                if p.is_file() and not p.name.startswith(".")]
    return sorted(p for p in path.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(path).parts)
                  and "tmp" not in p.relative_to(path).parts[:1])


def ingest_paths(ingest: DmarcIngest, files: Iterable[Path]) -> IngestSummary:
    """Every file through ``ingest``; a file that cannot be read is listed, never fatal.
    A file over the input cap is read only up to the cap (enough to refuse it)."""
    summary = IngestSummary()
    cap = ingest.caps.max_input
    for path in files:
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                data = handle.read(cap + 1)
        except OSError as exc:
            summary.unreadable.append((str(path), exc.strerror or type(exc).__name__))
            continue
        summary.inputs += 1
        if size > cap:
            outcome = ingest._refused(data + str(size).encode(), str(path), ingest.clock(),
                                      "rejected", f"too large: {size:,} bytes over the input "
                                      f"cap of {cap:,}")
            summary.outcomes.append(outcome)
            continue
        summary.outcomes.extend(ingest.ingest(data, source=str(path), name=path.name))
    return summary
