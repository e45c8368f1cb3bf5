"""Golden tests: every tests/golden/<mapping>/<case>.input.* read and mapped equals <case>.expected.json.

The expected files are written by hand from the inputs (never dumped from the engine): they are
the contract of each file in mappings/. Each input is read with the real reader for the
mapping's format, every message is mapped, and the list of documents is compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.mapping import MappingSet, load_mappings

ROOT = Path(__file__).parent
GOLDEN = ROOT / "golden"
MAPPINGS = ROOT.parent / "mappings"
CASES = sorted(GOLDEN.glob("*/*.input.*"))


def _readers() -> dict:
    try:
        from gateway.edi import edifact, x12
    except ImportError as exc:  # the readers are another module's work; say so instead of erroring
        pytest.skip(f"EDI readers not importable yet: {exc}")
    return {"edifact": edifact.parse, "x12": x12.parse}


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings(MAPPINGS)


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name.split('.input.')[0]}"


@pytest.mark.parametrize("input_path", CASES, ids=_case_id)
def test_golden(input_path: Path, mappings: MappingSet) -> None:
    mapping = mappings.get(input_path.parent.name)
    assert mapping is not None, f"tests/golden/{input_path.parent.name}/ has no mappings/{input_path.parent.name}.toml"
    expected_path = input_path.with_name(input_path.name.split(".input.")[0] + ".expected.json")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    read = _readers()[mapping.format]
    documents = []
    for interchange in read(input_path.read_bytes()):
        for message in interchange.messages:
            if mapping.auto:    # the gateway itself would pick this mapping for the message
                assert mappings.find(mapping.format, message.type, message.version) is mapping
            documents.append(mapping.apply(message, interchange.delimiters))
    # Through JSON and back, as a target would receive it (and proving it serializes: no floats).
    assert json.loads(json.dumps(documents)) == expected


def test_every_mapping_has_golden_cases(mappings: MappingSet) -> None:
    for name in mappings.names:
        cases = list((GOLDEN / name).glob("*.input.*"))
        assert len(cases) >= 2, f"mappings/{name}.toml needs at least 2 golden cases in tests/golden/{name}/"
        for case in cases:
            assert case.with_name(case.name.split(".input.")[0] + ".expected.json").exists(), case
