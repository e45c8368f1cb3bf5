"""The `gateway` command in-process: init, check, process (dry run), partners, and operator views."""

import json
import shutil

import pytest
from click.testing import CliRunner

from gateway.cli import main
from harness import REPO, edifact_order


@pytest.fixture
def home(tmp_path):
    result = CliRunner().invoke(main, ["init", str(tmp_path / "dep")])
    assert result.exit_code == 0, result.output
    return tmp_path / "dep"


def run(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args])


def test_init_scaffolds_a_deployment_that_checks_clean(home):
    for part in ("gateway.toml", "partners/ACME.toml", "mappings", "examples/orders-d96a.edi"):
        assert (home / part).exists(), part
    result = run(home, "check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 1 partners, 1 targets")


def test_init_makes_its_own_ssh_host_key_and_copies_no_key_material(tmp_path, monkeypatch):
    import asyncssh

    from gateway import scaffold

    # A source checkout whose certs/ holds a private key someone generated there.
    source = tmp_path / "checkout"
    source.mkdir()
    for part in ("gateway.toml", "partners", "mappings", "certs", "examples"):
        src = scaffold.example_root() / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, source / part)
    (source / "certs" / "gateway.pem").write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")
    monkeypatch.setattr(scaffold, "example_root", lambda: source)
    first, second = tmp_path / "one", tmp_path / "two"
    for target in (first, second):
        assert CliRunner().invoke(main, ["init", str(target)]).exit_code == 0
    assert not (first / "certs" / "gateway.pem").exists()
    key_file = first / "certs" / "ssh_host_ed25519_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = asyncssh.read_private_key(key_file)
    assert key.export_public_key() == (first / "certs" / "ssh_host_ed25519_key.pub").read_bytes()
    assert key.export_public_key() != (second / "certs" / "ssh_host_ed25519_key.pub").read_bytes()
    assert 'host_keys = ["certs/ssh_host_ed25519_key"]' in (first / "gateway.toml").read_text()
    assert run(first, "check").exit_code == 0


def test_init_refuses_to_overwrite(home):
    result = CliRunner().invoke(main, ["init", str(home)])
    assert result.exit_code == 1 and "already holds a deployment" in result.output


def test_check_lists_problems_and_exits_2(home):
    (home / "partners" / "ACME.toml").write_text('[[routes]]\ndocument = "recipe"\ntargets = ["erp"]\n')
    result = run(home, "check")
    assert result.exit_code == 2
    assert "partners/ACME.toml: routes[0].document: must be one of order, invoice" in result.output


def test_process_prints_canonical_documents(home):
    result = run(home, "process", str(home / "examples" / "orders-d96a.edi"))
    assert result.exit_code == 0, result.output
    docs = json.loads(result.output)
    assert len(docs) == 1 and docs[0]["type"] == "order" and docs[0]["partner"] == "ACME"
    assert docs[0]["document"]["number"] == "PO-EXAMPLE-1"
    assert len(docs[0]["document"]["lines"]) == 2
    again = json.loads(run(home, "process", str(home / "examples" / "orders-d96a.edi")).output)
    assert again[0]["idempotency_key"] == docs[0]["idempotency_key"]   # stable: derived from the bytes


def test_process_bad_input_is_one_line_with_position(home, tmp_path):
    bad = tmp_path / "bad.edi"
    bad.write_bytes(edifact_order("PO-1").replace(b"UNT+", b"UNT+X"))
    result = run(home, "process", str(bad), "--partner", "ACME")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {bad}: partner ACME: segment ") and "(UNT)" in lines[0]


def test_process_unknown_partner(home, tmp_path):
    stranger = tmp_path / "s.edi"
    stranger.write_bytes(edifact_order("PO-1", sender="4000000000001"))
    result = run(home, "process", str(stranger))
    assert result.exit_code == 1 and "unknown partner" in result.output
    result = run(home, "process", str(stranger), "--partner", "NOPE")
    assert result.exit_code == 1 and "unknown partner 'NOPE'" in result.output


def test_process_empty_and_binary_files(home, tmp_path):
    (tmp_path / "empty.edi").write_bytes(b"")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    for name, phrase in (("empty.edi", "empty"), ("blob.bin", "binary")):
        result = run(home, "process", str(tmp_path / name))
        assert result.exit_code == 1 and phrase in result.output and name in result.output


def test_partners_list_and_show(home):
    rows = json.loads(run(home, "partners", "list", "--json").output)
    assert [r["id"] for r in rows] == ["ACME"]
    shown = json.loads(run(home, "partners", "show", "ACME", "--json").output)
    assert shown["identifiers"]["edifact"] == ["14:5412345000013"]
    assert run(home, "partners", "show", "NOPE").exit_code == 1


def test_log_and_queue_on_an_empty_store(home):
    assert json.loads(run(home, "log", "list", "--json").output) == []
    assert json.loads(run(home, "queue", "list", "--json").output) == []
    assert json.loads(run(home, "dlq", "list", "--json").output) == []
    result = run(home, "log", "show", "msg_nope")
    assert result.exit_code == 1 and "msg_nope" in result.output
    assert run(home, "log", "list", "--since", "yesterday").exit_code == 2


def test_repository_is_itself_a_valid_deployment():
    result = CliRunner().invoke(main, ["--home", str(REPO), "check"])
    assert result.exit_code == 0, result.output


def test_replay_failed_in_bulk_after_the_cause_is_fixed(home):
    from gateway.config import load_deployment
    from gateway.app import open_store, run_pipeline
    from gateway.model import Channel, Received
    from harness import edifact_order

    deployment = load_deployment(home)
    store = open_store(deployment)
    try:
        ids = []
        for n in range(3):   # a sender ACME's file does not name yet: each fails
            raw = edifact_order(f"PO-R{n}", sender="9999999999999")
            ids.append(store.receive(Received(raw=raw, channel=Channel.INBOX, partner="ACME", filename=f"r{n}.edi",
                                              source_ref=f"test:r{n}")).message.id)
            run_pipeline(store, deployment, ids[-1])
        assert {store.message(i).status.value for i in ids} == {"failed"}
    finally:
        store.close()
    result = run(home, "replay", "--failed")
    assert result.exit_code == 1 and result.output.count("error: replay of msg_") == 1, result.output
    assert result.output.count("rejected: r") == 3, result.output
    acme = home / "partners" / "ACME.toml"
    acme.write_text(acme.read_text().replace('edifact = ["14:5412345000013"]',
                                             'edifact = ["14:5412345000013", "14:9999999999999"]'))
    result = run(home, "replay", "--failed", "--partner", "ACME")
    assert result.exit_code == 0, result.output
    assert "replayed 3 of 3 messages: 3 documents queued" in result.output
    assert run(home, "replay", "--failed").exit_code == 1   # nothing failed any more: nothing named
    assert "name message ids, or use --failed" in run(home, "replay", "--failed").output
