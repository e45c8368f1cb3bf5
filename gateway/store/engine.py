"""Database engines (SQLite tuned for concurrent writers, or PostgreSQL), migrations, error edge.

SQLite: WAL, ``synchronous=FULL``, a 30 s busy timeout, foreign keys on, and every write
transaction opened with ``BEGIN IMMEDIATE`` (the pysqlite recipe from the SQLAlchemy docs:
the driver's own BEGIN is switched off and we emit ours in the "begin" event). Taking the
write lock up front is what makes a second writer -- another thread or another process --
wait for the busy timeout instead of failing with "database is locked" when its deferred
read lock cannot be upgraded. Read-only work (connections with the execution option
``gateway_read_only=True``) opens with plain ``BEGIN`` so dashboards never queue behind writers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url

from gateway.errors import GatewayError, StoreError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant: serialises concurrent `migrate()` calls of several gateway nodes.
_PG_MIGRATION_LOCK = 0x6761_7465_7761_7901


def mask_url(url: str | URL) -> str:
    """``url`` rendered with its password replaced by ``***``, safe for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even parseable: show nothing that could be a secret
        return "<unparseable database URL>"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` / ``postgres://`` URLs get the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise StoreError(f"invalid database URL {mask_url(url)}: {e}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _describe(error: exc.SQLAlchemyError) -> str:
    # The driver's own message is the useful part; SQLAlchemy's str() adds the SQL and a URL.
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return " ".join(text.split()) or type(error).__name__


@contextlib.contextmanager
def store_errors(action: str, url: str | URL | None = None) -> Iterator[None]:
    """Translate SQLAlchemy/driver exceptions raised inside into StoreError naming ``action``."""
    try:
        yield
    except GatewayError:
        raise
    except exc.SQLAlchemyError as e:
        where = f" ({mask_url(url)})" if url is not None else ""
        raise StoreError(f"{action} failed{where}: {_describe(e)}") from e


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI objects
        # Let SQLAlchemy, not the sqlite3 module, decide when and how a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")   # per transaction, see _on_begin
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get("gateway_read_only"):
            conn.exec_driver_sql("BEGIN")
            return
        # WAL commits are sequential, so a FULL commit also makes every earlier NORMAL one durable.
        level = "FULL" if options.get("gateway_durable", True) else "NORMAL"
        info = conn.connection.info
        if info.get("synchronous") != level:
            conn.exec_driver_sql(f"PRAGMA synchronous = {level}")
            info["synchronous"] = level
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _install_postgresql_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # The PostgreSQL twin of SQLite's NORMAL: commit without waiting for the WAL flush
        # (never corrupts; a server crash may lose the last few ms of such commits).
        if conn.get_execution_options().get("gateway_durable") is False:
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def open_engine(url: str | URL) -> Engine:
    """Create the engine for ``url`` (SQLite file or PostgreSQL) with the store's settings.

    The parent directory of a SQLite database file is created. Nothing connects yet; the
    first use (normally :func:`migrate`) does.
    """
    parsed = normalize_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            path = _sqlite_file(parsed)
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreError(f"cannot create the directory of {path}: {e.strerror or e}") from e
            engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_S})
            _install_sqlite_hooks(engine)
        elif parsed.get_backend_name() == "postgresql":
            engine = sa.create_engine(parsed, pool_pre_ping=True)
            _install_postgresql_hooks(engine)
        else:
            raise StoreError(f"unsupported database {mask_url(parsed)}: use sqlite:/// or postgresql://")
    except exc.SQLAlchemyError as e:
        raise StoreError(f"cannot open database {mask_url(parsed)}: {_describe(e)}") from e
    except ImportError as e:  # e.g. psycopg missing: name the extra that provides it
        raise StoreError(f"cannot open database {mask_url(parsed)}: {e} (install edi-gateway[postgres])") from e
    return engine


def _alembic_config(connection: sa.Connection):  # noqa: ANN202 - alembic is imported lazily
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (alembic ``upgrade head``); a no-op when current.

    Runs in one transaction. Concurrent callers are serialised (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: a transaction-scoped advisory lock), so several nodes may start at once.
    """
    from alembic import command

    with store_errors("migrating the store schema", engine.url):
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            command.upgrade(_alembic_config(conn), "head")


def schema_revision(engine: Engine) -> str | None:
    """The alembic revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with store_errors("reading the schema revision", engine.url):
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
