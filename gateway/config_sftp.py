"""The SFTP parts of a deployment: gateway.toml [sftp] (our server), a partner's [sftp] and [sftp_remote] tables.

Read with config.py's ``_Reader`` so problems come out as ``file: key: problem`` lines. Keys
are parsed here (asyncssh), so ``gateway check`` finds a bad key line before a partner's login
does. Passwords are never stored: a partner's ``password_hash`` is an scrypt hash made by
:func:`hash_password` (``gateway partners passwd``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import _Reader

USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
AFTER_DOWNLOAD = ("keep", "delete", "archive")
AFTER_POLL = ("delete", "move", "keep")
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): what a partner file stores instead of a password."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=2**26, dklen=32, **_SCRYPT)
    enc = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${enc(salt).decode()}${enc(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` value (False if malformed)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=2**26, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class SftpServerSettings:
    """gateway.toml [sftp]: our SFTP server for partners (starts when a partner has an [sftp] account)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2222
    host_keys: tuple[Path, ...] = ()          # private host keys; `gateway init` makes certs/ssh_host_ed25519_key
    root: Path = Path("var/sftp")             # each partner's home is <root>/<ID> with inbox/ and outbox/
    idle_timeout: float = 300.0
    login_timeout: float = 30.0
    max_file_bytes: int = 500 * 2**20
    max_failures: int = 5                     # failed logins (per address and per account) before a ban
    ban_seconds: float = 60.0                 # first ban; doubles with every further ban
    max_connections: int = 100                # whole server


@dataclass(frozen=True)
class PartnerSftp:
    """A partner's account on our SFTP server."""

    username: str
    authorized_keys: tuple[str, ...] = ()     # OpenSSH public key lines
    password_hash: str = ""                   # hash_password(); empty = no password login
    max_connections: int = 4
    after_download: str = "keep"              # what happens to an outbox file once downloaded


@dataclass(frozen=True)
class PartnerSftpRemote:
    """The partner's own SFTP server: we push to ``upload_dir`` and poll ``poll_dir``."""

    host: str
    port: int = 22
    username: str = ""
    key: Path | None = None                   # our private key file for them
    password: str = ""                        # resolved secret (never logged)
    host_key: str = ""                        # pinned: "ssh-ed25519 AAAA..." (their server's public key)
    upload_dir: str = ""                      # "" = we do not push to them
    poll_dir: str = ""                        # "" = we do not poll them
    poll_seconds: float = 60.0
    after_poll: str = "delete"                # delete | move (to move_dir) | keep (fetched once by name+size+mtime)
    move_dir: str = ""
    timeout: float = 30.0


def _path(home: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


def _public_key_problem(line: str) -> str | None:
    import asyncssh

    try:
        asyncssh.import_authorized_keys(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        return str(exc)
    return None


def read_sftp_server(r: "_Reader", data: dict, home: Path) -> SftpServerSettings:
    """gateway.toml [sftp]."""
    p = "sftp."
    r.unknown(data, {"enabled", "host", "port", "host_keys", "root", "idle_timeout", "login_timeout", "max_file_mb",
                     "max_failures", "ban_seconds", "max_connections"}, p)
    keys = []
    for index, value in enumerate(r.value(data, "host_keys", list, [], p)):
        if not isinstance(value, str) or not _path(home, value).is_file():
            r.problem(f"{p}host_keys[{index}]", f"no such host key file: {value!r} (`gateway init` makes one)")
        else:
            keys.append(_path(home, value))
    return SftpServerSettings(
        enabled=r.value(data, "enabled", bool, True, p),
        host=r.value(data, "host", str, "127.0.0.1", p),
        port=r.value(data, "port", int, 2222, p, minimum=0),
        host_keys=tuple(keys),
        root=_path(home, r.value(data, "root", str, "var/sftp", p)),
        idle_timeout=r.value(data, "idle_timeout", float, 300.0, p, minimum=1),
        login_timeout=r.value(data, "login_timeout", float, 30.0, p, minimum=1),
        max_file_bytes=int(r.value(data, "max_file_mb", float, 500.0, p, minimum=0.001) * 2**20),
        max_failures=r.value(data, "max_failures", int, 5, p, minimum=1),
        ban_seconds=r.value(data, "ban_seconds", float, 60.0, p, minimum=0),
        max_connections=r.value(data, "max_connections", int, 100, p, minimum=1),
    )


def read_partner_sftp(r: "_Reader", data: dict, partner_id: str, home: Path) -> PartnerSftp | None:
    """A partner file's [sftp] table: their account on our server (None when absent)."""
    if not data:
        return None
    p = "sftp."
    r.unknown(data, {"username", "authorized_keys", "authorized_keys_file", "password_hash", "max_connections",
                     "after_download"}, p)
    username = r.value(data, "username", str, partner_id.lower(), p)
    if not USERNAME.match(username):
        r.problem(p + "username", "1-32 characters: lowercase letters, digits, '_', '.', '-'")
    keys: list[str] = []
    for index, line in enumerate(r.value(data, "authorized_keys", list, [], p)):
        problem = _public_key_problem(line) if isinstance(line, str) else "must be a string"
        if problem:
            r.problem(f"{p}authorized_keys[{index}]", f"not an OpenSSH public key: {problem}")
        else:
            keys.append(line.strip())
    keys_file = r.value(data, "authorized_keys_file", str, "", p)
    if keys_file:
        try:
            text = _path(home, keys_file).read_text()
        except OSError as exc:
            r.problem(p + "authorized_keys_file", f"cannot read {keys_file}: {exc.strerror}")
        else:
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    if problem := _public_key_problem(line):
                        r.problem(p + "authorized_keys_file", f"{keys_file} line {number}: {problem}")
                    else:
                        keys.append(line.strip())
    password_hash = r.value(data, "password_hash", str, "", p)
    if password_hash and not password_hash.startswith("scrypt$"):
        r.problem(p + "password_hash", "must be a hash from `gateway partners passwd` (never a password)")
    if not keys and not password_hash:
        r.problem("sftp", "an SFTP account needs authorized_keys and/or password_hash")
    after = r.value(data, "after_download", str, "keep", p)
    if after not in AFTER_DOWNLOAD:
        r.problem(p + "after_download", f"must be one of {', '.join(AFTER_DOWNLOAD)}")
    return PartnerSftp(username=username, authorized_keys=tuple(keys), password_hash=password_hash,
                       max_connections=r.value(data, "max_connections", int, 4, p, minimum=1), after_download=after)


def read_partner_sftp_remote(r: "_Reader", data: dict, home: Path) -> PartnerSftpRemote | None:
    """A partner file's [sftp_remote] table: their server (None when absent)."""
    if not data:
        return None
    p = "sftp_remote."
    r.unknown(data, {"host", "port", "username", "key", "password", "host_key", "upload_dir", "poll_dir",
                     "poll_seconds", "after_poll", "move_dir", "timeout"}, p)
    host = r.value(data, "host", str, "", p)
    if not host:
        r.problem(p + "host", "the partner's SFTP host is required")
    host_key = r.value(data, "host_key", str, "", p)
    if not host_key:
        r.problem(p + "host_key", "pin their server's public key (`ssh-keyscan -t ed25519 HOST`): an unpinned "
                  "host key is never accepted")
    elif problem := _public_key_problem(host_key):
        r.problem(p + "host_key", f"not an OpenSSH public key: {problem}")
    key = r.value(data, "key", str, "", p)
    if key and not _path(home, key).is_file():
        r.problem(p + "key", f"no such private key file: {key}")
    ref, password = r.secret(data, "password", p)
    if not key and not ref:
        r.problem(p + "key", "log in with a key file and/or a password reference (env:NAME)")
    after = r.value(data, "after_poll", str, "delete", p)
    if after not in AFTER_POLL:
        r.problem(p + "after_poll", f"must be one of {', '.join(AFTER_POLL)}")
    move_dir = r.value(data, "move_dir", str, "", p)
    if after == "move" and not move_dir:
        r.problem(p + "move_dir", "after_poll = \"move\" needs move_dir")
    return PartnerSftpRemote(
        host=host, port=r.value(data, "port", int, 22, p, minimum=1), username=r.value(data, "username", str, "", p),
        key=_path(home, key) if key else None, password=password, host_key=host_key.strip(),
        upload_dir=r.value(data, "upload_dir", str, "", p), poll_dir=r.value(data, "poll_dir", str, "", p),
        poll_seconds=r.value(data, "poll_seconds", float, 60.0, p, minimum=1), after_poll=after, move_dir=move_dir,
        timeout=r.value(data, "timeout", float, 30.0, p, minimum=1))


def sftp_target(partner_id: str) -> str:
    """The queue target name for pushing files to a partner's SFTP server."""
    return f"sftp:{partner_id}"


def outbox_target(partner_id: str) -> str:
    """The queue target name for files a partner downloads from its outbox on our SFTP server."""
    return f"outbox:{partner_id}"
