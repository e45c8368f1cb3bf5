"""`gateway certs` and `gateway partners add/show/test` on a scaffolded deployment, through click's CliRunner.

Certificates with chosen validity are made with cryptography's builder, SSH keys with asyncssh
(fingerprints are checked against a plain SHA-256 of the key blob); `partners test` talks to a
real aiohttp server on 127.0.0.1 (plain HTTP and HTTPS) and to a closed port.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncssh
import pytest
from aiohttp import web
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from gateway.as2 import fingerprint, load_certificates, load_identity
from gateway.cli import main
from gateway.config import load_deployment
from gateway.config_as2 import certificate_warnings
from gateway.config_sftp import check_password

NOW = dt.datetime.now(dt.UTC)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)   # one key: RSA generation is slow


def make_cert(cn: str, *, days: float, starts: float = -1, san_ip: str | None = None) -> x509.Certificate:
    """A self-signed certificate valid from NOW+starts to NOW+days (days may be negative: expired)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW + dt.timedelta(days=starts))
               .not_valid_after(NOW + dt.timedelta(days=days)))
    if san_ip:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
                                        critical=False)
    return builder.sign(KEY, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "dep")])
    assert result.exit_code == 0, result.output
    return tmp_path / "dep"


def run(home: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env, input=input)


def enable_as2(home: Path, *identities: str, extra: str = "") -> None:
    files = ", ".join(f'"{f}"' for f in identities)
    with (home / "gateway.toml").open("a") as fh:
        fh.write(f'\n[as2]\nas2_id = "OURS-AS2"\nidentities = [{files}]\n{extra}')


def write_identity(home: Path, name: str, cert: x509.Certificate) -> str:
    (home / "certs" / f"{name}.pem").write_bytes(key_pem() + pem(cert))
    return f"certs/{name}.pem"


def write_partner(home: Path, partner_id: str, *cert_files: str, url: str = "", extra: str = "") -> None:
    files = ", ".join(f'"{f}"' for f in cert_files)
    url_line = f'url = "{url}"\n' if url else ""
    (home / "partners" / f"{partner_id}.toml").write_text(
        f'name = "{partner_id} Ltd"\n[as2]\nid = "{partner_id}-AS2"\n{url_line}certificates = [{files}]\n{extra}')


def write_partner_cert(home: Path, name: str, cert: x509.Certificate) -> str:
    (home / "certs" / "partners").mkdir(exist_ok=True)
    (home / "certs" / "partners" / f"{name}.pem").write_bytes(pem(cert))
    return f"certs/partners/{name}.pem"


def as2_home(home: Path) -> Path:
    """A deployment with our key pair (1 year) and an AS2 partner BETA (1 year)."""
    enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=365)))
    write_partner(home, "BETA", write_partner_cert(home, "BETA", make_cert("BETA", days=365)))
    return home


# --------------------------------------------------------------------------- certs generate


def test_generate_writes_a_0600_key_pair_and_a_config_line_that_loads(home):
    result = run(home, "certs", "generate", "--cn", "OURS-AS2")
    assert result.exit_code == 0, result.output
    identity_file, cert_file = home / "certs" / "gateway.pem", home / "certs" / "gateway.cert.pem"
    assert identity_file.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in cert_file.read_bytes()
    cert = load_certificates(cert_file.read_bytes())[0]
    assert fingerprint(cert) in result.output and "CN=OURS-AS2" in result.output
    assert load_identity(identity_file.read_bytes()).certificate == cert

    config = result.output[result.output.index("[as2]"):]
    assert config == '[as2]\nas2_id = "OURS-AS2"\nidentities = ["certs/gateway.pem"]\n'
    with (home / "gateway.toml").open("a") as fh:
        fh.write("\n" + config)
    ours = load_deployment(home).settings.as2
    assert ours.enabled and ours.identities[0].certificate == cert
    assert run(home, "check").exit_code == 0


def test_generate_refuses_to_overwrite_unless_forced(home):
    assert run(home, "certs", "generate").exit_code == 0
    before = (home / "certs" / "gateway.pem").read_bytes()
    again = run(home, "certs", "generate")
    assert again.exit_code == 1 and "certs/gateway.pem already exists; use --force" in again.output
    assert (home / "certs" / "gateway.pem").read_bytes() == before
    forced = run(home, "certs", "generate", "--force")
    assert forced.exit_code == 0, forced.output
    assert (home / "certs" / "gateway.pem").read_bytes() != before
    assert (home / "certs" / "gateway.pem").stat().st_mode & 0o777 == 0o600


def test_generate_rollover_appends_the_new_key_pair_after_the_signing_one(home):
    enable_as2(home, write_identity(home, "old", make_cert("OURS", days=20)))
    result = run(home, "certs", "generate", "--name", "new")
    assert result.exit_code == 0, result.output
    assert 'identities = ["certs/old.pem", "certs/new.pem"]' in result.output
    assert "as2_id =" not in result.output            # already configured
    assert "put certs/new.pem first" in result.output


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a/b", ".hidden", "x.pem"])
def test_generate_rejects_names_that_are_not_plain_file_names(home, name):
    before = sorted(home.rglob("*"))
    result = run(home, "certs", "generate", "--name", name)
    assert result.exit_code == 1 and "--name" in result.output
    assert sorted(home.rglob("*")) == before and not Path("/tmp/evil.pem").exists()


# --------------------------------------------------------------------------- certs import


def _our_file(tmp_path: Path, kind: str, cert: x509.Certificate) -> tuple[Path, dict[str, str]]:
    if kind == "pem":
        data, env = key_pem() + pem(cert), {}
    elif kind == "pem-encrypted":
        data, env = key_pem(b"s3cret-pw") + pem(cert), {"KEY_PW": "s3cret-pw"}
    else:
        data = pkcs12.serialize_key_and_certificates(b"ours", KEY, cert, None,
                                                     serialization.BestAvailableEncryption(b"s3cret-pw"))
        env = {"KEY_PW": "s3cret-pw"}
    path = tmp_path / f"bundle.{'p12' if kind == 'pkcs12' else 'pem'}"
    path.write_bytes(data)
    return path, env


@pytest.mark.parametrize("kind", ["pem", "pem-encrypted", "pkcs12"])
def test_import_key_pair_becomes_our_identity(home, tmp_path, kind):
    cert = make_cert("OURS-AS2", days=365)
    source, env = _our_file(tmp_path, kind, cert)
    args = ["certs", "import", str(source), "--name", "ours"] + (["--password-env", "KEY_PW"] if env else [])
    result = run(home, *args, env=env)
    assert result.exit_code == 0, result.output
    written = home / "certs" / "ours.pem"
    assert written.stat().st_mode & 0o777 == 0o600
    assert load_identity(written.read_bytes()).certificate == cert
    assert load_certificates((home / "certs" / "ours.cert.pem").read_bytes()) == [cert]
    assert fingerprint(cert) in result.output and "s3cret-pw" not in result.output
    assert 'identities = ["certs/ours.pem"]' in result.output
    enable_as2(home, "certs/ours.pem")
    assert load_deployment(home).settings.as2.identities[0].certificate == cert


@pytest.mark.parametrize("kind", ["pem", "der", "pkcs12"])
def test_import_certificate_becomes_a_partner_certificate(home, tmp_path, kind):
    cert = make_cert("BETA", days=365)
    data = {"pem": pem(cert), "der": cert.public_bytes(serialization.Encoding.DER),
            "pkcs12": pkcs12.serialize_key_and_certificates(b"beta", None, cert, None,
                                                            serialization.NoEncryption())}[kind]
    source = tmp_path / f"beta.{kind}"
    source.write_bytes(data)
    result = run(home, "certs", "import", str(source), "--partner", "BETA")
    assert result.exit_code == 0, result.output
    assert load_certificates((home / "certs" / "partners" / "BETA.pem").read_bytes()) == [cert]
    assert fingerprint(cert) in result.output
    assert 'add to partners/BETA.toml:\n[as2]\ncertificates = ["certs/partners/BETA.pem"]' in result.output


def test_import_pkcs12_with_wrong_or_missing_password_is_a_clear_error(home, tmp_path):
    source, _ = _our_file(tmp_path, "pkcs12", make_cert("OURS", days=365))
    wrong = run(home, "certs", "import", str(source), "--password-env", "KEY_PW", env={"KEY_PW": "guess"})
    assert wrong.exit_code == 1
    assert f"error: {source}: file: cannot open the PKCS#12 file (wrong password)" in wrong.output
    missing = run(home, "certs", "import", str(source))
    assert missing.exit_code == 1 and "password-protected: pass --password-env VAR" in missing.output
    unset = run(home, "certs", "import", str(source), "--password-env", "NOT_SET_ANYWHERE")
    assert unset.exit_code == 1 and "environment variable NOT_SET_ANYWHERE is not set" in unset.output
    assert not (home / "certs" / "bundle.pem").exists()


def test_import_rejects_garbage_expired_and_keys_given_as_partner_certificates(home, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a certificate")
    result = run(home, "certs", "import", str(junk))
    assert result.exit_code == 1 and "not a PEM, DER or PKCS#12 certificate file" in result.output

    expired = tmp_path / "old.pem"
    expired.write_bytes(pem(make_cert("OLD", days=-3, starts=-400)))
    result = run(home, "certs", "import", str(expired), "--partner", "BETA")
    assert result.exit_code == 1 and "certificate CN=OLD expired on" in result.output
    assert not (home / "certs" / "partners" / "BETA.pem").exists()

    pair, _ = _our_file(tmp_path, "pem", make_cert("OURS", days=365))
    result = run(home, "certs", "import", str(pair), "--partner", "BETA")
    assert result.exit_code == 1 and "holds a private key" in result.output


def test_import_warns_when_the_certificate_expires_within_the_window(home, tmp_path):
    soon = tmp_path / "soon.pem"
    soon.write_bytes(pem(make_cert("SOON", days=10.5)))
    result = run(home, "certs", "import", str(soon), "--partner", "BETA")
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "certificate expires in 10 days" in result.output


def test_import_second_partner_certificate_for_rollover(home, tmp_path):
    as2_home(home)
    new = tmp_path / "beta-2.pem"
    new.write_bytes(pem(make_cert("BETA", days=700)))
    same_name = run(home, "certs", "import", str(new), "--partner", "BETA")
    assert same_name.exit_code == 1 and "use --name for a second certificate" in same_name.output
    result = run(home, "certs", "import", str(new), "--partner", "BETA", "--name", "BETA-2")
    assert result.exit_code == 0, result.output
    assert 'certificates = ["certs/partners/BETA.pem", "certs/partners/BETA-2.pem"]' in result.output


# --------------------------------------------------------------------------- certs list / check


def test_list_shows_roles_days_left_states_and_the_active_certificates(home):
    outgoing = make_cert("OURS-OLD", days=10.5)
    enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=400.5)),
               write_identity(home, "ours-old", outgoing))
    old = write_partner_cert(home, "BETA", make_cert("BETA-OLD", days=-2, starts=-300))
    new = write_partner_cert(home, "BETA-2", make_cert("BETA-NEW", days=200.5))
    write_partner(home, "BETA", old, new)
    write_partner_cert(home, "future", make_cert("FUTURE", days=400, starts=5))

    result = run(home, "certs", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {(r["file"], r["role"]): r for r in json.loads(result.output)}
    signing = rows[("certs/ours.pem", "ours")]
    assert (signing["use"], signing["state"], signing["days_left"]) == ("signs, decrypts", "ok", 400)
    decrypting = rows[("certs/ours-old.pem", "ours")]
    assert (decrypting["use"], decrypting["state"], decrypting["days_left"]) == ("decrypts", "expires soon", 10)
    assert rows[("certs/partners/BETA.pem", "partner BETA")]["state"] == "expired"
    assert rows[("certs/partners/BETA.pem", "partner BETA")]["use"] == "verifies"
    assert rows[("certs/partners/BETA-2.pem", "partner BETA")]["use"] == "verifies, encrypts"
    assert rows[("certs/partners/future.pem", "")]["state"] == "not yet valid"
    assert rows[("certs/partners/future.pem", "")]["use"] == "not in config"

    text = run(home, "certs", "list")
    assert text.exit_code == 0
    line = next(ln for ln in text.output.splitlines() if ln.startswith("certs/ours-old.pem"))
    assert "expires soon" in line and " 10 " in line and fingerprint(outgoing) in line


@pytest.mark.parametrize("role", ["ours", "partner"])
def test_check_fails_at_10_days_left_and_passes_at_40(home, role):
    for days, code in ((10.5, 2), (40.5, 0)):
        cert = make_cert("EXPIRING", days=days)
        if role == "ours":
            (home / "gateway.toml").write_text(
                f'[targets.erp]\ntype = "file"\npath = "var/outbound/erp"\n'
                f'[as2]\nas2_id = "OURS-AS2"\nidentities = ["{write_identity(home, "ours", cert)}"]\n')
            expected = "certs/ours.pem: as2.identities[0]: expires in 10 days"
        else:
            if not (home / "certs" / "ours.pem").exists():
                enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=365)))
            write_partner(home, "BETA", write_partner_cert(home, "BETA", cert))
            expected = "certs/partners/BETA.pem: partner BETA as2.certificates[0]: expires in 10 days"
        result = run(home, "check")
        assert result.exit_code == code, result.output
        assert (expected in result.output) == (code == 2)


def test_certificate_warnings_leave_a_finished_rollover_alone(home):
    fresh, outgoing = make_cert("NEW", days=400), make_cert("OLD", days=20)
    enable_as2(home, write_identity(home, "new", fresh), write_identity(home, "old", outgoing))
    write_partner(home, "BETA", write_partner_cert(home, "BETA", outgoing), write_partner_cert(home, "BETA-2", fresh))
    assert certificate_warnings(load_deployment(home), NOW) == []

    # Our outgoing key pair still listed first: it keeps signing, so the operator must swap them.
    text = (home / "gateway.toml").read_text().replace('"certs/new.pem", "certs/old.pem"', '"certs/old.pem", "certs/new.pem"')
    (home / "gateway.toml").write_text(text)
    warnings = [str(w) for w in certificate_warnings(load_deployment(home), NOW)]
    assert len(warnings) == 1 and warnings[0].startswith("certs/old.pem: as2.identities[0]: expires in 19 days")
    assert "put the newer key pair first" in warnings[0]

    # Once the outgoing certificates have expired, both lists must drop them.
    later = [str(w) for w in certificate_warnings(load_deployment(home), NOW + dt.timedelta(days=25))]
    assert any("as2.identities[0]: expired on" in w for w in later)
    assert any("partner BETA as2.certificates[0]: expired on" in w and "remove it from partners/BETA.toml" in w
               for w in later)


# --------------------------------------------------------------------------- partners add / show


def add_beta(home: Path, cert_file: Path, *extra: str):
    return run(home, "partners", "add", "BETA", "--name", "Beta GmbH", "--as2-id", "BETA-AS2",
               "--url", "https://as2.beta.example/as2", "--cert", str(cert_file), "--mdn", "none",
               "--edifact-id", "14:4000000000002", "--x12-id", "ZZ:BETAUS", "--route", "order=erp", *extra)


def test_partners_add_writes_a_partner_file_that_loads(home, tmp_path):
    enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=365)))
    cert = make_cert("BETA", days=365)
    (tmp_path / "beta.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    result = add_beta(home, tmp_path / "beta.der")
    assert result.exit_code == 0, result.output
    text = (home / "partners" / "BETA.toml").read_text()
    assert text.startswith("# Trading partner Beta GmbH") and "# Receipts we ask for" in text
    beta = load_deployment(home).partners["BETA"]
    assert beta.name == "Beta GmbH" and beta.identifiers == {"edifact": ("14:4000000000002",), "x12": ("ZZ:BETAUS",)}
    assert beta.targets_for("order") == ("erp",)
    assert beta.as2 is not None and beta.as2.as2_id == "BETA-AS2" and beta.as2.mdn == "none"
    assert beta.as2.certificates == (cert,) and beta.as2.url == "https://as2.beta.example/as2"
    assert run(home, "check").exit_code == 0


def test_partners_add_refuses_to_overwrite_without_force(home, tmp_path):
    enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=365)))
    (tmp_path / "beta.pem").write_bytes(pem(make_cert("BETA", days=365)))
    assert add_beta(home, tmp_path / "beta.pem").exit_code == 0
    before = (home / "partners" / "BETA.toml").read_text()
    again = run(home, "partners", "add", "BETA", "--name", "Other")
    assert again.exit_code == 1 and "partners/BETA.toml already exists; use --force" in again.output
    assert (home / "partners" / "BETA.toml").read_text() == before
    forced = run(home, "partners", "add", "BETA", "--name", "Other", "--force")
    assert forced.exit_code == 0, forced.output
    assert load_deployment(home).partners["BETA"].name == "Other"


def test_partners_add_rolls_back_when_the_deployment_does_not_load(home, tmp_path):
    enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=365)))
    (tmp_path / "beta.pem").write_bytes(pem(make_cert("BETA", days=365)))
    result = run(home, "partners", "add", "BETA", "--name", "Beta", "--as2-id", "BETA-AS2",
                 "--cert", str(tmp_path / "beta.pem"), "--route", "order=nowhere")
    assert result.exit_code == 2
    assert "partners/BETA.toml: routes[0].targets: no target 'nowhere' in gateway.toml [targets]" in result.output
    assert not (home / "partners" / "BETA.toml").exists() and not (home / "certs" / "partners" / "BETA.pem").exists()

    # A clash that the other partner's file reports (ACME sorts after AAA) still undoes the add.
    result = run(home, "partners", "add", "AAA", "--name", "Copycat", "--edifact-id", "14:5412345000013")
    assert result.exit_code == 2 and "is also an identifier of partner AAA" in result.output
    assert not (home / "partners" / "AAA.toml").exists()

    # With --force over an existing partner, a failed add puts the old file back.
    before = (home / "partners" / "ACME.toml").read_text()
    result = run(home, "partners", "add", "ACME", "--name", "Acme", "--route", "order=nowhere", "--force")
    assert result.exit_code == 2 and (home / "partners" / "ACME.toml").read_text() == before


def test_partners_add_as2_partner_needs_our_as2_settings(home, tmp_path):
    (tmp_path / "beta.pem").write_bytes(pem(make_cert("BETA", days=365)))
    result = add_beta(home, tmp_path / "beta.pem")
    assert result.exit_code == 2 and "partners/BETA.toml: as2: this partner uses AS2 but gateway.toml has no [as2]" \
        in result.output
    assert not (home / "partners" / "BETA.toml").exists()


def test_partners_show_prints_what_the_partner_needs_from_us(home):
    as2_home(home)
    config = (home / "gateway.toml").read_text()
    public_url = 'public_url = "https://edi.ours.example"\n'
    config = config.replace("[http]", "[http]\n" + public_url, 1) if "\n[http]" in config else \
        config + "\n[http]\n" + public_url
    (home / "gateway.toml").write_text(config)
    ours = load_deployment(home).settings.as2.identities[0].certificate
    result = run(home, "partners", "show", "BETA")
    assert result.exit_code == 0, result.output
    assert "name         BETA Ltd" in result.output                       # what it printed before stays
    needs = result.output[result.output.index("what the partner needs from us"):]
    assert "OURS-AS2" in needs and "https://edi.ours.example/as2" in needs and fingerprint(ours) in needs
    data = json.loads(run(home, "partners", "show", "BETA", "--json").output)
    assert data["as2"]["ours"]["url"] == "https://edi.ours.example/as2"
    assert data["as2"]["ours"]["certificates"][0]["fingerprint"] == fingerprint(ours)
    assert data["as2"]["theirs"]["as2_id"] == "BETA-AS2"
    assert data["as2"]["theirs"]["certificates"][0]["use"] == "verifies, encrypts"


# --------------------------------------------------------------------------- partners add / show: SFTP

PASSWORD = "Correct-Horse-Battery-9"


def ssh_fingerprint(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint, computed from the key blob (independently of asyncssh)."""
    blob = base64.b64decode(public_line.split()[1])      # "TYPE BASE64 [comment]"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def ssh_key_pair(folder: Path, name: str, comment: str = "") -> tuple[Path, str]:
    """A new ed25519 private key file (0600) and its public key line (also written to NAME.pub)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment or None)
    private = folder / name
    private.write_bytes(key.export_private_key())
    os.chmod(private, 0o600)
    line = key.export_public_key().decode().strip()
    (folder / f"{name}.pub").write_text(line + "\n")
    return private, line


def test_partners_add_sftp_account_with_keys_and_a_password_writes_a_file_that_loads(home, tmp_path):
    _, first = ssh_key_pair(tmp_path, "beta", "beta@laptop")
    _, second = ssh_key_pair(tmp_path, "beta2")
    result = run(home, "partners", "add", "BETA", "--name", "Beta", "--route", "order=erp",
                 "--sftp-key", str(tmp_path / "beta.pub"), "--sftp-key", second, "--sftp-password",
                 "--after-download", "delete", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "wrote partners/BETA.toml" in result.output and PASSWORD not in result.output
    text = (home / "partners" / "BETA.toml").read_text()
    assert PASSWORD not in text and "# Their account on our SFTP server" in text
    account = load_deployment(home).partners["BETA"].sftp
    assert account is not None and account.username == "beta" and account.after_download == "delete"
    assert account.authorized_keys == (first, second)
    assert check_password(PASSWORD, account.password_hash) and not check_password("wrong", account.password_hash)
    assert run(home, "check").exit_code == 0

    short = run(home, "partners", "add", "GAMMA", "--name", "Gamma", "--sftp-user", "gamma_edi", "--sftp-password",
                input="too-short\ntoo-short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert not (home / "partners" / "GAMMA.toml").exists()


def test_partners_add_sftp_rolls_back_on_a_bad_key_and_refuses_private_keys(home, tmp_path):
    private, line = ssh_key_pair(tmp_path, "beta")
    assert run(home, "partners", "add", "BETA", "--name", "Beta", "--sftp-key", line).exit_code == 0
    before = (home / "partners" / "BETA.toml").read_text()

    result = run(home, "partners", "add", "BETA", "--name", "Beta", "--force",
                 "--sftp-key", line, "--sftp-key", "ssh-ed25519 AAAAnot-a-key beta@laptop")
    assert result.exit_code == 2
    assert "partners/BETA.toml: sftp.authorized_keys[1]: not an OpenSSH public key" in result.output
    assert "not added (nothing was changed)" in result.output
    assert (home / "partners" / "BETA.toml").read_text() == before

    new = run(home, "partners", "add", "GAMMA", "--name", "Gamma", "--sftp-key", "ssh-rsa AAAAB3broken")
    assert new.exit_code == 2 and not (home / "partners" / "GAMMA.toml").exists()

    leaked = run(home, "partners", "add", "GAMMA", "--name", "Gamma", "--sftp-key", str(private))
    assert leaked.exit_code == 1 and "holds a private key; give the public key" in leaked.output
    assert "PRIVATE" not in leaked.output and not (home / "partners" / "GAMMA.toml").exists()


def test_partners_add_remote_sftp_writes_an_env_reference_and_the_pinned_key(home, tmp_path, monkeypatch):
    secret = "their-Server-Password-42"
    ours, our_line = ssh_key_pair(tmp_path, "ours")
    _, their_line = ssh_key_pair(tmp_path, "their_host")
    keyscan = tmp_path / "keyscan.txt"    # `ssh-keyscan -t ed25519 HOST` output: host first, a comment line
    keyscan.write_text(f"# sftp.beta.example:22 SSH-2.0-OpenSSH_9.6\nsftp.beta.example {their_line}\n")
    args = ["partners", "add", "BETA", "--name", "Beta", "--remote-host", "sftp.beta.example", "--remote-port",
            "2022", "--remote-user", "gateway", "--remote-key", str(ours), "--remote-password-env", "BETA_SFTP_PW"]

    unpinned = run(home, *args)
    assert unpinned.exit_code == 1 and "ssh-keyscan -t ed25519 sftp.beta.example" in unpinned.output
    assert not (home / "partners" / "BETA.toml").exists()

    result = run(home, *args, "--remote-host-key", str(keyscan), "--upload-dir", "/in", "--poll-dir", "/out",
                 "--poll-seconds", "30", "--after-poll", "move", "--move-dir", "/done",
                 env={"BETA_SFTP_PW": secret})
    assert result.exit_code == 0, result.output
    assert f"pinned their SFTP host key {ssh_fingerprint(their_line)}" in result.output
    assert our_line in result.output                                   # our public key, for their authorized_keys
    text = (home / "partners" / "BETA.toml").read_text()
    assert 'password = "env:BETA_SFTP_PW"' in text and secret not in text and secret not in result.output
    assert f'host_key = "{their_line}"' in text

    monkeypatch.setenv("BETA_SFTP_PW", secret)
    remote = load_deployment(home).partners["BETA"].sftp_remote
    assert remote is not None and remote.password == secret and remote.key == ours
    assert (remote.host, remote.port, remote.username) == ("sftp.beta.example", 2022, "gateway")
    assert (remote.upload_dir, remote.poll_dir, remote.poll_seconds) == ("/in", "/out", 30.0)
    assert (remote.after_poll, remote.move_dir) == ("move", "/done")

    orphan = run(home, "partners", "add", "GAMMA", "--name", "Gamma", "--poll-dir", "/out")
    assert orphan.exit_code == 1 and "--poll-dir is a setting of the partner's SFTP server" in orphan.output


def test_partners_show_prints_our_host_key_fingerprint_and_theirs(home, tmp_path, monkeypatch):
    _, their_client = ssh_key_pair(tmp_path, "beta", "beta@laptop")
    ours, _ = ssh_key_pair(tmp_path, "ours")
    _, their_host = ssh_key_pair(tmp_path, "their_host")
    monkeypatch.setenv("BETA_SFTP_PW", "their-Server-Password-42")
    added = run(home, "partners", "add", "BETA", "--name", "Beta", "--sftp-key", their_client, "--sftp-password",
                "--remote-host", "sftp.beta.example", "--remote-user", "gateway", "--remote-key", str(ours),
                "--remote-password-env", "BETA_SFTP_PW", "--remote-host-key", their_host, "--poll-dir", "/out",
                input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    our_host = ssh_fingerprint((home / "certs" / "ssh_host_ed25519_key.pub").read_text())

    result = run(home, "partners", "show", "BETA")
    assert result.exit_code == 0, result.output
    out = result.output
    account = out[out.index("SFTP: their account on our server"):out.index("SFTP: what the partner needs from us")]
    assert "username     beta" in account and "password     set" in account
    assert ssh_fingerprint(their_client) in account
    needs = out[out.index("SFTP: what the partner needs from us"):out.index("SFTP: their server")]
    assert "host         127.0.0.1" in needs and "port         2222" in needs and our_host in needs
    server = out[out.index("SFTP: their server"):]
    assert f"{ssh_fingerprint(their_host)}  (ssh-ed25519, pinned)" in server and "poll_dir     /out" in server
    assert "scrypt$" not in out and "their-Server-Password-42" not in out

    shown = run(home, "partners", "show", "BETA", "--json")
    data = json.loads(shown.output)
    assert data["sftp"]["server"]["host_keys"][0]["fingerprint"] == our_host
    assert data["sftp"]["authorized_keys"][0]["fingerprint"] == ssh_fingerprint(their_client)
    assert data["sftp"]["password"] is True and "scrypt$" not in shown.output
    assert data["sftp_remote"]["host_key"]["fingerprint"] == ssh_fingerprint(their_host)
    assert data["sftp_remote"]["password"] is True and "their-Server-Password-42" not in shown.output


# --------------------------------------------------------------------------- partners test


@contextmanager
def http_server(ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    """A real aiohttp server on 127.0.0.1 in its own thread; yields the port. GET /as2 answers 405 like AS2 servers."""
    async def as2(request: web.Request) -> web.Response:
        return web.Response(status=405 if request.method == "GET" else 200)

    app = web.Application()
    app.router.add_route("*", "/as2", as2)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield runner.addresses[0][1]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_partners_test_reaches_a_real_server_and_reports_a_closed_port(home):
    as2_home(home)
    with http_server() as port:
        write_partner(home, "BETA", "certs/partners/BETA.pem", url=f"http://127.0.0.1:{port}/as2")
        result = run(home, "partners", "test", "BETA")
    assert result.exit_code == 0, result.output
    assert f"url: http://127.0.0.1:{port}/as2 answers (HTTP 405)" in result.output and ": ok, 364 days left" in result.output

    port = closed_port()
    write_partner(home, "BETA", "certs/partners/BETA.pem", url=f"http://127.0.0.1:{port}/as2")
    result = run(home, "partners", "test", "BETA")
    assert result.exit_code == 1
    assert f"url: http://127.0.0.1:{port}/as2: cannot connect: Connection refused" in result.output


def test_partners_test_verifies_tls_and_accepts_the_configured_ca(home, tmp_path):
    as2_home(home)
    server_cert = make_cert("127.0.0.1", days=30, san_ip="127.0.0.1")
    (tmp_path / "tls.pem").write_bytes(pem(server_cert))
    (tmp_path / "tls.key").write_bytes(key_pem())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.pem", tmp_path / "tls.key")
    with http_server(context) as port:
        url = f"https://127.0.0.1:{port}/as2"
        write_partner(home, "BETA", "certs/partners/BETA.pem", url=url)
        untrusted = run(home, "partners", "test", "BETA")
        write_partner(home, "BETA", "certs/partners/BETA.pem", url=url, extra=f'ca_file = "{tmp_path / "tls.pem"}"\n')
        trusted = run(home, "partners", "test", "BETA")
    assert untrusted.exit_code == 1 and f"url: {url}: TLS certificate not trusted" in untrusted.output
    assert trusted.exit_code == 0 and f"url: {url} answers (HTTP 405)" in trusted.output


def test_partners_test_fails_on_expired_certificates_and_non_as2_partners(home):
    enable_as2(home, write_identity(home, "ours", make_cert("OURS", days=365)))
    write_partner(home, "BETA", write_partner_cert(home, "BETA", make_cert("BETA", days=-1, starts=-200)))
    result = run(home, "partners", "test", "BETA")
    assert result.exit_code == 1
    assert ": expired, -2 days left" in result.output and "none is valid now" in result.output
    assert "url: none" in result.output
    acme = run(home, "partners", "test", "ACME")
    assert acme.exit_code == 1 and "partner ACME does not use AS2" in acme.output
