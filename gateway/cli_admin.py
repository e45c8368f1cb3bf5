"""``gateway certs`` and ``gateway partners add/test``: our AS2 key pairs, partners' certificates and partner files.

Private keys are written 0600 and never printed. Every command prints the exact configuration
line to add, so an operator never has to guess a path or a key name. Key rollover follows the
AS2 core: our first identity signs and all decrypt; a partner's certificates all verify and we
encrypt to the newest valid one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import click
import tomli_w
from cryptography import x509

from . import certstore
from .as2 import fingerprint, generate_identity, load_certificates
from .certstore import (CERTS_DIR, PARTNER_CERTS_DIR, Bundle, check_name, display, raw_toml, string_list, toml_table,
                        warning_days)
from .config import CONFIG_FILE, PARTNER_ID, Deployment, Partner, load_deployment, resolve_secret
from .config_as2 import COMPRESS, MDN_MODES, partner_target
from .errors import ConfigError, ConfigProblem, GatewayError

if TYPE_CHECKING:
    from .cli import Context

EXIT_CONFIG = 2


def register(main: click.Group) -> None:
    """Add this module's commands to the `gateway` group."""
    main.add_command(certs)
    partners = main.commands["partners"]
    assert isinstance(partners, click.Group)
    partners.add_command(partners_add)
    partners.add_command(partners_test)


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


# --------------------------------------------------------------------------- gateway partners add / show / test


def partner_toml(partner_id: str, name: str, identifiers: dict[str, list[str]], routes: list[tuple[str, list[str]]],
                 as2: dict[str, Any] | None) -> str:
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
@click.option("--edifact-id", multiple=True, metavar="Q:ID", help="EDIFACT interchange sender (repeatable).")
@click.option("--x12-id", multiple=True, metavar="Q:ID", help="X12 interchange sender (repeatable).")
@click.option("--route", "routes", multiple=True, metavar="DOC=TARGET[,TARGET]", help="e.g. order=erp (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing partner file.")
@click.pass_obj
def partners_add(obj: Context, partner_id: str, name: str, as2_id: str | None, url: str, cert_file: Path | None,
                 sign: str, encrypt: str, compress: str, mdn: str, mdn_signed: bool, edifact_id: tuple[str, ...],
                 x12_id: tuple[str, ...], routes: tuple[str, ...], force: bool) -> None:
    """Write partners/ID.toml (and their certificate), then check the deployment; undone on problems."""
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
    text = partner_toml(partner_id, name, {"edifact": list(edifact_id), "x12": list(x12_id)}, parsed_routes, as2)

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
    click.echo(f"next: gateway partners show {partner_id}")


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
