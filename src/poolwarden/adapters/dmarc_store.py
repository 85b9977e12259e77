"""Sending domains in the store: DMARC reports (each once, its records joined to our side)
and the latest authentication findings of each tenant's domains.

``SqlDmarcStore`` works on a SQLAlchemy engine (SQLite or PostgreSQL, tables
``dmarc_reports``, ``dmarc_records`` and ``auth_findings`` from migration 0012);
``MemoryDmarcStore`` keeps the same in process memory. ``SqlStore`` and ``MemoryStore``
are built on them. A report and its records are written in one transaction, and a second
report with the same key writes nothing (exactly once per report id, RELIABILITY B1-B3).
Driver errors leave as ``StoreError``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from poolwarden.adapters.schema import auth_findings, dmarc_records, dmarc_reports
from poolwarden.core.auth import Finding
from poolwarden.core.dmarc import DkimAuth, DmarcRecord, JoinedRecord, Reason, SpfAuth
from poolwarden.core.errors import StoreError
from poolwarden.ports import AuthStore, DmarcReportRow, DmarcStore

REPORT_COLUMNS = ("key", "status", "received_at", "source", "reason", "org_name", "report_id",
                  "policy_domain", "policy_p", "begin", "end", "records", "messages")
_LIMITS = {"key": 1100, "source": 1024, "org_name": 1024, "report_id": 1024,
           "policy_domain": 255, "policy_p": 32}


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise StoreError(f"store: {action} failed: {type(orig).__name__}: "
                         f"{str(orig).strip().splitlines()[0] if str(orig) else ''}") from exc


def _report_row(report: DmarcReportRow) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(report, name) for name in REPORT_COLUMNS}
    for name, limit in _LIMITS.items():
        row[name] = str(row[name])[:limit]
    row["warnings"] = [w[:1024] for w in report.warnings[:100]]
    return row


def _auth_json(record: DmarcRecord) -> str:
    return _encode({"dkim": [[a.domain, a.selector, a.result, a.human_result]
                             for a in record.dkim_auth],
                    "spf": [[a.domain, a.scope, a.result, a.human_result]
                            for a in record.spf_auth],
                    "reasons": [[r.type, r.comment] for r in record.reasons]})


_encode = json.JSONEncoder(separators=(",", ":")).encode
RECORD_COLUMNS = ("report_id", "begin", "end", "source_ip", "count", "disposition", "dkim",
                  "spf", "header_from", "envelope_from", "envelope_to", "auth", "ours",
                  "tenant", "route", "note")


def _record_row(report_pk: int, j: JoinedRecord) -> tuple[Any, ...]:
    """A record as the driver's parameters (the insert of 10,000 rows skips SQLAlchemy's
    per-row parameter processing; ``auth`` is JSON text already)."""
    r = j.record
    return (report_pk, j.begin, j.end, r.source_ip[:64], r.count, r.disposition[:32],
            r.dkim[:32], r.spf[:32], r.header_from[:255],
            r.envelope_from[:255] if r.envelope_from else r.envelope_from,
            r.envelope_to[:255] if r.envelope_to else r.envelope_to, _auth_json(r), j.ours,
            j.tenant, j.route, j.note[:1024])


def _insert_records_sql(dialect: str) -> str:
    names = ", ".join(f'"{c}"' for c in RECORD_COLUMNS)
    if dialect == "postgresql":
        marks = ", ".join("%s::json" if c == "auth" else "%s" for c in RECORD_COLUMNS)
    else:
        marks = ", ".join("?" for _ in RECORD_COLUMNS)
    return f"INSERT INTO dmarc_records ({names}) VALUES ({marks})"


def _joined(row: Any, key: str) -> JoinedRecord:
    auth = row["auth"] or {}
    record = DmarcRecord(
        source_ip=row["source_ip"], count=int(row["count"]), disposition=row["disposition"],
        dkim=row["dkim"], spf=row["spf"], header_from=row["header_from"],
        envelope_from=row["envelope_from"], envelope_to=row["envelope_to"],
        reasons=tuple(Reason(t, c) for t, c in auth.get("reasons", [])),
        dkim_auth=tuple(DkimAuth(*a) for a in auth.get("dkim", [])),
        spf_auth=tuple(SpfAuth(*a) for a in auth.get("spf", [])))
    return JoinedRecord(key, int(row["begin"]), int(row["end"]), record, bool(row["ours"]),
                        row["tenant"], row["route"], row["note"])


def _report_of(row: Any) -> DmarcReportRow:
    return DmarcReportRow(**{name: row[name] for name in REPORT_COLUMNS},
                          warnings=tuple(row["warnings"] or ()), id=int(row["id"]))


FINDING_COLUMNS = ("tenant", "domain", "check", "status", "reason", "record", "route", "ip")


def _finding_row(f: Finding, at: float) -> dict[str, Any]:
    return {"tenant": f.tenant, "domain": f.domain[:255], "check": f.check[:32],
            "status": f.status[:16], "reason": f.reason, "record": f.record,
            "route": f.route[:255] if f.route else f.route,
            "ip": f.ip[:64] if f.ip else f.ip, "checked_at": at}


class SqlDmarcStore(DmarcStore, AuthStore):
    """``ports.DmarcStore`` over a SQLAlchemy engine already migrated by ``open_store``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _dmarc_tx(self, action: str) -> Iterator[Connection]:
        with _translated(action), self._engine.connect() as conn, conn.begin():
            yield conn

    def add_dmarc_report(self, report: DmarcReportRow, records: Sequence[JoinedRecord]
                         ) -> bool:
        insert = (postgresql.insert if self._engine.dialect.name == "postgresql"
                  else sqlite.insert)
        stmt = insert(dmarc_reports).values(_report_row(report)).on_conflict_do_nothing(
            index_elements=[dmarc_reports.c.key]).returning(dmarc_reports.c.id)
        with self._dmarc_tx("store a DMARC report") as conn:
            pk = conn.execute(stmt).scalar()
            if pk is None:
                return False
            if records:
                conn.exec_driver_sql(_insert_records_sql(self._engine.dialect.name),
                                     [_record_row(pk, j) for j in records])
        return True

    def dmarc_reports(self, *, status: str | None = None, limit: int = 100
                      ) -> list[DmarcReportRow]:
        query = select(dmarc_reports).order_by(dmarc_reports.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(dmarc_reports.c.status == status)
        with self._dmarc_tx("read DMARC reports") as conn:
            return [_report_of(r) for r in conn.execute(query).mappings()]

    def dmarc_records(self, *, tenant: str | None = None, domain: str | None = None,
                      since: int | None = None) -> list[JoinedRecord]:
        query = (select(dmarc_records, dmarc_reports.c.key.label("report_key"))
                 .join(dmarc_reports, dmarc_reports.c.id == dmarc_records.c.report_id)
                 .order_by(dmarc_records.c.id))
        if tenant is not None:
            query = query.where(dmarc_records.c.tenant == tenant)
        if domain is not None:
            query = query.where(dmarc_records.c.header_from == domain)
        if since is not None:
            query = query.where(dmarc_records.c.end >= since)
        with self._dmarc_tx("read DMARC records") as conn:
            return [_joined(r, r["report_key"]) for r in conn.execute(query).mappings()]


    def save_auth_findings(self, findings: Sequence[Finding], *, at: float,
                           tenants: Sequence[str | None]) -> None:
        named = [t for t in tenants if t is not None]
        gone: ColumnElement[bool] | None = (auth_findings.c.tenant.in_(named) if named
                                            else None)
        if None in tenants:
            none = auth_findings.c.tenant.is_(None)
            gone = none if gone is None else or_(gone, none)
        with self._dmarc_tx("store authentication findings") as conn:
            if gone is not None:
                conn.execute(delete(auth_findings).where(gone))
            if findings:
                conn.execute(auth_findings.insert(), [_finding_row(f, at) for f in findings])

    def auth_findings(self, *, tenant: str | None = None) -> list[tuple[Finding, float]]:
        query = select(auth_findings).order_by(auth_findings.c.id)
        if tenant is not None:
            query = query.where(auth_findings.c.tenant == tenant)
        with self._dmarc_tx("read authentication findings") as conn:
            return [(Finding(**{c: r[c] for c in FINDING_COLUMNS}), float(r["checked_at"]))
                    for r in conn.execute(query).mappings()]


class MemoryDmarcStore(DmarcStore, AuthStore):
    """The same in process memory (tests, ``MemoryStore``)."""

    def __init__(self) -> None:
        self._dmarc_lock = threading.Lock()
        self._dmarc_reports: list[DmarcReportRow] = []
        self._dmarc_keys: set[str] = set()
        self._dmarc_records: list[JoinedRecord] = []
        self._findings: list[tuple[Finding, float]] = []

    def add_dmarc_report(self, report: DmarcReportRow, records: Sequence[JoinedRecord]
                         ) -> bool:
        with self._dmarc_lock:
            if report.key in self._dmarc_keys:
                return False
            self._dmarc_keys.add(report.key)
            self._dmarc_reports.append(replace(report, id=len(self._dmarc_reports) + 1))
            self._dmarc_records.extend(records)
        return True

    def dmarc_reports(self, *, status: str | None = None, limit: int = 100
                      ) -> list[DmarcReportRow]:
        with self._dmarc_lock:
            rows = [r for r in reversed(self._dmarc_reports)
                    if status is None or r.status == status]
        return rows[:limit]

    def dmarc_records(self, *, tenant: str | None = None, domain: str | None = None,
                      since: int | None = None) -> list[JoinedRecord]:
        with self._dmarc_lock:
            return [j for j in self._dmarc_records
                    if (tenant is None or j.tenant == tenant)
                    and (domain is None or j.record.header_from == domain)
                    and (since is None or j.end >= since)]

    def save_auth_findings(self, findings: Sequence[Finding], *, at: float,
                           tenants: Sequence[str | None]) -> None:
        with self._dmarc_lock:
            self._findings = [(f, t) for f, t in self._findings if f.tenant not in tenants]
            self._findings.extend((f, at) for f in findings)

    def auth_findings(self, *, tenant: str | None = None) -> list[tuple[Finding, float]]:
        with self._dmarc_lock:
            return [(f, t) for f, t in self._findings if tenant is None or f.tenant == tenant]
