"""Deployment loading and validation: defaults, secrets, and file: key: problem reports."""

import shutil
from pathlib import Path

import pytest

from gateway.config import check_deployment, load_deployment
from gateway.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path):
    """A copy of the example deployment that a test may edit."""
    for part in ("gateway.toml", "partners", "mappings"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    return tmp_path


def test_example_deployment_is_valid():
    assert check_deployment(REPO) == []
    deployment = load_deployment(REPO)
    acme = deployment.partners["ACME"]
    assert acme.targets_for("order") == ("erp",)
    assert acme.inbox == REPO / "var" / "inbox" / "ACME"
    assert deployment.settings.store.url == f"sqlite:///{REPO}/var/gateway.db"
    assert deployment.settings.targets["erp"].type == "file"


def test_empty_folder_runs_on_defaults_but_check_wants_partners(tmp_path):
    deployment = load_deployment(tmp_path)
    assert deployment.settings.delivery.workers == 8
    assert [str(p) for p in check_deployment(tmp_path)] == ["partners/: -: no partner files: nothing can be received"]


def test_store_url_from_environment(home):
    deployment = load_deployment(home, environ={"GATEWAY_STORE_URL": "postgresql://gw@db/gw"})
    assert deployment.settings.store.url == "postgresql://gw@db/gw"


def test_settings_problems_are_all_reported(home):
    (home / "gateway.toml").write_text(
        '[server]\nlog_level = "loud"\nbogus = 1\n'
        '[delivery]\nworkers = 0\n'
        '[targets.erp]\ntype = "file"\npath = "out"\n'
        '[targets.api]\ntype = "rest"\nurl = "http://127.0.0.1/x"\nsecret = "env:GW_TEST_NOT_SET"\n'
        '[targets.weird]\ntype = "carrier-pigeon"\n')
    problems = [str(p) for p in check_deployment(home, environ={})]
    assert "gateway.toml: server.log_level: must be debug, info, warning or error, got 'loud'" in problems
    assert "gateway.toml: server.bogus: unknown setting" in problems
    assert "gateway.toml: delivery.workers: must be at least 1, got 0" in problems
    assert "gateway.toml: targets.api.secret: environment variable GW_TEST_NOT_SET is not set" in problems
    assert any(p.startswith("gateway.toml: targets.weird.type: must be one of file, rest") for p in problems)
    with pytest.raises(ConfigError):
        load_deployment(home, environ={})


def test_secret_resolved_from_environment(home, monkeypatch):
    monkeypatch.setenv("GW_TEST_SECRET", "s3cret")
    text = (home / "gateway.toml").read_text()
    (home / "gateway.toml").write_text(text + '\n[targets.api]\ntype = "rest"\nurl = "http://127.0.0.1/x"\n'
                                              'secret = "env:GW_TEST_SECRET"\n')
    assert check_deployment(home) == []


def test_broken_partner_file_disables_only_that_partner(home):
    (home / "partners" / "BROKEN.toml").write_text("name = 'unterminated\n")
    (home / "partners" / "GLOBEX.toml").write_text(
        'id = "OTHER"\n[identifiers]\nx12 = ["ZZ:GLOBEX"]\n[[routes]]\ndocument = "order"\ntargets = ["nowhere"]\n')
    deployment = load_deployment(home)
    assert set(deployment.partners) == {"ACME"}
    problems = [str(p) for p in deployment.problems]
    assert any(p.startswith("partners/BROKEN.toml: -: not valid TOML") for p in problems)
    assert "partners/GLOBEX.toml: id: must equal the file name 'GLOBEX' (one file per partner, named by its id)" in problems
    assert "partners/GLOBEX.toml: routes[0].targets: no target 'nowhere' in gateway.toml [targets]" in problems
    assert len(check_deployment(home)) == len(problems)


def test_two_partners_claiming_one_sender_are_flagged(home):
    (home / "partners" / "EVIL.toml").write_text('[identifiers]\nedifact = ["5412345000013"]\n')
    deployment = load_deployment(home)
    assert any("'5412345000013' is also an identifier of partner ACME" in str(p) for p in deployment.problems)
    assert deployment.partner_for_sender("edifact", "14", "5412345000013") is None   # ambiguous: nobody


def test_partner_ids_must_be_safe_for_paths(home):
    (home / "partners" / "bad id!.toml").write_text("")
    problems = [str(p) for p in load_deployment(home).problems]
    assert any("partners/bad id!.toml: id: partner ids use letters" in p for p in problems)


def test_sender_ownership_with_and_without_qualifier(home):
    acme = load_deployment(home).partners["ACME"]
    assert acme.owns("edifact", "14", "5412345000013")
    assert not acme.owns("edifact", "ZZ", "5412345000013")   # qualifier given: must match
    assert not acme.owns("x12", "ZZ", "5412345000013")
    assert acme.owns("x12", "ZZ", "ACMEUS")
