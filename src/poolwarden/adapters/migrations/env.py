"""Alembic environment: runs the store's migrations on the connection it is handed.

``poolwarden.adapters.sqlstore`` builds the Alembic config in code and passes
an open connection as ``config.attributes["connection"]``; this module only
binds Alembic to that connection and the schema metadata. With no connection
(an operator running ``alembic`` by hand) it opens ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from poolwarden.adapters.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    engine = create_engine(url)
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("poolwarden migrations run online only (they need a connection)")
run_migrations_online()
