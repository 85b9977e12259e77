"""API tokens, dashboard users, the audit log and alerts in the SQL store.

``SqlAccessStore`` is the part of ``SqlStore`` (``adapters.sqlstore``) that implements
``ports.AccessStore`` and ``ports.AlertStore``, on the transactions ``SqlStore`` opens
(``_write``/``_read``). Text is cleaned as every store cleans it (``adapters.storable``);
the audit log offers insert and select only.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager

from sqlalchemy import Connection, select

from poolwarden.adapters.schema import alerts as alerts_table
from poolwarden.adapters.schema import api_tokens, api_users, audit_log
from poolwarden.adapters.storable import clean_alert, clean_audit, clean_filter
from poolwarden.core.errors import StoreError
from poolwarden.ports import AccessStore, AlertRow, AlertStore, AuditRow, TokenRow, UserRow

TOKEN_COLUMNS = ("id", "name", "prefix", "token_hash", "role", "tenant", "created_at",
                 "created_by", "last_used_at", "revoked_at")
USER_COLUMNS = ("name", "role", "tenant", "salt", "password_hash", "created_at", "disabled")
AUDIT_COLUMNS = ("id", "at", "actor", "source", "action", "target", "before", "after")
ALERT_COLUMNS = ("at", "key", "kind", "subject", "text", "link", "numbers", "tenant", "ip",
                 "outcome", "id")


class SqlAccessStore(AccessStore, AlertStore):
    """``ports.AccessStore`` and ``ports.AlertStore`` over the transactions of a SQL store."""

    @abstractmethod
    def _write(self, action: str) -> AbstractContextManager[Connection]:
        """One write transaction."""

    @abstractmethod
    def _read(self, action: str) -> AbstractContextManager[Connection]:
        """One read transaction."""

    # -- API tokens, users, audit (ports.AccessStore) ------------------------

    def add_token(self, row: TokenRow) -> int:
        values = {name: getattr(row, name) for name in TOKEN_COLUMNS if name != "id"}
        with self._write("add a token") as conn:
            return int(conn.execute(api_tokens.insert().values(**values)
                                    .returning(api_tokens.c.id)).scalar_one())

    def tokens(self) -> list[TokenRow]:
        with self._read("read tokens") as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.id)).mappings().all()
        return [TokenRow(**{name: row[name] for name in TOKEN_COLUMNS}) for row in rows]

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        query = select(api_tokens).where(api_tokens.c.token_hash == token_hash)
        with self._read("read a token") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else TokenRow(**{name: row[name] for name in TOKEN_COLUMNS})

    def touch_token(self, token_id: int, at: float) -> None:
        with self._write("mark a token used") as conn:
            conn.execute(api_tokens.update().where(api_tokens.c.id == token_id)
                         .values(last_used_at=at))

    def revoke_token(self, token_id: int, at: float) -> bool:
        stmt = (api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at))
        with self._write("revoke a token") as conn:
            return bool(conn.execute(stmt).rowcount)

    def add_user(self, row: UserRow) -> None:
        values = {name: getattr(row, name) for name in USER_COLUMNS}
        with self._write("add a user") as conn:
            exists = conn.execute(select(api_users.c.name)
                                  .where(api_users.c.name == row.name)).first()
            if exists is not None:
                raise StoreError(f"store: user '{row.name}' exists")
            conn.execute(api_users.insert().values(**values))

    def users(self) -> list[UserRow]:
        with self._read("read users") as conn:
            rows = conn.execute(select(api_users).order_by(api_users.c.name)).mappings().all()
        return [UserRow(**{name: row[name] for name in USER_COLUMNS}) for row in rows]

    def user(self, name: str) -> UserRow | None:
        with self._read("read a user") as conn:
            row = conn.execute(select(api_users).where(api_users.c.name == name)
                               ).mappings().first()
        return None if row is None else UserRow(**{n: row[n] for n in USER_COLUMNS})

    def remove_user(self, name: str) -> bool:
        with self._write("remove a user") as conn:
            return bool(conn.execute(api_users.delete().where(api_users.c.name == name)
                                     ).rowcount)

    def add_audit(self, row: AuditRow) -> int:
        clean = clean_audit(row)
        values = {name: getattr(clean, name) for name in AUDIT_COLUMNS if name != "id"}
        with self._write("append to the audit log") as conn:
            return int(conn.execute(audit_log.insert().values(**values)
                                    .returning(audit_log.c.id)).scalar_one())

    def audit(self, *, actor: str | None = None, action: str | None = None,
              target: str | None = None, since: float | None = None,
              limit: int = 100) -> list[AuditRow]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(max(limit, 0))
        for column, value in ((audit_log.c.actor, actor), (audit_log.c.action, action),
                              (audit_log.c.target, target)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        with self._read("read the audit log") as conn:
            rows = conn.execute(query).mappings().all()
        return [AuditRow(**{name: row[name] for name in AUDIT_COLUMNS}) for row in rows]

    # -- alerts (ports.AlertStore) -------------------------------------------------

    def add_alert(self, row: AlertRow) -> int:
        clean = clean_alert(row)
        values = {name: getattr(clean, name) for name in ALERT_COLUMNS if name != "id"}
        with self._write("record an alert") as conn:
            return int(conn.execute(alerts_table.insert().values(**values)
                                    .returning(alerts_table.c.id)).scalar_one())

    def alerts(self, *, since: float | None = None, kind: str | None = None,
               tenant: str | None = None, limit: int = 100) -> list[AlertRow]:
        query = select(alerts_table).order_by(alerts_table.c.id.desc()).limit(max(limit, 0))
        if since is not None:
            query = query.where(alerts_table.c.at >= since)
        for column, value in ((alerts_table.c.kind, kind), (alerts_table.c.tenant, tenant)):
            value = clean_filter(value)
            if value is not None:
                query = query.where(column == value)
        with self._read("read alerts") as conn:
            rows = conn.execute(query).mappings().all()
        return [AlertRow(**{name: row[name] for name in ALERT_COLUMNS}) for row in rows]
