"""Shared pytest fixtures, grouped by the part of the gateway they serve.

Store backends: ``store`` (and ``store_url``, ``open_store``) run a test on SQLite (a file
under tmp_path) and on PostgreSQL (a fresh ``gw_test_<random>`` database per session on the
server at $GATEWAY_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test, dropped at
the end; skipped with the reason when unreachable).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gateway.store import Store

# --------------------------------------------------------------------------- store backends

PG_ADMIN_URL = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_STORE_TABLES = ("alerts", "web_sessions", "users", "as2_sent", "api_submissions", "schedule_leases",
                 "ack_expectations", "interchanges_seen", "control_numbers", "receipts", "events",
                 "deliveries", "documents", "messages")


def _libpq_url(url: str) -> str:
    """The URL as libpq/psycopg reads it (no SQLAlchemy ``+driver`` suffix)."""
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL database created for this test session and dropped after it."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    from psycopg import sql
    from sqlalchemy.engine import make_url

    shown = make_url(PG_ADMIN_URL).render_as_string(hide_password=True)
    try:
        admin = psycopg.connect(_libpq_url(PG_ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        pytest.skip(f"PostgreSQL unreachable at {shown} (set GATEWAY_TEST_PG): {str(e).strip()}")
    name = f"gw_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _with_database(PG_ADMIN_URL, name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _empty_pg_tables(url: str) -> None:
    """Remove the rows a previous test left (the schema stays; migrations are per session)."""
    import psycopg

    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        present = [t for t in _STORE_TABLES if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]]
        if present:
            conn.execute("TRUNCATE " + ", ".join(present) + " RESTART IDENTITY")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Database URL for one test: a SQLite file in tmp_path, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'gateway.sqlite'}"
    url = request.getfixturevalue("pg_url")
    _empty_pg_tables(url)
    return url


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    """The blob directory shared by every Store a test opens."""
    return tmp_path / "var" / "blobs"


@pytest.fixture
def open_store(store_url: str, blob_dir: Path) -> Iterator[Callable[..., Store]]:
    """Factory opening (and migrating) more Stores on the test's database; all closed after."""
    from gateway.store import Store

    opened: list[Store] = []

    def _open(**kwargs: object) -> Store:
        s = Store.open(store_url, blob_dir, **kwargs)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Callable[..., Store]) -> Store:
    """A migrated, empty Store (SQLite and PostgreSQL variants)."""
    return open_store()


@pytest.fixture
def target():
    """A real REST target on 127.0.0.1 that records every request (tests/harness.py RecordingTarget)."""
    from harness import RecordingTarget

    recording = RecordingTarget()
    yield recording
    recording.close()
