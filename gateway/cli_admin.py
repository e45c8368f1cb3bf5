"""``gateway certs``: our AS2 key pairs and partners' certificates; the helpers the admin commands share.

Private keys are written 0600 and never printed. Every command prints the exact configuration
line to add, so an operator never has to guess a path or a key name. Key rollover follows the
AS2 core: our first identity signs and all decrypt; a partner's certificates all verify and we
encrypt to the newest valid one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import tomli_w
from cryptography import x509

from . import certstore
from .as2 import generate_identity, load_certificates
from .certstore import (CERTS_DIR, PARTNER_CERTS_DIR, Bundle, check_name, display, raw_toml, string_list, toml_table,
                        warning_days)
from .config import CONFIG_FILE, PARTNER_ID, resolve_secret
from .errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from .cli import Context

EXIT_CONFIG = 2


def register(main: click.Group) -> None:
    """Add this module's commands to the `gateway` group."""
    main.add_command(certs)


# --------------------------------------------------------------------------- shared helpers
# gateway.cli imports this module to register it, so its helpers are imported when called.


def fail(message: str, code: int = 1) -> NoReturn:
    from .cli import fail as cli_fail

    cli_fail(message, code)
    raise AssertionError("unreachable")


def emit_json(data: Any) -> None:
    from .cli import emit_json as cli_emit_json

    cli_emit_json(data)


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from .cli import table as cli_table

    cli_table(rows, columns)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _toml(key: str, value: Any) -> str:
    """One ``key = value`` line; lists stay on one line (tomli_w quotes every value)."""
    if isinstance(value, list):
        items = ", ".join(tomli_w.dumps({"v": item})[4:].rstrip("\n") for item in value)
        return tomli_w.dumps({key: []}).replace("[]", f"[{items}]").rstrip("\n")
    return tomli_w.dumps({key: value}).rstrip("\n")


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _echo_certificate(cert: x509.Certificate, now: dt.datetime, warning_days: float) -> None:
    facts = certstore.describe(cert, now, warning_days)
    click.echo(f"subject      {facts['subject']}")
    click.echo(f"fingerprint  {facts['fingerprint']}")
    click.echo(f"expires      {_when(cert.not_valid_after_utc)} ({facts['days_left']} days left, {facts['state']})")


def _validate(cert: x509.Certificate, source: str, now: dt.datetime, warning_days: float) -> None:
    """Refuse an expired certificate; warn about one that expires soon or is not valid yet."""
    found = certstore.state(cert, now, warning_days)
    date = cert.not_valid_after_utc.date().isoformat()
    if found == certstore.EXPIRED:
        fail(f"{source}: certificate {certstore.subject(cert)} expired on {date}")
    if found == certstore.EXPIRES_SOON:
        click.echo(f"warning: {source}: certificate expires in {certstore.days_left(cert, now)} days ({date})",
                   err=True)
    if found == certstore.NOT_YET_VALID:
        click.echo(f"warning: {source}: certificate is valid only from {_when(cert.not_valid_before_utc)}",
                   err=True)


def _read(path: Path, password: bytes | None) -> Bundle:
    try:
        return certstore.read_bundle(path.read_bytes(), password, source=str(path))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except ConfigError as exc:
        fail(str(exc))


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    try:
        certstore.write_file(path, data, mode=mode, force=force)
    except GatewayError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")


def _ours_lines(config: dict[str, Any], file: str, as2_id: str) -> list[str]:
    """What to put in gateway.toml [as2] so the new key pair is used (appended: the first one keeps signing)."""
    as2 = toml_table(config, "as2")
    listed = string_list(as2.get("identities"))
    if file in listed:
        return [f"{file} is already in {CONFIG_FILE} [as2] identities"]
    lines = [f"add to {CONFIG_FILE}:", "[as2]"]
    if not as2.get("as2_id"):
        lines.append(_toml("as2_id", as2_id))
    lines.append(_toml("identities", [*listed, file]))
    if listed:
        lines.append(f"# rollover: {listed[0]} keeps signing, both decrypt; once partners have the new "
                     f"certificate, put {file} first")
    return lines


def _partner_lines(home: Path, partner_id: str | None, file: str) -> list[str]:
    """What to put in the partner file's [as2] table so their new certificate is used."""
    where = f"partners/{partner_id}.toml" if partner_id else "partners/<ID>.toml"
    listed = string_list(toml_table(raw_toml(home / where), "as2").get("certificates")) if partner_id else []
    if file in listed:
        return [f"{file} is already in {where} [as2] certificates"]
    return [f"add to {where}:", "[as2]", _toml("certificates", [*listed, file])]


# --------------------------------------------------------------------------- gateway certs


@click.group()
def certs() -> None:
    """Our AS2 key pairs and our partners' certificates (the deployment's certs/ folder)."""


@certs.command("generate")
@click.option("--name", default="gateway", show_default=True, help="File name in certs/ (NAME.pem, NAME.cert.pem).")
@click.option("--cn", help="Certificate common name (default: [as2] as2_id, else NAME).")
@click.option("--days", default=730, show_default=True, type=click.IntRange(1, 36500))
@click.option("--key-size", default=2048, show_default=True, type=click.IntRange(2048, 8192))
@click.option("--force", is_flag=True, help="Replace existing files of that name.")
@click.pass_obj
def certs_generate(obj: Context, name: str, cn: str | None, days: int, key_size: int, force: bool) -> None:
    """Generate our key pair and self-signed certificate for AS2 signing and decryption."""
    home = obj.home
    try:
        check_name(name, "--name")
    except GatewayError as exc:
        fail(str(exc))
    config = raw_toml(home / CONFIG_FILE)
    cn = cn or str(toml_table(config, "as2").get("as2_id") or name)
    identity_path = home / CERTS_DIR / f"{name}.pem"
    cert_path = home / CERTS_DIR / f"{name}.cert.pem"
    for path in (identity_path, cert_path):
        if path.exists() and not force:
            fail(f"{display(path, home)} already exists; use --force to replace it (or another --name)")
    key_pem, cert_pem = generate_identity(cn, days=days, key_size=key_size)
    _write(identity_path, key_pem + cert_pem, 0o600, force)
    _write(cert_path, cert_pem, 0o644, force)
    cert = load_certificates(cert_pem)[0]
    click.echo(f"wrote {display(identity_path, home)} (our private key and certificate, mode 0600)")
    click.echo(f"wrote {display(cert_path, home)} (the certificate to send to partners)")
    _echo_certificate(cert, _now(), warning_days(config))
    click.echo("")
    for line in _ours_lines(config, display(identity_path, home), cn):
        click.echo(line)


@certs.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="File name in certs/ (default: the partner id, else FILE's name).")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the PKCS#12/key password.")
@click.option("--partner", "partner_id", help="The partner this certificate belongs to.")
@click.option("--force", is_flag=True, help="Replace an existing file of that name.")
@click.pass_obj
def certs_import(obj: Context, file: Path, name: str | None, password_env: str | None, partner_id: str | None,
                 force: bool) -> None:
    """Import a PEM, DER or PKCS#12 file: a key pair becomes ours, a certificate a partner's."""
    home = obj.home
    password = None
    if password_env:
        if password_env not in os.environ:
            fail(f"environment variable {password_env} is not set")
        password = os.environ[password_env].encode()
    if partner_id and not PARTNER_ID.match(partner_id):
        fail(f"partner id {partner_id!r}: use letters, digits, '.', '_' and '-' only")
    bundle = _read(file, password)
    try:
        name = check_name(name or partner_id or file.name.split(".")[0], "--name")
    except GatewayError as exc:
        fail(f"{exc} (choose one with --name)")
    config = raw_toml(home / CONFIG_FILE)
    now, window = _now(), warning_days(config)

    if bundle.identity is not None:
        if partner_id:
            fail(f"{file} holds a private key: that is a key pair of ours; a partner sends only its certificate")
        cert = bundle.identity.certificate
        _validate(cert, str(file), now, window)
        identity_path = home / CERTS_DIR / f"{name}.pem"
        cert_path = home / CERTS_DIR / f"{name}.cert.pem"
        for path in (identity_path, cert_path):
            if path.exists() and not force:
                fail(f"{display(path, home)} already exists; use --force to replace it (or another --name)")
        _write(identity_path, certstore.identity_pem(bundle.identity), 0o600, force)
        _write(cert_path, certstore.certificates_pem([cert]), 0o644, force)
        click.echo(f"wrote {display(identity_path, home)} (our private key and certificate, unencrypted, mode 0600)")
        click.echo(f"wrote {display(cert_path, home)} (the certificate to send to partners)")
        _echo_certificate(cert, now, window)
        click.echo("")
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        for line in _ours_lines(config, display(identity_path, home), str(cn[0].value) if cn else name):
            click.echo(line)
        return

    for cert in bundle.certificates:
        _validate(cert, str(file), now, window)
    target = home / PARTNER_CERTS_DIR / f"{name}.pem"
    if target.exists() and not force:
        fail(f"{display(target, home)} already exists: use --name for a second certificate (key rollover) "
             f"or --force to replace it")
    _write(target, certstore.certificates_pem(bundle.certificates), 0o644, force)
    click.echo(f"wrote {display(target, home)} (partner certificate{'s' if len(bundle.certificates) > 1 else ''})")
    for cert in bundle.certificates:
        _echo_certificate(cert, now, window)
    click.echo("")
    for line in _partner_lines(home, partner_id, display(target, home)):
        click.echo(line)


@certs.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def certs_list(obj: Context, as_json: bool) -> None:
    """Every certificate under certs/ and in the configuration: role, fingerprint, expiry, state."""
    config = raw_toml(obj.home / CONFIG_FILE)
    password = None
    if reference := toml_table(config, "as2").get("identity_password"):
        try:
            password = resolve_secret(str(reference)).encode()
        except GatewayError:
            pass   # our key-pair files show as unreadable; `gateway check` names the missing secret
    rows = certstore.certificate_rows(obj.home, config, password, _now())
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        row["not_after"] = row["not_after"][:10]
    table(rows, ["file", "role", "use", "subject", "fingerprint", "not_after", "days_left", "state"])
