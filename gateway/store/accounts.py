"""Dashboard accounts and their sessions: users (role, password hash) and web_sessions (token hashes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from gateway.errors import StoreError
from gateway.store.base import StoreBase, now_or
from gateway.store.tables import USER_ROLES, users, web_sessions


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One dashboard account (a row of ``users``); the hash never shows in a repr."""

    name: str
    role: str
    password_hash: str = field(repr=False)
    disabled: bool
    last_login_at: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A live dashboard session joined with its user: who, which role, the session's CSRF token."""

    token_sha256: str
    user_name: str
    role: str
    csrf: str = field(repr=False)
    created_at: float
    expires_at: float
    last_seen_at: float


_USER_COLUMNS = (users.c.name, users.c.role, users.c.password_hash, users.c.disabled, users.c.last_login_at,
                 users.c.created_at, users.c.updated_at)
_SELECT_USER = sa.select(*_USER_COLUMNS).where(users.c.name == sa.bindparam("user_name"))
_SELECT_USERS = sa.select(*_USER_COLUMNS).order_by(users.c.name)
_INSERT_USER = users.insert()
_UPDATE_PASSWORD = (users.update().where(users.c.name == sa.bindparam("user_name"))
                    .values(password_hash=sa.bindparam("new_hash"), updated_at=sa.bindparam("at")))
_UPDATE_ROLE = (users.update().where(users.c.name == sa.bindparam("user_name"))
                .values(role=sa.bindparam("new_role"), updated_at=sa.bindparam("at")))
_UPDATE_DISABLED = (users.update().where(users.c.name == sa.bindparam("user_name"))
                    .values(disabled=sa.bindparam("is_disabled"), updated_at=sa.bindparam("at")))
_UPDATE_LOGIN = (users.update().where(users.c.name == sa.bindparam("user_name"))
                 .values(last_login_at=sa.bindparam("at")))
_DELETE_USER = users.delete().where(users.c.name == sa.bindparam("user_name"))

_INSERT_SESSION = web_sessions.insert()
# A session counts only while unexpired and its user exists and is enabled: disabling an account
# or removing it ends its sessions at once, whatever the cookie says.
_SELECT_SESSION = (
    sa.select(web_sessions.c.token_sha256, web_sessions.c.user_name, users.c.role, web_sessions.c.csrf,
              web_sessions.c.created_at, web_sessions.c.expires_at, web_sessions.c.last_seen_at)
    .join(users, users.c.name == web_sessions.c.user_name)
    .where(web_sessions.c.token_sha256 == sa.bindparam("token"), web_sessions.c.expires_at > sa.bindparam("now"),
           users.c.disabled == sa.false())
)
_TOUCH_SESSION = (web_sessions.update().where(web_sessions.c.token_sha256 == sa.bindparam("token"))
                  .values(last_seen_at=sa.bindparam("at")))
_DELETE_SESSION = web_sessions.delete().where(web_sessions.c.token_sha256 == sa.bindparam("token"))
# SQLite enforces the ON DELETE CASCADE only with foreign keys switched on: delete explicitly.
_DELETE_USER_SESSIONS = web_sessions.delete().where(web_sessions.c.user_name == sa.bindparam("user_name"))
_DELETE_EXPIRED = web_sessions.delete().where(web_sessions.c.expires_at <= sa.bindparam("now"))


def _check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise StoreError(f"unknown role {role!r}: use {' or '.join(USER_ROLES)}")
    return role


class AccountsMixin(StoreBase):
    """add_user / user / users / set_password / set_role / set_disabled / remove_user, and sessions.

    Passwords never reach the store: callers pass an scrypt hash (gateway.config_sftp.hash_password).
    Sessions are stored by the SHA-256 of their cookie token, so a copy of the database does not
    let anyone in.
    """

    def add_user(self, name: str, role: str, password_hash: str, *, now: float | None = None) -> UserRecord:
        """Create an account; StoreError if the name is taken or the role unknown."""
        at = now_or(now)
        _check_role(role)
        with self._write("adding a user") as conn:
            if conn.execute(_SELECT_USER, {"user_name": name}).first() is not None:
                raise StoreError(f"user {name!r} exists already")
            conn.execute(_INSERT_USER, {"name": name, "role": role, "password_hash": password_hash,
                                        "disabled": False, "last_login_at": None, "created_at": at,
                                        "updated_at": at})
        return UserRecord(name, role, password_hash, False, None, at, at)

    def user(self, name: str) -> UserRecord | None:
        """One account, or None."""
        with self._read("reading a user") as conn:
            row = conn.execute(_SELECT_USER, {"user_name": name}).first()
        return UserRecord(*row) if row is not None else None

    def users(self) -> list[UserRecord]:
        """Every account, by name."""
        with self._read("listing users") as conn:
            return [UserRecord(*row) for row in conn.execute(_SELECT_USERS).all()]

    def _change_user(self, action: str, statement: sa.Update, params: dict, *, end_sessions: bool) -> None:
        with self._write(action) as conn:
            if conn.execute(statement, params).rowcount == 0:
                raise StoreError(f"unknown user {params['user_name']!r}")
            if end_sessions:
                conn.execute(_DELETE_USER_SESSIONS, {"user_name": params["user_name"]})

    def set_password(self, name: str, password_hash: str, *, now: float | None = None) -> None:
        """Replace an account's password hash and end its sessions (a stolen cookie dies with the old password)."""
        self._change_user("changing a password", _UPDATE_PASSWORD,
                          {"user_name": name, "new_hash": password_hash, "at": now_or(now)}, end_sessions=True)

    def set_role(self, name: str, role: str, *, now: float | None = None) -> None:
        """Change an account's role; its sessions end so the new role applies at once."""
        self._change_user("changing a role", _UPDATE_ROLE,
                          {"user_name": name, "new_role": _check_role(role), "at": now_or(now)}, end_sessions=True)

    def set_disabled(self, name: str, disabled: bool, *, now: float | None = None) -> None:
        """Disable (or enable) an account; disabling ends its sessions."""
        self._change_user("disabling a user", _UPDATE_DISABLED,
                          {"user_name": name, "is_disabled": disabled, "at": now_or(now)}, end_sessions=disabled)

    def remove_user(self, name: str) -> None:
        """Delete an account and its sessions; StoreError if there is no such account."""
        with self._write("removing a user") as conn:
            conn.execute(_DELETE_USER_SESSIONS, {"user_name": name})
            if conn.execute(_DELETE_USER, {"user_name": name}).rowcount == 0:
                raise StoreError(f"unknown user {name!r}")

    def note_login(self, name: str, *, now: float | None = None) -> None:
        """Record a successful login's time."""
        with self._write("recording a login") as conn:
            conn.execute(_UPDATE_LOGIN, {"user_name": name, "at": now_or(now)})

    def create_session(self, user_name: str, token_sha256: str, csrf: str, *, expires_at: float,
                       now: float | None = None) -> None:
        """Store a new session by its token's hash (and purge expired ones while at it)."""
        at = now_or(now)
        with self._write("opening a session") as conn:
            conn.execute(_DELETE_EXPIRED, {"now": at})
            conn.execute(_INSERT_SESSION, {"token_sha256": token_sha256, "user_name": user_name, "csrf": csrf,
                                           "created_at": at, "expires_at": expires_at, "last_seen_at": at})

    def session(self, token_sha256: str, *, now: float | None = None) -> SessionRecord | None:
        """The live session with this token hash (unexpired, user enabled), or None."""
        with self._read("reading a session") as conn:
            row = conn.execute(_SELECT_SESSION, {"token": token_sha256, "now": now_or(now)}).first()
        return SessionRecord(*row) if row is not None else None

    def touch_session(self, token_sha256: str, *, now: float | None = None) -> None:
        """Record that a session was used (callers do it at most once a minute: it is a write)."""
        with self._write("touching a session") as conn:
            conn.execute(_TOUCH_SESSION, {"token": token_sha256, "at": now_or(now)})

    def end_session(self, token_sha256: str) -> None:
        """Delete a session (logout); nothing happens if it is gone already."""
        with self._write("ending a session") as conn:
            conn.execute(_DELETE_SESSION, {"token": token_sha256})

    def purge_sessions(self, *, now: float | None = None) -> int:
        """Delete expired sessions; returns how many."""
        with self._write("purging sessions") as conn:
            return conn.execute(_DELETE_EXPIRED, {"now": now_or(now)}).rowcount
