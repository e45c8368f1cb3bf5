"""``gateway partners add/show/test``: onboard a partner (AS2, SFTP), show what they need from us, test the link.

SFTP passwords are prompted for and stored only as their scrypt hash, and our password on a
partner's SFTP server only as an ``env:NAME`` reference. ``add`` validates by loading the
deployment and undoes everything on a problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click
import tomli_w

from . import certstore
from .as2 import fingerprint
from .certstore import PARTNER_CERTS_DIR, display, raw_toml, warning_days
from .cli_admin import EXIT_CONFIG, _now, _read, _toml, _validate, _write, emit_json, fail
from .cli_sftp import MIN_LENGTH as MIN_PASSWORD_LENGTH
from .config import CONFIG_FILE, PARTNER_ID, Deployment, load_deployment
from .config_as2 import COMPRESS, MDN_MODES, partner_target
from .config_sftp import AFTER_DOWNLOAD, AFTER_POLL, hash_password
from .errors import ConfigError, ConfigProblem, GatewayError
from .partner_details import as2_details, echo_as2_details, echo_sftp_details, sftp_details, ssh_key

if TYPE_CHECKING:
    from .cli import Context


def register(main: click.Group) -> None:
    """Add this module's commands to the `gateway partners` group."""
    partners = main.commands["partners"]
    assert isinstance(partners, click.Group)
    partners.add_command(partners_add)
    partners.add_command(partners_show)
    partners.add_command(partners_test)


# --------------------------------------------------------------------------- gateway partners add / show / test


def partner_toml(partner_id: str, name: str, identifiers: dict[str, list[str]], routes: list[tuple[str, list[str]]],
                 as2: dict[str, Any] | None, sftp: dict[str, Any] | None = None,
                 sftp_remote: dict[str, Any] | None = None) -> str:
    """A partner file in the style of the example partners/ACME.toml: every section explained."""
    lines = [f"# Trading partner {name}, written by `gateway partners add`.",
             f"# The file name is the partner id. Its inbox is <inbox.root>/{partner_id}/ (see [inbox] in gateway.toml).",
             _toml("name", name), "enabled = true", "",
             "[identifiers]",
             '# Interchange senders that belong to this partner, as "QUALIFIER:ID" (or "ID" for any qualifier).',
             "# A file in this partner's inbox naming another sender is rejected: partners cannot speak for each other."]
    lines += [_toml(fmt, ids) for fmt, ids in identifiers.items() if ids]
    lines += ["", "[inbox]", "enabled = true", f'# path = "/srv/edi/{partner_id.lower()}/in"   # default: '
              f"<inbox.root>/{partner_id}", "",
              "# [mappings]                  # choose a mapping per message type (default: matched by format/type/version)",
              '# ORDERS = "edifact-orders"']
    for document, targets in routes:
        lines += ["", "[[routes]]", _toml("document", document), _toml("targets", targets)]
    if as2 is not None:
        lines += ["", "[as2]", "# Their AS2 id: AS2-To on what we send them, AS2-From on what they send us."]
        lines.append(_toml("id", as2["id"]))
        lines.append("# Where we POST messages to them; without a url we only receive from them.")
        lines.append(_toml("url", as2["url"]) if as2["url"] else '# url = "https://as2.partner.example/as2"')
        lines.append("# Their certificates: we verify with all and encrypt to the newest valid one (list two to roll over).")
        lines.append(_toml("certificates", as2["certificates"]))
        lines.append('# How we send: signature digest and cipher ("" = unsigned / unencrypted), compression.')
        lines += [_toml(key, as2[key]) for key in ("sign", "encrypt", "compress")]
        lines.append("# Receipts we ask for: sync (same HTTP exchange), async (they POST it back) or none.")
        lines += [_toml(key, as2[key]) for key in ("mdn", "mdn_signed")]
    if sftp is not None:
        lines += ["", "[sftp]", f"# Their account on our SFTP server: they upload to inbox/ and download from outbox/ "
                  f"of <sftp.root>/{partner_id}/.", _toml("username", sftp["username"]),
                  '# Public keys they log in with (OpenSSH lines; from="..." options are honoured).',
                  tomli_w.dumps({"authorized_keys": sftp["authorized_keys"]}).rstrip("\n")
                  if sftp["authorized_keys"] else '# authorized_keys = ["ssh-ed25519 AAAA... them@example"]',
                  f"# The scrypt hash of their password, never the password (`gateway partners passwd {partner_id}`).",
                  _toml("password_hash", sftp["password_hash"]) if sftp["password_hash"] else '# password_hash = ""',
                  "# What happens to an outbox file once they have downloaded it: keep | delete | archive.",
                  _toml("after_download", sftp["after_download"]), "# max_connections = 4"]
    if sftp_remote is not None:
        remote = sftp_remote
        lines += ["", "[sftp_remote]",
                  '# Their SFTP server: we upload to upload_dir and fetch from poll_dir ("" = not used).',
                  *(_toml(key, remote[key]) for key in ("host", "port", "username")),
                  "# How we log in: our private key for them and/or a password reference (env:NAME, never a password).",
                  *(_toml(key, remote[key]) for key in ("key", "password") if remote[key]),
                  "# Their server's public key, pinned: a server showing another key is refused "
                  "(confirm a change with them).",
                  _toml("host_key", remote["host_key"]),
                  *(_toml(key, remote[key]) for key in ("upload_dir", "poll_dir", "poll_seconds")),
                  "# After fetching a file: delete | move (to move_dir) | keep (fetched once by name, size and time).",
                  _toml("after_poll", remote["after_poll"]),
                  _toml("move_dir", remote["move_dir"]) if remote["move_dir"] else '# move_dir = "done"']
    return "\n".join(lines) + "\n"


def _parse_route(value: str) -> tuple[str, list[str]]:
    document, sep, targets = value.partition("=")
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if not sep or not document.strip() or not names:
        raise click.BadParameter(f"{value!r}: write DOCUMENT=TARGET[,TARGET], e.g. order=erp", param_hint="--route")
    return document.strip(), names


def _relevant(problems: list[ConfigProblem] | tuple[ConfigProblem, ...], partner_id: str) -> list[ConfigProblem]:
    """The problems a new partner file causes: its own, and clashes other files report with it."""
    mine = f"partners/{partner_id}.toml"
    named = re.compile(rf"\bpartner {re.escape(partner_id)}(?![\w.-])")
    return [p for p in problems if p.file == mine or named.search(p.problem)]


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ACCOUNT_OPTIONS = ("sftp_user", "sftp_key", "sftp_password", "after_download")
_REMOTE_OPTIONS = ("remote_port", "remote_user", "remote_key", "remote_password_env", "remote_host_key",
                   "upload_dir", "poll_dir", "poll_seconds", "after_poll", "move_dir")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _key_lines(value: str, option: str) -> list[str]:
    """FILE_OR_LINE: the key lines of a .pub, authorized_keys or ssh-keyscan file, or ``value`` as one line."""
    path = Path(value).expanduser()
    if not path.is_file():
        if len(value.split()) < 2:
            fail(f'{option} {value!r}: no such file, and not an OpenSSH public key line ("ssh-ed25519 AAAA...")')
        return [value.strip()]
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{option} {value}: cannot read it: {getattr(exc, 'strerror', None) or 'not a text file'}")
    if "PRIVATE KEY" in text or "Private-Lines" in text:
        fail(f"{option} {value}: holds a private key; give the public key (the .pub file)")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        fail(f"{option} {value}: holds no key")
    return lines


def _pinned_host_key(value: str) -> str:
    """--remote-host-key: exactly one public key, as the ``TYPE BASE64`` line the SFTP connector pins."""
    import asyncssh

    lines = _key_lines(value, "--remote-host-key")
    if len(lines) > 1:
        fail(f"--remote-host-key {value}: holds {len(lines)} keys; pin one (`ssh-keyscan -t ed25519 HOST`)")
    try:
        return ssh_key(lines[0]).export_public_key().decode().strip()
    except asyncssh.KeyImportError as exc:
        fail(f"--remote-host-key: not an OpenSSH public key: {exc}")


def _our_public_key(path: Path) -> str:
    """--remote-key: our private key for their server must load without a passphrase; returns its public line."""
    import asyncssh

    try:
        key = asyncssh.read_private_key(str(path))
    except (OSError, asyncssh.KeyImportError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        if "assphrase" in reason:
            reason += " (the gateway logs in unattended: use a key without one)"
        fail(f"--remote-key {path}: not a private key we can use: {reason}")
    if path.stat().st_mode & 0o077:
        click.echo(f"warning: --remote-key {path} is readable by other users: chmod 600 it", err=True)
    return key.export_public_key().decode().strip()


def _sftp_account(partner_id: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """[sftp] from the --sftp-* options (None when none is given); prompts for the password with --sftp-password."""
    if not any(options[name] for name in _ACCOUNT_OPTIONS):
        return None
    keys = [line for value in options["sftp_key"] for line in _key_lines(value, "--sftp-key")]
    password_hash = ""
    if options["sftp_password"]:
        password = click.prompt(f"SFTP password for {partner_id}", hide_input=True, confirmation_prompt=True,
                                err=True)
        if len(password) < MIN_PASSWORD_LENGTH:
            fail(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        password_hash = hash_password(password)
    return {"username": options["sftp_user"] or partner_id.lower(), "authorized_keys": keys,
            "password_hash": password_hash, "after_download": options["after_download"] or "keep"}


def _sftp_remote(home: Path, host: str | None, options: dict[str, Any]) -> dict[str, Any] | None:
    """[sftp_remote] from --remote-host and its options (None without it), plus ``our_public_key`` to hand them."""
    if not host:
        if given := [name for name in _REMOTE_OPTIONS if options[name] is not None]:
            fail(f"{_option(given[0])} is a setting of the partner's SFTP server: give --remote-host too")
        return None
    if not options["remote_user"]:
        fail("--remote-user: the account we log in to on their server is required with --remote-host")
    if not options["remote_host_key"]:
        fail(f"--remote-host-key is required with --remote-host: we pin their server's key. Get it with "
             f"`ssh-keyscan -t ed25519 {host}` and confirm its fingerprint with the partner")
    env_name = options["remote_password_env"]
    if env_name is not None and not _ENV_NAME.match(env_name):
        fail(f"--remote-password-env {env_name!r}: not an environment variable name")
    key: Path | None = options["remote_key"]
    poll_seconds = options["poll_seconds"] or 60.0
    return {"host": host, "port": options["remote_port"] or 22, "username": options["remote_user"],
            "key": display(key.resolve(), home) if key else "", "password": f"env:{env_name}" if env_name else "",
            "host_key": _pinned_host_key(options["remote_host_key"]),
            "upload_dir": options["upload_dir"] or "", "poll_dir": options["poll_dir"] or "",
            "poll_seconds": int(poll_seconds) if poll_seconds.is_integer() else poll_seconds,
            "after_poll": options["after_poll"] or "delete", "move_dir": options["move_dir"] or "",
            "our_public_key": _our_public_key(key) if key else ""}


@click.command("add")
@click.argument("partner_id")
@click.option("--name", required=True, help="The partner's display name.")
@click.option("--as2-id", help="Their AS2 id (makes this an AS2 partner).")
@click.option("--url", default="", help="Their AS2 URL (omit to only receive from them).")
@click.option("--cert", "cert_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Their certificate (PEM, DER or PKCS#12 without key); copied to certs/partners/ID.pem.")
@click.option("--sign", default="sha256", show_default=True, help="Signature digest; '' to send unsigned.")
@click.option("--encrypt", default="aes256-cbc", show_default=True, help="Cipher; '' to send unencrypted.")
@click.option("--compress", default="", type=click.Choice(COMPRESS), help="Compression ('' = none).")
@click.option("--mdn", default="sync", show_default=True, type=click.Choice(MDN_MODES))
@click.option("--mdn-signed/--no-mdn-signed", default=True, show_default=True)
@click.option("--sftp-user", metavar="NAME", help="Their account on our SFTP server (default: the id, lowercased).")
@click.option("--sftp-key", multiple=True, metavar="FILE_OR_LINE",
              help="A public key they log in with: a .pub file or an OpenSSH line (repeatable).")
@click.option("--sftp-password", is_flag=True, help="Prompt for their SFTP password (stored only as a hash).")
@click.option("--after-download", type=click.Choice(AFTER_DOWNLOAD), help="Their outbox files once downloaded.")
@click.option("--remote-host", help="Their SFTP server (we push to it and/or poll it).")
@click.option("--remote-port", type=click.IntRange(1, 65535), help="Their SFTP port [22].")
@click.option("--remote-user", help="Our account on their SFTP server.")
@click.option("--remote-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Our private key file for their server (no passphrase).")
@click.option("--remote-password-env", metavar="NAME", help="Environment variable holding our password there.")
@click.option("--remote-host-key", metavar="LINE_OR_FILE",
              help="Their server's public key, pinned (`ssh-keyscan -t ed25519 HOST`; confirm it with them).")
@click.option("--upload-dir", help="Their folder we upload to.")
@click.option("--poll-dir", help="Their folder we fetch files from.")
@click.option("--poll-seconds", type=click.FloatRange(min=1), help="How often we look in --poll-dir [60].")
@click.option("--after-poll", type=click.Choice(AFTER_POLL), help="Their files once fetched [delete].")
@click.option("--move-dir", help="Their folder fetched files move to (--after-poll move).")
@click.option("--edifact-id", multiple=True, metavar="Q:ID", help="EDIFACT interchange sender (repeatable).")
@click.option("--x12-id", multiple=True, metavar="Q:ID", help="X12 interchange sender (repeatable).")
@click.option("--route", "routes", multiple=True, metavar="DOC=TARGET[,TARGET]", help="e.g. order=erp (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing partner file.")
@click.pass_obj
def partners_add(obj: Context, partner_id: str, name: str, as2_id: str | None, url: str, cert_file: Path | None,
                 sign: str, encrypt: str, compress: str, mdn: str, mdn_signed: bool, remote_host: str | None,
                 edifact_id: tuple[str, ...], x12_id: tuple[str, ...], routes: tuple[str, ...], force: bool,
                 **sftp_options: Any) -> None:
    """Write partners/ID.toml (and their certificate), then check the deployment; undone on problems.

    SFTP: --sftp-* give them an account on our server; --remote-* (with --remote-host) set up
    their server, which we push to (--upload-dir) and poll (--poll-dir).
    """
    home = obj.home
    if not PARTNER_ID.match(partner_id):
        fail(f"partner id {partner_id!r}: use letters, digits, '.', '_' and '-' only (1-64 characters)")
    if (url or cert_file) and not as2_id:
        fail("--url and --cert are AS2 settings: give the partner's --as2-id too")
    parsed_routes = [_parse_route(r) for r in routes]
    partner_path = home / "partners" / f"{partner_id}.toml"
    if partner_path.exists() and not force:
        fail(f"partners/{partner_id}.toml already exists; use --force to replace it")
    now = _now()
    cert_path = home / PARTNER_CERTS_DIR / f"{partner_id}.pem"
    certificates: list[str] = []
    cert_pem = b""
    if cert_file is not None:
        bundle = _read(cert_file, None)
        if bundle.identity is not None:
            fail(f"{cert_file} holds a private key: give the partner's certificate only")
        for cert in bundle.certificates:
            _validate(cert, str(cert_file), now, warning_days(raw_toml(home / CONFIG_FILE)))
        cert_pem = certstore.certificates_pem(bundle.certificates)
        certificates = [display(cert_path, home)]
    as2 = None if not as2_id else {"id": as2_id, "url": url, "certificates": certificates, "sign": sign,
                                   "encrypt": encrypt, "compress": compress, "mdn": mdn, "mdn_signed": mdn_signed}
    remote = _sftp_remote(home, remote_host, sftp_options)
    account = _sftp_account(partner_id, sftp_options)   # last: it may prompt for a password
    text = partner_toml(partner_id, name, {"edifact": list(edifact_id), "x12": list(x12_id)}, parsed_routes, as2,
                        account, remote)

    # Keep what --force replaces, so a failed check puts the deployment back as it was.
    previous = {path: path.read_bytes() if path.exists() else None for path in (partner_path, cert_path)}
    if cert_pem and previous[cert_path] not in (None, cert_pem) and not force:
        fail(f"{certificates[0]} already exists with another certificate; use --force to replace it")
    if cert_pem:
        _write(cert_path, cert_pem, 0o644, force=True)
    _write(partner_path, text.encode(), 0o644, force=force)
    deployment: Deployment | None = None
    try:
        deployment = load_deployment(home)
        problems = _relevant(deployment.problems, partner_id)
    except ConfigError as exc:
        problems = list(exc.problems)
    if deployment is None or problems or partner_id not in deployment.partners:
        for path, data in previous.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                certstore.write_file(path, data, mode=0o644, force=True)
        for problem in problems or [ConfigProblem(f"partners/{partner_id}.toml", "-", "not loaded")]:
            click.echo(str(problem), err=True)
        fail(f"partners/{partner_id}.toml not added (nothing was changed)", EXIT_CONFIG)
    click.echo(f"wrote partners/{partner_id}.toml" + (f" and {certificates[0]}" if certificates else ""))
    if not parsed_routes:
        click.echo("note: no [[routes]] yet: documents from this partner have nowhere to go")
    if remote is not None:
        click.echo(f"pinned their SFTP host key {ssh_key(remote['host_key']).get_fingerprint()}: confirm this "
                   f"fingerprint with the partner before the first transfer")
        if remote["our_public_key"]:
            click.echo(f"give the partner our public key for their authorized_keys:\n  {remote['our_public_key']}")
        if remote["password"]:
            click.echo(f"note: set {remote['password'][4:]} in the environment of `gateway serve` too")
        if not remote["upload_dir"] and not remote["poll_dir"]:
            click.echo("note: no --upload-dir or --poll-dir: nothing is exchanged with their server yet")
    click.echo(f"next: gateway partners show {partner_id}")


@click.command("show")
@click.argument("partner_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def partners_show(obj: Context, partner_id: str, as_json: bool) -> None:
    """Show one partner's settings, and what they need from us (AS2 id, URL, certificates; SFTP host keys)."""
    deployment = obj.deployment
    partner = deployment.partners.get(partner_id)
    if partner is None:
        fail(f"unknown partner {partner_id!r}")
    data = {"id": partner.id, "name": partner.name, "file": partner.file, "enabled": partner.enabled,
            "identifiers": {k: list(v) for k, v in partner.identifiers.items()},
            "inbox": str(partner.inbox or ""), "mappings": partner.mappings,
            "routes": [{"document": r.document, "targets": list(r.targets),
                        **({"when": {".".join(path): sorted(values) for path, values in r.when}} if r.when else {}),
                        **({"fallback": True} if r.fallback else {})} for r in partner.routes]}
    as2 = as2_details(deployment, partner) if partner.as2 is not None else None
    sftp = sftp_details(deployment, partner)
    if as_json:
        emit_json({**data, **({"as2": as2} if as2 else {}), **sftp})
        return
    for key, value in data.items():
        click.echo(f"{key:12} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if as2:
        echo_as2_details(as2)
    echo_sftp_details(sftp)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def probe(url: str, ca_file: Path | None, timeout: float) -> int:
    """GET ``url`` with TLS verification on; any HTTP status means reachable. Raises GatewayError otherwise."""
    import aiohttp

    shown = _without_credentials(url)
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, ssl=context, allow_redirects=False) as response:
                return response.status
    except aiohttp.ClientConnectorCertificateError as exc:
        raise GatewayError(f"{shown}: TLS certificate not trusted: {exc.certificate_error}") from None
    except aiohttp.ClientSSLError as exc:
        raise GatewayError(f"{shown}: TLS handshake failed: {exc.os_error}") from None
    except aiohttp.ClientConnectorError as exc:
        reason = os.strerror(exc.os_error.errno) if exc.os_error.errno else str(exc.os_error)
        raise GatewayError(f"{shown}: cannot connect: {reason}") from None
    except TimeoutError:
        raise GatewayError(f"{shown}: no answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise GatewayError(f"{shown}: {type(exc).__name__}: {exc}") from None


@click.command("test")
@click.argument("partner_id")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 300), help="Seconds.")
@click.option("--send/--no-send", default=False, show_default=True,
              help="Then send them a small test message through the queue and report its MDN "
                   "(needs `gateway serve` running).")
@click.pass_obj
def partners_test(obj: Context, partner_id: str, timeout: float, send: bool) -> None:
    """Check a partner's AS2 certificates and URL, and/or its own SFTP server; exit 1 on a problem.

    AS2: certificate validity and that the URL answers (TLS verified). SFTP ([sftp_remote]): a
    login with the pinned host key, then a listing of upload_dir and poll_dir. With --send, a
    small text message goes to an AS2 partner like any file (`gateway send`) and the outcome
    and their MDN are printed.
    """
    deployment = obj.deployment
    partner = deployment.partners.get(partner_id)
    if partner is None:
        fail(f"unknown partner {partner_id!r}")
    if partner.as2 is None and partner.sftp_remote is None:
        fail(f"partner {partner_id} does not use AS2 or a remote SFTP server ([sftp_remote]): nothing to test")
    failed = False
    if partner.sftp_remote is not None:
        from .outbound.sftp import check_login

        try:
            lines, ok = asyncio.run(check_login(partner.id, partner.sftp_remote, timeout=timeout))
        except GatewayError as exc:
            lines, ok = [f"sftp: {exc}"], False
        for line in lines:
            click.echo(line)
        failed |= not ok
    if partner.as2 is None:
        sys.exit(1 if failed else 0)
    now, window = _now(), deployment.settings.as2.expiry_warning_days
    encrypting = certstore.encryption_certificate(partner.as2.certificates, now)
    for cert in partner.as2.certificates:
        found = certstore.state(cert, now, window)
        failed |= found == certstore.EXPIRED
        click.echo(f"certificate {fingerprint(cert)}: {found}, {certstore.days_left(cert, now)} days left")
    if partner.as2.certificates and encrypting is None:
        click.echo("certificates: none is valid now: we cannot encrypt to them or verify them")
        failed = True
    if not partner.as2.url:
        click.echo("url: none (we only receive from them)")
    else:
        if not partner.as2.verify_tls:
            click.echo("note: verify_tls = false in the partner file; this test verifies anyway")
        try:
            status = asyncio.run(probe(partner.as2.url, partner.as2.ca_file, timeout))
            click.echo(f"url: {_without_credentials(partner.as2.url)} answers (HTTP {status})")
        except GatewayError as exc:
            click.echo(f"url: {exc}")
            failed = True
    if send and not failed and partner.as2.url:
        from .cli_send import queue_and_report

        ours = deployment.settings.as2.as2_id
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        text = f"AS2 test message from {ours} to {partner.as2.as2_id}, sent {stamp} by `gateway partners test`.\r\n"
        failed = queue_and_report(obj, partner, text.encode(), f"as2-test-{stamp}.txt",
                                  target=partner_target(partner.id), wait=True, timeout=None, as_json=False) != 0
    sys.exit(1 if failed else 0)
