"""What ``gateway partners show`` prints: a partner's AS2 and SFTP settings, and what they need from us."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from . import certstore
from .as2 import fingerprint
from .certstore import display
from .cli_admin import _now
from .config import Deployment, Partner

if TYPE_CHECKING:
    import asyncssh

_SSH_KEY_TYPE = re.compile(r"^(ssh-|ecdsa-|sk-)")


def ssh_key(line: str) -> asyncssh.SSHKey:
    """The public key in an OpenSSH line, an authorized_keys line (options first) or ssh-keyscan output (host first)."""
    import asyncssh   # only commands that show SSH keys pay for importing it

    tokens = line.split()
    start = next((index for index, token in enumerate(tokens) if _SSH_KEY_TYPE.match(token)), 0)
    return asyncssh.import_public_key(" ".join(tokens[start:]))


def as2_details(deployment: Deployment, partner: Partner, now: dt.datetime | None = None) -> dict[str, Any]:
    """For ``partners show``: their AS2 settings, and what they need from us to set us up."""
    assert partner.as2 is not None
    now = now or _now()
    window = deployment.settings.as2.expiry_warning_days
    home = deployment.home
    theirs = partner.as2
    encrypting = certstore.encryption_certificate(theirs.certificates, now)
    their_certs = [{"fingerprint": fingerprint(c), "subject": certstore.subject(c),
                    "not_after": c.not_valid_after_utc.isoformat(timespec="seconds"),
                    "days_left": certstore.days_left(c, now), "state": certstore.state(c, now, window),
                    "use": "verifies, encrypts" if c is encrypting else "verifies"} for c in theirs.certificates]
    ours = deployment.settings.as2
    our_certs = []
    for index, (identity, path) in enumerate(zip(ours.identities, ours.identity_files)):
        public = path.with_name(path.name.removesuffix(".pem") + ".cert.pem")
        cert = identity.certificate
        our_certs.append({"identity_file": display(path, home),
                          "certificate_file": display(public, home) if public.is_file() else "",
                          "fingerprint": fingerprint(cert), "subject": certstore.subject(cert),
                          "not_after": cert.not_valid_after_utc.isoformat(timespec="seconds"),
                          "days_left": certstore.days_left(cert, now), "state": certstore.state(cert, now, window),
                          "use": "signs, decrypts" if index == 0 else "decrypts"})
    return {
        "theirs": {"as2_id": theirs.as2_id, "url": theirs.url, "sign": theirs.sign, "encrypt": theirs.encrypt,
                   "compress": theirs.compress, "mdn": theirs.mdn, "mdn_signed": theirs.mdn_signed,
                   "certificate_files": [display(p, home) for p in theirs.certificate_files],
                   "certificates": their_certs},
        "ours": {"as2_id": ours.as2_id, "url": deployment.settings.http.base_url + "/as2", "certificates": our_certs},
    }


def echo_as2_details(details: dict[str, Any]) -> None:
    """The text form of :func:`as2_details` for ``partners show``."""
    theirs, ours = details["theirs"], details["ours"]
    click.echo("\nAS2: their side")
    for key in ("as2_id", "url", "sign", "encrypt", "compress", "mdn", "mdn_signed"):
        click.echo(f"  {key:12} {theirs[key] if theirs[key] not in ('', None) else '-'}")
    for cert in theirs["certificates"]:
        click.echo(f"  certificate  {cert['fingerprint']}  {cert['subject']}")
        click.echo(f"               expires {cert['not_after'][:10]} ({cert['days_left']} days, {cert['state']}); "
                   f"{cert['use']}")
    click.echo("\nAS2: what the partner needs from us")
    click.echo(f"  {'as2_id':12} {ours['as2_id']}")
    click.echo(f"  {'url':12} {ours['url']}")
    for cert in ours["certificates"]:
        click.echo(f"  certificate  {cert['certificate_file'] or cert['identity_file'] + ' (send only the certificate)'}"
                   f"  ({cert['use']})")
        click.echo(f"  fingerprint  {cert['fingerprint']}")
        click.echo(f"  expires      {cert['not_after'][:10]} ({cert['days_left']} days, {cert['state']})")


def _key_facts(line: str) -> dict[str, str]:
    """Type, SHA256 fingerprint and comment of an OpenSSH public key line."""
    import asyncssh

    try:
        key = ssh_key(line)
    except asyncssh.KeyImportError as exc:
        return {"type": "", "fingerprint": "", "comment": "", "problem": f"not an OpenSSH public key: {exc}"}
    return {"type": key.get_algorithm(), "fingerprint": key.get_fingerprint(), "comment": key.get_comment() or ""}


def _private_key_facts(path: Path, home: Path) -> dict[str, str]:
    """The public half of one of our SSH private keys: file, type, fingerprint and the public key line."""
    import asyncssh

    facts = {"file": display(path, home), "type": "", "fingerprint": "", "public_key": ""}
    try:
        key = asyncssh.read_private_key(str(path))
    except (OSError, asyncssh.KeyImportError) as exc:
        return {**facts, "problem": f"unreadable: {exc.strerror if isinstance(exc, OSError) else exc}"}
    return {**facts, "type": key.get_algorithm(), "fingerprint": key.get_fingerprint(),
            "public_key": key.export_public_key().decode().strip()}


def _public_host(deployment: Deployment) -> str:
    """Our SFTP host as partners dial it: a wildcard listener is reached by the [http] public_url's host."""
    host = deployment.settings.sftp.host
    if host in ("", "0.0.0.0", "::"):
        return urlsplit(deployment.settings.http.public_url).hostname or "(this server's public host name)"
    return host


def sftp_details(deployment: Deployment, partner: Partner) -> dict[str, Any]:
    """For ``partners show``: their account on our SFTP server with what they need to connect, and their server.

    Keys ``sftp`` and ``sftp_remote``, each present when the partner file has that table;
    passwords show only as set or not.
    """
    home = deployment.home
    details: dict[str, Any] = {}
    if (account := partner.sftp) is not None:
        server = deployment.settings.sftp
        details["sftp"] = {
            "username": account.username, "password": bool(account.password_hash),
            "authorized_keys": [_key_facts(line) for line in account.authorized_keys],
            "after_download": account.after_download, "max_connections": account.max_connections,
            "home": display(server.root / partner.id, home),
            "server": {"enabled": server.enabled, "host": _public_host(deployment), "port": server.port,
                       "host_keys": [_private_key_facts(path, home) for path in server.host_keys]}}
    if (remote := partner.sftp_remote) is not None:
        details["sftp_remote"] = {
            "host": remote.host, "port": remote.port, "username": remote.username,
            "key": _private_key_facts(remote.key, home) if remote.key else None, "password": bool(remote.password),
            "host_key": _key_facts(remote.host_key), "upload_dir": remote.upload_dir, "poll_dir": remote.poll_dir,
            "poll_seconds": remote.poll_seconds, "after_poll": remote.after_poll, "move_dir": remote.move_dir}
    return details


def _echo_key(label: str, facts: dict[str, str], note: str = "") -> None:
    if facts.get("problem"):
        click.echo(f"  {label:12} {' '.join(filter(None, (facts.get('file'), facts['problem'])))}")
        return
    extra = ", ".join(filter(None, (facts["type"], facts.get("comment"), facts.get("file"), note)))
    click.echo(f"  {label:12} {facts['fingerprint']}  ({extra})")


def echo_sftp_details(details: dict[str, Any]) -> None:
    """The text form of :func:`sftp_details` for ``partners show``."""
    if account := details.get("sftp"):
        server = account["server"]
        click.echo("\nSFTP: their account on our server")
        click.echo(f"  {'username':12} {account['username']}")
        click.echo(f"  {'password':12} {'set' if account['password'] else 'not set'}")
        for facts in account["authorized_keys"]:
            _echo_key("key", facts)
        click.echo(f"  {'home':12} {account['home']} (they upload to inbox/, download from outbox/; "
                   f"after download: {account['after_download']})")
        click.echo("\nSFTP: what the partner needs from us")
        click.echo(f"  {'host':12} {server['host']}")
        click.echo(f"  {'port':12} {server['port']}")
        click.echo(f"  {'username':12} {account['username']}")
        for facts in server["host_keys"]:
            _echo_key("host key", facts)
            if facts["public_key"]:
                click.echo(f"  {'':12} {facts['public_key']}")
        if not server["enabled"]:
            click.echo("  note: gateway.toml [sftp] enabled = false: our SFTP server does not start")
    if remote := details.get("sftp_remote"):
        click.echo("\nSFTP: their server")
        for key in ("host", "port", "username"):
            click.echo(f"  {key:12} {remote[key]}")
        _echo_key("host key", remote["host_key"], "pinned")
        if remote["key"]:
            _echo_key("our key", remote["key"])
            if remote["key"]["public_key"]:
                click.echo(f"  {'':12} {remote['key']['public_key']}   (for their authorized_keys)")
        click.echo(f"  {'password':12} {'set' if remote['password'] else 'not set'}")
        for key in ("upload_dir", "poll_dir"):
            click.echo(f"  {key:12} {remote[key] or '- (not used)'}")
        click.echo(f"  {'poll':12} every {remote['poll_seconds']:g} s, then {remote['after_poll']}"
                   + (f" to {remote['move_dir']}" if remote["after_poll"] == "move" else ""))
