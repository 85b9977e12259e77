"""The SQL store: ``ports.Store`` on SQLite (embedded default) or PostgreSQL.

SQLAlchemy Core only (no ORM), the same statements on both backends; the
schema comes from ``adapters.schema`` and is built by the Alembic migrations
that ``open_store`` applies. Every write is one transaction, and every driver
error leaves as ``StoreError`` with nothing partial written. Knows nothing of
services, configuration or the clock: times arrive inside the values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    Connection,
    Engine,
    String,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from poolwarden.adapters.dmarc_store import SqlDmarcStore
from poolwarden.adapters.event_rows import sqlite_add_rows, unique_rows
from poolwarden.adapters.listing_store import SqlListingStore
from poolwarden.adapters.reaction_store import (
    insert_activations,
    newest_activation_id,
    select_activations,
)
from poolwarden.adapters.schema import checkpoints as checkpoints_table
from poolwarden.adapters.schema import (
    counters,
    decisions,
    tenant_state,
    tier_moves,
)
from poolwarden.adapters.schema import events as events_table
from poolwarden.adapters.sql_access import SqlAccessStore
from poolwarden.adapters.sql_records import DECISION_COLUMNS, SqlRecordStore
from poolwarden.adapters.sql_records import chunks as _chunks
from poolwarden.adapters.storable import (
    MAX_DECISION_NAME_LENGTH,
    clean_filter,
    json_copy,
    json_dumps,
    ledger_of,
    unique_by_key,
)
from poolwarden.adapters.warmup_store import SqlWarmupStore
from poolwarden.core.blocklists import Listing
from poolwarden.core.counters import (
    COUNTER_COLUMNS,
    CounterDelta,
    EventRow,
    counter_deltas,
    event_deltas,
    event_of,
    row_of,
)
from poolwarden.core.errors import StoreError
from poolwarden.core.events import Event
from poolwarden.core.model import TenantStanding, Tier
from poolwarden.core.reaction import Activation
from poolwarden.core.reputation import COUNT_FIELDS, Counts, Ledger, Scope
from poolwarden.core.tiers import TierMove
from poolwarden.ports import (
    AddResult,
    Checkpoint,
    CounterRow,
    DecisionRow,
    ListingChange,
    Store,
    StoredRows,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
PG_CHUNK = 5_000  # events per statement on PostgreSQL (ten array parameters each)
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_CACHE_KIB = 65_536  # page cache per connection (PRAGMA cache_size, negative = KiB)
# WAL pages before a commit copies them into the database (SQLite's default is 1,000, 4 MB):
# an ingest batch rewrites the same counter and index pages; checkpointing every 64 MB
# writes them out once for several batches (bench_ingest_synthetic: the store 12 % faster)
SQLITE_WAL_CHECKPOINT_PAGES = 16_384
_PG_MIGRATION_LOCK = 0x706F6F6C  # pg_advisory_xact_lock key: one migrator at a time
_PG_MOVES_LOCK = 0x706F6F6D  # pg_advisory_xact_lock key: one writer of tier_moves at a time
_BEGIN_OPTION = "poolwarden_sqlite_begin"  # execution option: the BEGIN statement to send

EVENT_COLUMNS = ("key", "time", "day", "kind", "tenant", "provider", "ip", "sending_domain",
                 "recipient_domain", "reason")


def _pg_insert_events() -> Any:
    """INSERT … SELECT FROM unnest(one array per column) ON CONFLICT DO NOTHING RETURNING key.

    A short statement psycopg can cache, instead of thousands of bound values.
    Array elements are cast to unbounded types: a cast to varchar(1024) would
    silently truncate, while the assignment to the column raises on overflow.
    """
    arrays = [bindparam(name, type_=ARRAY(String if isinstance(events_table.c[name].type, String)
                                          else events_table.c[name].type))
              for name in EVENT_COLUMNS]
    source = func.unnest(*arrays).table_valued(*EVENT_COLUMNS).render_derived(name="src")
    return (postgresql.insert(events_table)
            .from_select(list(EVENT_COLUMNS), select(*source.c))
            .on_conflict_do_nothing(index_elements=[events_table.c.key])
            .returning(events_table.c.key))


_PG_INSERT_EVENTS = _pg_insert_events()


def _event_row(ev: Event) -> dict[str, Any]:
    return {"key": ev.key, "time": ev.time, "day": ev.day, "kind": ev.kind.value,
            "tenant": ev.tenant, "provider": ev.provider, "ip": ev.ip,
            "sending_domain": ev.sending_domain, "recipient_domain": ev.recipient_domain,
            "reason": ev.reason}


def _describe(exc: SQLAlchemyError) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).strip()}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy and driver errors as ``StoreError`` naming the action."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"store: {action} failed: {_describe(exc)}") from exc


def _on_sqlite_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Hand transaction control to SQLAlchemy (the "begin" listener below), so
    # DDL is transactional too and writers can take the lock up front.
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # the log ingest's batches touch ~10^5 index pages (random event keys): a 64 MiB
        # page cache per connection keeps them from spilling to the WAL mid-transaction
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_CHECKPOINT_PAGES}")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


class SqlStore(SqlAccessStore, SqlRecordStore, SqlWarmupStore, SqlDmarcStore, Store):
    """``ports.Store`` over a SQLAlchemy engine; ``open_store`` builds and migrates one.

    Given a fresh SQLite engine it installs the connection settings itself
    (WAL, synchronous=NORMAL, foreign keys, busy timeout, explicit BEGIN).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._listing_store = SqlListingStore(engine)
        dialect = engine.dialect.name
        if dialect == "sqlite":
            self._insert: Any = sqlite.insert
            event.listen(engine, "connect", _on_sqlite_connect)
            event.listen(engine, "begin", _on_sqlite_begin)
        elif dialect == "postgresql":
            self._insert = postgresql.insert
        else:
            raise StoreError(f"store: unsupported database '{dialect}' "
                             "(use sqlite:/// or postgresql+psycopg://)")

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the write lock at BEGIN."""
        with _translated(action), self._engine.connect() as conn:
            if self._engine.dialect.name == "sqlite":
                conn = conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with _translated(action), self._engine.connect() as conn, conn.begin():
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is there)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self._write("migrate the schema") as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except CommandError as exc:  # e.g. the database is newer than this code
            raise StoreError(f"store: migrate the schema failed: {exc}") from exc

    # -- events and counters -------------------------------------------------

    def add_events(self, events: Iterable[Event]) -> AddResult:
        received = list(events)
        unique = unique_by_key(received)
        with self._write("add events") as conn:
            new_keys = self._insert_events(conn, unique)
            added = [ev for ev in unique if ev.key in new_keys]
            deltas = tuple(event_deltas(added))
            self._upsert_counters(conn, deltas)
        return AddResult(added=len(added), duplicates=len(received) - len(added),
                         added_events=tuple(added), deltas=deltas)

    def _insert_events(self, conn: Connection, unique: Sequence[Event]) -> set[str]:
        """Insert what is new; the keys that really were (others exist already)."""
        new_keys: set[str] = set()
        # Key order is lock order: concurrent writers of overlapping batches
        # wait for each other instead of deadlocking.
        unique = sorted(unique, key=lambda ev: ev.key)
        if conn.dialect.name == "postgresql":
            for chunk in _chunks(unique, PG_CHUNK):
                rows = [_event_row(ev) for ev in chunk]
                arrays = {name: [row[name] for row in rows] for name in EVENT_COLUMNS}
                new_keys.update(conn.execute(_PG_INSERT_EVENTS, arrays).scalars())
            return new_keys
        stmt = (sqlite.insert(events_table)
                .on_conflict_do_nothing(index_elements=[events_table.c.key])
                .returning(events_table.c.key))
        for chunk in _chunks(unique):
            new_keys.update(conn.execute(stmt, [_event_row(ev) for ev in chunk]).scalars())
        return new_keys

    def _upsert_counters(self, conn: Connection, deltas: Sequence[CounterDelta]) -> None:
        """Add the deltas (``core.counters``: in key order, one lock order for every writer,
        so no deadlocks on PostgreSQL) to the stored counters."""
        if not deltas:
            return
        ins = self._insert(counters)
        stmt = ins.on_conflict_do_update(
            index_elements=[counters.c.scope, counters.c.scope_id, counters.c.provider,
                            counters.c.day],
            set_={name: counters.c[name] + ins.excluded[name] for name in COUNT_FIELDS})
        params = [dict(zip(COUNTER_COLUMNS, delta, strict=True)) for delta in deltas]
        for chunk in _chunks(params):
            conn.execute(stmt, list(chunk))

    def counters(self, *, since_day: int) -> list[CounterRow]:
        query = select(counters).where(counters.c.day >= since_day)
        with self._read("read counters") as conn:
            result = conn.execute(query).mappings().all()
        return [CounterRow(scope=Scope(row["scope"]), scope_id=row["scope_id"],
                           provider=row["provider"], day=row["day"],
                           counts=Counts(*(row[name] for name in COUNT_FIELDS)))
                for row in result]

    def load_ledger(self, since_day: int) -> Ledger:
        """A Ledger holding every stored counter from ``since_day`` on."""
        return ledger_of(self.counters(since_day=since_day))

    def event_count(self) -> int:
        with self._read("count events") as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())

    # -- standings and moves -------------------------------------------------

    def standings(self) -> dict[str, TenantStanding]:
        with self._read("read standings") as conn:
            rows = conn.execute(select(tenant_state)).mappings().all()
        return {row["tenant"]: TenantStanding(tier=Tier(row["tier"]), since=row["since"],
                                              pinned=bool(row["pinned"]),
                                              pinned_by=row["pinned_by"],
                                              pinned_why=row["pinned_why"])
                for row in rows}

    def record_moves(self, moves: Sequence[TierMove]) -> None:
        if not moves:
            return
        latest = {move.tenant: move for move in moves}  # the last move of a tenant wins
        ins = self._insert(tenant_state)
        upsert = ins.on_conflict_do_update(
            index_elements=[tenant_state.c.tenant],
            set_={name: ins.excluded[name]
                  for name in ("tier", "since", "pinned", "pinned_by", "pinned_why")})
        rows = [_move_row(m) for m in moves]  # refuses evidence that is not JSON, up front
        with self._write("record tier moves") as conn:
            _lock_moves(conn)
            for chunk in _chunks(rows):
                conn.execute(tier_moves.insert(), list(chunk))
            states = [_state_row(latest[tenant]) for tenant in sorted(latest)]
            for chunk in _chunks(states):
                conn.execute(upsert, list(chunk))

    def clear_pin(self, tenant: str, *, actor: str, why: str, at: float, source: str) -> None:
        """Unpin ``tenant``; a no-op (nothing recorded) when it has no pin."""
        unpin = (tenant_state.update()
                 .where(tenant_state.c.tenant == tenant, tenant_state.c.pinned.is_(True))
                 .values(pinned=False, pinned_by=None, pinned_why=None)
                 .returning(tenant_state.c.tier))
        with self._write("clear pin") as conn:
            _lock_moves(conn)
            tier = conn.execute(unpin).scalar_one_or_none()
            if tier is None:
                return
            move = TierMove(tenant=tenant, before=Tier(tier), after=Tier(tier), at=at,
                            rule="override_cleared", reason=why, actor=actor, source=source)
            conn.execute(tier_moves.insert(), [_move_row(move)])

    def moves(self, tenant: str | None = None, *, limit: int = 100) -> list[TierMove]:
        query = select(tier_moves).order_by(tier_moves.c.id.desc()).limit(max(limit, 0))
        if tenant is not None:
            query = query.where(tier_moves.c.tenant == tenant)
        with self._read("read tier moves") as conn:
            rows = conn.execute(query).mappings().all()
        return [TierMove(tenant=row["tenant"], before=Tier(row["before"]),
                         after=Tier(row["after"]), at=row["at"], rule=row["rule"],
                         reason=row["reason"], actor=row["actor"], source=row["source"],
                         metrics=row["metrics"], thresholds=row["thresholds"],
                         pinned=bool(row["pinned"]))
                for row in rows]

    def change_marker(self) -> int:
        """The newest tier move id (0 before any): moves are only ever appended, one
        or more by every ``record_moves`` or ``clear_pin`` that changes anything, and
        ``_lock_moves`` makes ids become visible in increasing order."""
        # plus the newest reaction activation id: an activation changes routing too (both
        # only grow, so the sum moves with every change of either)
        query = select(func.coalesce(func.max(tier_moves.c.id), 0)
                       + newest_activation_id())
        with self._read("read the change marker") as conn:
            return int(conn.execute(query).scalar_one())

    # -- reaction-rule activations (adapters.reaction_store) -----------------

    def add_reaction_activations(self, rows: Sequence[Activation], *, recorded_at: float
                                 ) -> list[Activation]:
        if not rows:
            return []
        with self._write("add reaction activations") as conn:
            return insert_activations(conn, self._insert, rows, recorded_at)

    def reaction_activations(self, *, after_id: int | None = None, since: float | None = None,
                             active_at: float | None = None, ip: str | None = None,
                             tenant: str | None = None, limit: int = 100) -> list[Activation]:
        with self._read("read reaction activations") as conn:
            return select_activations(
                conn, after_id=after_id, since=since, active_at=active_at, ip=ip,
                tenant=tenant, limit=limit)

    # -- log checkpoints (ingestd) ---------------------------------------------

    def checkpoint(self, source: str) -> Checkpoint | None:
        query = select(checkpoints_table).where(checkpoints_table.c.source == source)
        with self._read("read a log checkpoint") as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return Checkpoint(**{name: row[name] for name in CHECKPOINT_COLUMNS
                             if name not in ("inode", "device")},
                          inode=_unsigned(row["inode"]), device=_unsigned(row["device"]))

    def add_events_at(self, events: Iterable[Event], checkpoint: Checkpoint | None
                      ) -> AddResult:
        """``add_events`` plus the log's read position, in one transaction. On SQLite the
        rows go through the driver's executemany (the log-ingest hot path); PostgreSQL
        takes the same statements as ``add_events``."""
        received = list(events)
        unique = unique_by_key(received)
        row = None if checkpoint is None else _checkpoint_row(checkpoint)
        with self._write("add events and a log checkpoint") as conn:
            if conn.dialect.name == "sqlite":
                added, deltas = _sqlite_add_events(conn, unique)
            else:
                new_keys = self._insert_events(conn, unique)
                added = [ev for ev in unique if ev.key in new_keys]
                deltas = event_deltas(added)
                self._upsert_counters(conn, deltas)
            if row is not None:
                self._put_checkpoint(conn, row)
        return AddResult(added=len(added), duplicates=len(received) - len(added),
                         added_events=tuple(added), deltas=tuple(deltas))

    def add_event_rows_at(self, rows: Iterable[EventRow], checkpoint: Checkpoint | None
                          ) -> StoredRows:
        """``add_events_at`` for events as row tuples (``core.counters.EventRow``: the log
        ingest's bulk path, no ``Event`` per row); the rows newly stored and their
        deltas. One transaction, refuses what ``add_events_at`` refuses."""
        unique = unique_rows(rows)
        row = None if checkpoint is None else _checkpoint_row(checkpoint)
        with self._write("add events and a log checkpoint") as conn:
            if conn.dialect.name == "sqlite":
                added, deltas = sqlite_add_rows(conn.connection.dbapi_connection, unique)
            else:
                new_keys = self._insert_events(conn, [event_of(r) for r in unique])
                added = [r for r in unique if r[0] in new_keys]
                deltas = counter_deltas(added)
                self._upsert_counters(conn, deltas)
            if row is not None:
                self._put_checkpoint(conn, row)
        return StoredRows(added=added, deltas=deltas)

    def _put_checkpoint(self, conn: Connection, row: dict[str, Any]) -> None:
        ins = self._insert(checkpoints_table)
        conn.execute(ins.on_conflict_do_update(
            index_elements=[checkpoints_table.c.source],
            set_={name: ins.excluded[name] for name in CHECKPOINT_COLUMNS
                  if name != "source"}), row)

    def decisions_for_queue_ids(self, queue_ids: Sequence[str], *, since: float
                                ) -> list[DecisionRow]:
        unique = set(queue_ids)
        if "".join(unique).isalnum() and max(map(len, unique)) <= MAX_DECISION_NAME_LENGTH:
            wanted = list(unique)  # log queue ids: nothing to clean (one C-level check)
        else:
            wanted = [q for q in map(clean_filter, unique) if q is not None]
        out: list[DecisionRow] = []
        if not wanted:
            return out
        with self._read("read decisions by queue id") as conn:
            if conn.dialect.name == "sqlite":
                # the ingest asks for ~35,000 ids a batch: one JSON parameter, no IN list
                # of bound values to build and compile per chunk
                ids = func.json_each(json.dumps(wanted)).table_valued("value")
                queries = [select(decisions).where(decisions.c.queue_id.in_(select(ids.c.value)),
                                                   decisions.c.at >= since)]
            else:
                queries = [select(decisions).where(decisions.c.queue_id.in_(list(chunk)),
                                                   decisions.c.at >= since)
                           for chunk in _chunks(sorted(wanted))]
            for query in queries:
                out.extend(DecisionRow(**{name: row[name] for name in DECISION_COLUMNS})
                           for row in conn.execute(query).mappings())
        return out

    # -- blocklist listings (``ports.ListingStore``), kept beside the rest ----------------

    def listings(self) -> list[Listing]:
        return self._listing_store.listings()

    def save_listings(self, states: Sequence[Listing], changes: Sequence[ListingChange]
                      ) -> None:
        self._listing_store.save_listings(states, changes)

    def listing_history(self, *, target: str | None = None, limit: int = 100
                        ) -> list[ListingChange]:
        return self._listing_store.listing_history(target=target, limit=limit)


    def close(self) -> None:
        self._engine.dispose()


def _lock_moves(conn: Connection) -> None:
    """On PostgreSQL, hold one lock over writers of ``tier_moves`` until commit.

    Ids come from a sequence when inserted, but become visible at commit: two
    concurrent writers could commit ids 11 then 10, and a poller that saw 11
    would never learn of 10. Serialized, ids become visible in order, so
    ``change_marker`` (the largest id) grows with every committed change.
    SQLite needs nothing: BEGIN IMMEDIATE already serializes writers.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_MOVES_LOCK)))




def _move_row(move: TierMove) -> dict[str, Any]:
    return {"tenant": move.tenant, "at": move.at, "before": move.before.value,
            "after": move.after.value, "rule": move.rule, "reason": move.reason,
            "actor": move.actor, "source": move.source,
            "metrics": json_copy(move.metrics, f"metrics of the move of {move.tenant}"),
            "thresholds": json_copy(move.thresholds, f"thresholds of the move of {move.tenant}"),
            "pinned": move.pinned}


def _state_row(move: TierMove) -> dict[str, Any]:
    return {"tenant": move.tenant, "tier": move.after.value, "since": move.at,
            "pinned": move.pinned, "pinned_by": move.actor if move.pinned else None,
            "pinned_why": move.reason if move.pinned else None}


CHECKPOINT_COLUMNS = ("source", "fingerprint", "inode", "device", "offset", "resume_offset",
                      "resume_fingerprint", "mtime", "year", "month", "updated_at")
_U64 = 1 << 64


def _signed(value: int) -> int:
    """An unsigned 64-bit inode or device number as BIGINT stores it (two's complement)."""
    value %= _U64
    return value - _U64 if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value % _U64


def _checkpoint_row(cp: Checkpoint) -> dict[str, Any]:
    row = {name: getattr(cp, name) for name in CHECKPOINT_COLUMNS}
    row["inode"], row["device"] = _signed(cp.inode), _signed(cp.device)
    row["source"] = cp.source[:1024]
    for name in ("offset", "resume_offset"):
        if not 0 <= row[name] < 1 << 63:
            raise StoreError(f"store: checkpoint of {cp.source!r}: {name} {row[name]} is out "
                             "of range")
    return row


def _sqlite_add_events(conn: Connection, unique: Sequence[Event]
                       ) -> tuple[list[Event], list[CounterDelta]]:
    """The new events of ``unique`` and their deltas, inserted and counted as
    ``event_rows.sqlite_add_rows`` does the log ingest's rows (one path for both)."""
    rows = [row_of(ev) for ev in unique]
    added, deltas = sqlite_add_rows(conn.connection.dbapi_connection, rows)
    if len(added) == len(unique):
        return list(unique), deltas
    new_keys = {row[0] for row in added}
    return [ev for ev in unique if ev.key in new_keys], deltas


def open_store(url: str) -> SqlStore:
    """Connect to ``url`` (``sqlite:///path`` or ``postgresql+psycopg://…``) and migrate.

    ``sqlite://`` (no path) is a private in-memory database on one shared
    connection: for single-threaded throwaway use. Raises ``StoreError`` when
    the database cannot be reached or migrated.
    """
    try:
        parsed = make_url(url)
        options: dict[str, Any] = {"json_serializer": json_dumps}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                options.update(poolclass=StaticPool,
                               connect_args={"check_same_thread": False})
        else:
            options["pool_pre_ping"] = True
        engine = create_engine(parsed, **options)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise StoreError(f"store: unusable database URL: {exc}") from exc
    try:
        store = SqlStore(engine)
        store.migrate()
    except BaseException:
        engine.dispose()
        raise
    return store
