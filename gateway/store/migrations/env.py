"""Alembic environment for the store: runs on the connection handed over by ``engine.migrate``."""

from __future__ import annotations

from alembic import context

from gateway.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the store's migrations run through gateway.store.engine.migrate(engine), "
        "which passes its connection; there is no alembic.ini"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things: later migrations use batch mode (copy-and-move).
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

# migrate() already opened the transaction; alembic joins it instead of committing itself.
with context.begin_transaction():
    context.run_migrations()
