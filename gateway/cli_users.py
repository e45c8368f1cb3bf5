"""``gateway users``: dashboard accounts (add, list, remove, passwd, role, disable/enable).

Passwords are prompted for twice (never echoed, never an argument, so they stay out of shell
history and ``ps``) or read from stdin with ``--password-stdin`` (scripts); only their scrypt
hash is stored. Changing a password, a role or disabling an account ends its sessions.
"""

from __future__ import annotations

import re
import sys

import click

from .config_sftp import hash_password
from .errors import GatewayError

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
ROLES = ("viewer", "operator")
MIN_LENGTH = 12


def register(main: click.Group) -> None:
    """Add the ``gateway users`` group."""
    main.add_command(users)


def _name(name: str) -> str:
    from .cli import fail

    if not USER_NAME.match(name):
        fail(f"{name!r} is not a user name (letters, digits, '.', '_', '@' and '-', up to 100)")
    return name


def _password(name: str, from_stdin: bool) -> str:
    from .cli import fail

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < MIN_LENGTH:
        fail(f"the password must have at least {MIN_LENGTH} characters")
    return password


@click.group()
def users() -> None:
    """Dashboard accounts: viewers read (payloads masked), operators also replay, retry and cancel."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_obj
def users_add(obj: object, name: str, role: str, password_stdin: bool) -> None:
    """Create a dashboard account (the password is prompted for twice)."""
    from .cli import fail

    password = _password(_name(name), password_stdin)
    try:
        obj.store.add_user(name, role, hash_password(password))   # type: ignore[attr-defined]
    except GatewayError as exc:
        fail(str(exc))
    click.echo(f"added {name} ({role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def users_list(obj: object, as_json: bool) -> None:
    """List dashboard accounts (never their password hashes)."""
    from .cli import emit_json, table, when

    rows = [{"name": u.name, "role": u.role, "disabled": u.disabled, "last_login_at": u.last_login_at,
             "created_at": u.created_at} for u in obj.store.users()]   # type: ignore[attr-defined]
    if as_json:
        emit_json(rows)
        return
    table([{**r, "last_login": when(r["last_login_at"]), "created": when(r["created_at"])} for r in rows],
          ["name", "role", "disabled", "last_login", "created"])


def _change(action: str, fn_name: str, name: str, *args: object) -> None:
    from .cli import fail

    ctx = click.get_current_context()
    try:
        getattr(ctx.obj.store, fn_name)(_name(name), *args)
    except GatewayError as exc:
        fail(str(exc))
    click.echo(f"{action} {name}")


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Delete a dashboard account and end its sessions."""
    _change("removed", "remove_user", name)


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a new password (prompted for twice); the account's sessions end."""
    _change("new password for", "set_password", name, hash_password(_password(_name(name), password_stdin)))


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
def users_role(name: str, role: str) -> None:
    """Change an account's role; its sessions end."""
    _change(f"role {role} for", "set_role", name, role)


@users.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable an account (it cannot sign in; its sessions end)."""
    _change("disabled", "set_disabled", name, True)


@users.command("enable")
@click.argument("name")
def users_enable(name: str) -> None:
    """Enable a disabled account again."""
    _change("enabled", "set_disabled", name, False)
