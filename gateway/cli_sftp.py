"""``gateway partners passwd``: make the password hash for a partner's account on our SFTP server.

The password is prompted for twice (never echoed, never an argument, so it stays out of shell
history and ``ps``) and only its scrypt hash is printed, as the line to put in the partner's
``[sftp]`` table. The partner file is not loaded: an account that has no credentials yet is
exactly when this is needed.
"""

from __future__ import annotations

import click

from .config import PARTNER_ID
from .config_sftp import hash_password

MIN_LENGTH = 12


def register(main: click.Group) -> None:
    """Add ``passwd`` to the ``gateway partners`` group."""
    partners = main.commands["partners"]
    assert isinstance(partners, click.Group)
    partners.add_command(partners_passwd)


@click.command("passwd")
@click.argument("partner_id")
def partners_passwd(partner_id: str) -> None:
    """Prompt for a partner's SFTP password and print its password_hash line."""
    from .cli import fail

    if not PARTNER_ID.match(partner_id):
        fail(f"{partner_id!r} is not a partner id (letters, digits, '.', '_' and '-')")
    password = click.prompt(f"SFTP password for {partner_id}", hide_input=True, confirmation_prompt=True,
                            err=True)
    if len(password) < MIN_LENGTH:
        fail(f"the password must have at least {MIN_LENGTH} characters")
    click.echo(f"# put this line in partners/{partner_id}.toml, in its [sftp] table:", err=True)
    click.echo(f'password_hash = "{hash_password(password)}"')
