"""The routing decision log and the feedback mail received, in the SQL store.

``SqlRecordStore`` is the part of ``SqlStore`` (``adapters.sqlstore``) that implements
``ports.DecisionStore`` and ``ports.FeedbackStore``, on the transactions ``SqlStore`` opens.
Both are records of text from the network: cleaned and cut as every store does it
(``adapters.storable``), never refused.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from poolwarden.adapters.schema import decisions
from poolwarden.adapters.schema import feedback as feedback_table
from poolwarden.adapters.storable import (
    clean_bindings,
    clean_decision,
    clean_feedback,
    clean_filter,
    count_feedback,
)
from poolwarden.ports import DecisionRow, DecisionStore, FeedbackRow, FeedbackStore

CHUNK = 500  # rows per statement on SQLite: well under its bound-variable limit
DECISION_CHUNK = 5_000  # decision rows per executemany call
DECISION_COLUMNS = ("at", "node", "instance", "tenant", "recipient", "action", "ip", "pool",
                    "rule", "snapshot_version", "queue_id")

# One (instance, queue id) binding of a node, for executemany; the bind names
# differ from the column names, which SQLAlchemy reserves for the SET clause.
_BIND_QUEUE_ID = (decisions.update()
                  .where(decisions.c.node == bindparam("b_node"),
                         decisions.c.instance == bindparam("b_instance"),
                         decisions.c.queue_id.is_(None))
                  .values(queue_id=bindparam("b_queue_id")))

def chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


FEEDBACK_COLUMNS = ("key", "received_at", "kind", "trusted", "reason", "tenant", "ip",
                    "recipient", "message_ref", "message_id", "bounce_reason", "bounce_class",
                    "dsn_status", "feedback_type", "source", "raw_size")


def _feedback_row(row: FeedbackRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in FEEDBACK_COLUMNS}


def _decision_row(row: DecisionRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in DECISION_COLUMNS}


class SqlRecordStore(DecisionStore, FeedbackStore):
    """``ports.DecisionStore`` and ``ports.FeedbackStore`` over a SQL store's transactions."""

    _insert: Any  # the dialect's INSERT (with ON CONFLICT), set by ``SqlStore``

    @abstractmethod
    def _write(self, action: str) -> AbstractContextManager[Connection]:
        """One write transaction."""

    @abstractmethod
    def _read(self, action: str) -> AbstractContextManager[Connection]:
        """One read transaction."""

    # -- routing decisions ---------------------------------------------------

    def add_decisions(self, rows: Sequence[DecisionRow]) -> None:
        """Append the decisions in one transaction; text is cleaned, not refused
        (see ``storable.clean_decision``)."""
        if not rows:
            return
        params = [_decision_row(clean_decision(row)) for row in rows]
        with self._write("add decisions") as conn:
            for chunk in chunks(params, DECISION_CHUNK):
                conn.execute(decisions.insert(), list(chunk))

    def bind_queue_ids(self, node: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Bind only rows without a queue id: a reused instance id keeps its old binding."""
        if not pairs:
            return
        node, cleaned = clean_bindings(node, pairs)
        params = [{"b_node": node, "b_instance": instance, "b_queue_id": queue_id}
                  for instance, queue_id in cleaned]
        with self._write("bind queue ids") as conn:
            for chunk in chunks(params, DECISION_CHUNK):
                conn.execute(_BIND_QUEUE_ID, list(chunk))

    def decisions(self, *, tenant: str | None = None, queue_id: str | None = None,
                  limit: int = 100) -> list[DecisionRow]:
        query = select(decisions).order_by(decisions.c.id.desc()).limit(max(limit, 0))
        tenant, queue_id = clean_filter(tenant), clean_filter(queue_id)
        if tenant is not None:
            query = query.where(decisions.c.tenant == tenant)
        if queue_id is not None:
            query = query.where(decisions.c.queue_id == queue_id)
        with self._read("read decisions") as conn:
            result = conn.execute(query).mappings().all()
        return [DecisionRow(**{name: row[name] for name in DECISION_COLUMNS})
                for row in result]

    # -- feedback mail ------------------------------------------------------------

    def add_feedback(self, rows: Sequence[FeedbackRow]) -> int:
        unique: dict[str, dict[str, Any]] = {}
        for row in rows:
            cleaned = _feedback_row(clean_feedback(row))
            unique.setdefault(cleaned["key"], cleaned)
        if not unique:
            return 0
        params = [unique[key] for key in sorted(unique)]  # one lock order for every writer
        stmt = (self._insert(feedback_table)
                .on_conflict_do_nothing(index_elements=[feedback_table.c.key])
                .returning(feedback_table.c.key))
        added = 0
        with self._write("add feedback") as conn:
            for chunk in chunks(params):
                added += len(conn.execute(stmt, list(chunk)).scalars().all())
        return added

    def feedback(self, *, trusted: bool | None = None, message_ref: str | None = None,
                 limit: int = 100) -> list[FeedbackRow]:
        query = (select(feedback_table).order_by(feedback_table.c.id.desc())
                 .limit(max(limit, 0)))
        if trusted is not None:
            query = query.where(feedback_table.c.trusted.is_(trusted))
        if message_ref is not None:
            query = query.where(feedback_table.c.message_ref == message_ref)
        with self._read("read feedback") as conn:
            result = conn.execute(query).mappings().all()
        return [FeedbackRow(**{name: row[name] for name in FEEDBACK_COLUMNS}, id=row["id"])
                for row in result]

    def feedback_counts(self) -> dict[str, int]:
        rejected = feedback_table.c.reason.like("rejected:%")
        query = (select(feedback_table.c.trusted, rejected.label("rejected"), func.count())
                 .group_by(feedback_table.c.trusted, rejected))
        with self._read("count feedback") as conn:
            result = conn.execute(query).all()
        counts = count_feedback(())
        for trusted, is_rejected, n in result:
            name = "trusted" if trusted else "rejected" if is_rejected else "untrusted"
            counts[name] += int(n)
        return counts
