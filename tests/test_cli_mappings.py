"""`gateway mappings list|test` in-process, against a temporary deployment holding copies of golden pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.cli_mappings import first_difference

REPO = Path(__file__).parent.parent


def _golden(mapping: str) -> Path:
    # The inbound goldens are moving from tests/golden/ to mappings/golden/.
    moved = REPO / "mappings" / "golden" / mapping
    return moved if moved.is_dir() else REPO / "tests" / "golden" / mapping


def _copy_mapping(home: Path, mapping: str, cases: list[str]) -> Path:
    """Copy mappings/<mapping>.toml and the named golden files into the deployment; returns the golden dir."""
    (home / "mappings").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "mappings" / f"{mapping}.toml", home / "mappings")
    target = home / "mappings" / "golden" / mapping
    target.mkdir(parents=True, exist_ok=True)
    for name in cases:
        shutil.copy2(_golden(mapping) / name, target / name)
    return target


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dep"
    _copy_mapping(home, "edifact-orders", ["basic.input.edi", "basic.expected.json",
                                           "missing_optionals.input.edi", "missing_optionals.expected.json"])
    return home


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), "mappings", *args])


def _edit_expected(path: Path, change) -> None:
    documents = json.loads(path.read_text(encoding="utf-8"))
    change(documents)
    path.write_text(json.dumps(documents, indent=2), encoding="utf-8")


# --- list -------------------------------------------------------------------------------------------
def test_list_json_describes_each_mapping_with_its_golden_count(home: Path) -> None:
    result = run(home, "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"name": "edifact-orders", "direction": "inbound", "format": "edifact",
                                          "message": "ORDERS", "versions": [], "document": "order", "auto": True,
                                          "golden": 2}]


def test_list_prints_a_table(home: Path) -> None:
    result = run(home, "list")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "DIRECTION", "FORMAT", "MESSAGE", "VERSIONS", "DOCUMENT", "AUTO", "GOLDEN"]
    assert row.split() == ["edifact-orders", "inbound", "edifact", "ORDERS", "any", "order", "yes", "2"]


# --- test: pass, fail, config errors -------------------------------------------------------------------
def test_golden_pairs_pass(home: Path) -> None:
    result = run(home, "test")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["PASS edifact-orders/basic", "PASS edifact-orders/missing_optionals",
                                          "2 passed, 0 failed, 0 skipped"]


def test_named_mapping_runs_only_its_cases(home: Path) -> None:
    result = run(home, "test", "edifact-orders")
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed, 0 skipped" in result.stdout


def test_broken_expected_value_fails_naming_the_path(home: Path) -> None:
    # basic.input.edi line 2 orders QTY+21:12:PCE; the expected file now claims 13.
    _edit_expected(home / "mappings/golden/edifact-orders/basic.expected.json",
                   lambda docs: docs[0]["lines"][1].update(quantity="13"))
    result = run(home, "test")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "FAIL edifact-orders/basic",
        '    at documents[0].lines[1].quantity: expected "13", got "12"',
        "PASS edifact-orders/missing_optionals",
        "1 passed, 1 failed, 0 skipped"]


def test_key_missing_from_expected_fails_naming_the_path(home: Path) -> None:
    _edit_expected(home / "mappings/golden/edifact-orders/basic.expected.json",
                   lambda docs: docs[0].pop("currency"))
    result = run(home, "test")
    assert result.exit_code == 1
    assert '    at documents[0].currency: expected (missing), got "EUR"' in result.stdout.splitlines()


def test_missing_expected_file_fails(home: Path) -> None:
    (home / "mappings/golden/edifact-orders/missing_optionals.expected.json").unlink()
    result = run(home, "test")
    assert result.exit_code == 1
    assert "    no expected file missing_optionals.expected.json" in result.stdout.splitlines()


def test_document_breaking_the_schema_fails(home: Path) -> None:
    # A mapping that takes the GTIN from the buyer's article code: the comparison with an expected
    # file written the same way passes, but "B-1001" is no GTIN, and the schema says so.
    toml = home / "mappings" / "edifact-orders.toml"
    text = toml.read_text(encoding="utf-8")
    start = text.index('"item.gtin" = [')
    end = text.index("]\n", start) + 2
    toml.write_text(text[:start] + '"item.gtin" = { find = "PIA/2-6", where = "2=IN|BP", take = 1 }\n' + text[end:],
                    encoding="utf-8")
    (home / "mappings/golden/edifact-orders/missing_optionals.input.edi").unlink()

    def change(docs: list) -> None:
        for line, code in zip(docs[0]["lines"], ["B-1001", "B-1002", "B-1003"]):
            line["item"]["gtin"] = code
    _edit_expected(home / "mappings/golden/edifact-orders/basic.expected.json", change)
    result = run(home, "test")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "FAIL edifact-orders/basic"
    assert lines[1:4] == [f"    schema: documents[0].lines[{n}].item.gtin: 'B-100{n + 1}' does not match "
                          "^\\d{8,14}$ (expected 8 to 14 digits)" for n in range(3)]


def test_unknown_mapping_name_exits_2(home: Path) -> None:
    result = run(home, "test", "edifact-orders", "nope")
    assert result.exit_code == 2
    assert result.stderr == "error: unknown mapping 'nope' (known: edifact-orders)\n"
    assert result.stdout == ""


def test_invalid_mapping_file_exits_2(home: Path) -> None:
    (home / "mappings" / "broken.toml").write_text('[mapping]\nformat = "edifact"\n', encoding="utf-8")
    result = run(home, "test")
    assert result.exit_code == 2
    assert "invalid mappings in" in result.stderr and "mappings/broken.toml" in result.stderr


def test_deployment_without_mappings_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path, "list")
    assert result.exit_code == 2
    assert "has no mappings/ directory" in result.stderr


def test_outbound_golden_pair_runs(home: Path) -> None:
    _copy_mapping(home, "out-x12-850", ["basic.input.json", "basic.expected.x12"])
    result = run(home, "test", "out-x12-850")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["PASS out-x12-850/basic", "1 passed, 0 failed, 0 skipped"]


# --- the difference finder ------------------------------------------------------------------------------
def test_first_difference_reports_paths_types_and_lengths() -> None:
    assert first_difference({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "x"}]}) is None
    assert first_difference({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "y"}]}, "d") == ("d.a[1].b", "x", "y")
    assert first_difference({"q": "1"}, {"q": 1}) == ("q", "1", 1)
    assert first_difference({"q": 1}, {"q": 1.0}) == ("q", 1, 1.0)        # JSON tells 1 and 1.0 apart
    path, want, have = first_difference([1, 2], [1])
    assert (path, want) == ("[1]", 2) and have is not None and have != 2   # the missing marker
