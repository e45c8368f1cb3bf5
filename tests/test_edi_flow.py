"""EDI around the pipeline, with a real store (SQLite and PostgreSQL): acknowledgments both ways, duplicates, XML.

A partner with an account on our SFTP server (so ``outbox:ACME`` reaches them) sends
interchanges; ``run_pipeline`` (the server's own code path) processes them; what the store then
holds — documents, rejected messages, the 997/CONTRL queued back, duplicate events, settled
acknowledgment expectations — is what these tests assert.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import asyncssh

from gateway.app import run_pipeline
from gateway.compose import compose_documents
from gateway.config import load_deployment
from gateway.edi import read
from gateway.edi.acks_read import read_ack
from gateway.edi.serialize import render
from gateway.model import Channel, MessageStatus, Received

REPO = Path(__file__).resolve().parents[1]
ISA = "ISA*00*          *00*          *ZZ*ACMEUS         *ZZ*MYCOMPANY      *261127*0900*U*00401*{icn:09d}*0*P*>~\n"
GS = "GS*PO*ACMEAPP*MYAPP*20261127*0900*{gcn}*X*004010~\n"
GOOD_850 = ("ST*850*{st}~\nBEG*00*SA*PO-{st}**20261127~\nN1*BY*Acme*UL*0614141000012~\n"
            "PO1*1*10*EA*2.50**UP*012345678905~\nCTT*1~\nSE*6*{st}~\n")
# BEG03 (the purchase order number) is mandatory: element 3 of the segment at position 2.
BAD_850 = ("ST*850*{st}~\nBEG*00*SA***20261127~\nN1*BY*Acme*UL*0614141000012~\n"
           "PO1*1*10*EA*2.50**UP*012345678905~\nCTT*1~\nSE*6*{st}~\n")


def x12(*sets: str, icn: int = 101, gcn: int = 101) -> bytes:
    body = "".join(s.format(st=f"{n:04d}") for n, s in enumerate(sets, 1))
    return (ISA.format(icn=icn) + GS.format(gcn=gcn) + body + f"GE*{len(sets)}*{gcn}~\nIEA*1*{icn:09d}~\n").encode()


def edifact_orders(icr: str, *, bad: bool = False) -> bytes:
    bgm = "BGM+220+'" if bad else "BGM+220+PO-E1+9'"     # BGM 1004 (the order number) missing when bad
    segs = ["UNH+1+ORDERS:D:96A:UN", bgm.rstrip("'"), "DTM+137:20261127:102", "NAD+BY+5412345000013::9",
            "LIN+1++8711111000118:EN", "QTY+21:6:PCE", "UNS+S"]
    body = "'".join(segs) + f"'UNT+{len(segs) + 1}+1'"
    return f"UNB+UNOC:3+5412345000013:14+4000001000005:14+261127:0900+{icr}'{body}UNZ+1+{icr}'".encode()


def deployment_in(home: Path, edi: str = "acknowledge = true\n", gateway_extra: str = ""):
    shutil.copytree(REPO / "mappings", home / "mappings")
    (home / "certs").mkdir()
    (home / "partners").mkdir()
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(home / "certs" / "host_key"))
    client = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    (home / "gateway.toml").write_text(
        '[sftp]\nhost_keys = ["certs/host_key"]\n'
        '[edi]\nidentifiers = { edifact = "14:4000001000005", x12 = "ZZ:MYCOMPANY" }\n' + gateway_extra +
        '[targets.erp]\ntype = "file"\npath = "var/erp"\n')
    (home / "partners" / "ACME.toml").write_text(
        '[identifiers]\nedifact = ["14:5412345000013"]\nx12 = ["ZZ:ACMEUS"]\n[inbox]\nenabled = false\n'
        '[[routes]]\ndocument = "*"\ntargets = ["erp"]\n'
        f'[sftp]\nusername = "acme"\nauthorized_keys = ["{client}"]\n[edi]\n{edi}')
    deployment = load_deployment(home)
    assert not deployment.problems, deployment.problems
    return deployment


def receive(store, raw: bytes, name: str, partner: str | None = "ACME") -> str:
    return store.receive(Received(raw=raw, channel=Channel.INBOX, partner=partner, filename=name,
                                  source_ref=f"test:{name}")).message.id


def sent_back(store) -> list[bytes]:
    """The raw EDI of every interchange queued to the partner's outbox, oldest first."""
    found = store.deliveries(target="outbox:ACME", limit=50)
    return [store.document_body(d.document_id) for d in reversed(found)]


def test_partially_bad_x12_group_gets_a_997_accepting_one_and_rejecting_the_other(tmp_path, store):
    deployment = deployment_in(tmp_path)
    message_id = receive(store, x12(GOOD_850, BAD_850), "two.x12")
    outcome = run_pipeline(store, deployment, message_id)

    assert [d.number for d in outcome.documents] == ["PO-0001"]
    assert store.message(message_id).status is MessageStatus.PROCESSED
    rejected = [e for e in store.timeline(message_id) if e.step == "rejected"]
    assert len(rejected) == 1 and "850 0002" in rejected[0].detail and "BEG" in rejected[0].detail
    [ack] = sent_back(store)
    fmt, [interchange] = read(ack)
    assert (interchange.sender.id, interchange.recipient.id) == ("MYCOMPANY", "ACMEUS")
    [message] = interchange.messages
    assert message.type == "997"
    assert (message.group_sender, message.group_recipient) == ("MYAPP", "ACMEAPP")   # their GS03/GS02, swapped
    # One 997 for group 101: set 0001 accepted; 0002 rejected at BEG (position 2), element 3 missing (code 1).
    assert [s for s in ack.decode().splitlines() if s[:2] == "AK"] == [
        "AK1*PO*101~", "AK2*850*0001~", "AK5*A~", "AK2*850*0002~", "AK3*BEG*2**8~", "AK4*3**1~", "AK5*R*5~",
        "AK9*P*2*2*1~"]
    statuses = {(r.group, r.message): r.status for r in read_ack(interchange)}
    assert statuses[("101", "0001")] == "accepted" and statuses[("101", "0002")] == "rejected"
    assert any(e.step == "ack-sent" for e in store.timeline(message_id))


def test_wholly_rejected_edifact_interchange_fails_and_gets_a_negative_contrl(tmp_path, store):
    deployment = deployment_in(tmp_path)
    message_id = receive(store, edifact_orders("E1", bad=True), "bad.edi")
    assert run_pipeline(store, deployment, message_id) is None

    record = store.message(message_id)
    assert record.status is MessageStatus.FAILED and "BGM" in record.error
    [ack] = sent_back(store)
    fmt, [interchange] = read(ack)
    assert interchange.messages[0].type == "CONTRL"
    uci = interchange.messages[0].body[0]
    assert uci.tag == "UCI" and uci.get(1) == "E1" and uci.get(4) == "4"
    [report] = [r for r in read_ack(interchange) if r.message == "1"]
    assert report.status == "rejected"


def test_unreadable_envelope_still_gets_a_negative_acknowledgment(tmp_path, store):
    deployment = deployment_in(tmp_path)
    raw = x12(GOOD_850, icn=202, gcn=202).replace(b"SE*6*0001", b"SE*9*0001")   # wrong segment count
    message_id = receive(store, raw, "count.x12")
    assert run_pipeline(store, deployment, message_id) is None
    assert "SE01 says 9 segments" in store.message(message_id).error
    [ack] = sent_back(store)
    text = ack.decode()
    assert "AK2*850*0001" in text and "AK5*R*4~" in text     # 4: number of included segments does not match


def test_clean_interchange_gets_a_positive_acknowledgment_unless_only_errors_are_wanted(tmp_path, store):
    deployment = deployment_in(tmp_path)
    run_pipeline(store, deployment, receive(store, x12(GOOD_850, icn=303, gcn=303), "ok.x12"))
    [ack] = sent_back(store)
    assert b"AK5*A~" in ack and b"AK9*A*1*1*1~" in ack

    quiet = deployment_in(tmp_path / "quiet", edi="acknowledge = true\nacknowledge_accepted = false\n")
    before = len(sent_back(store))
    run_pipeline(store, quiet, receive(store, x12(GOOD_850, icn=304, gcn=304), "ok2.x12"))
    assert len(sent_back(store)) == before


def test_acknowledgments_carry_gap_free_control_numbers_of_their_own(tmp_path, store):
    deployment = deployment_in(tmp_path)
    for icn in (401, 402, 403):
        run_pipeline(store, deployment, receive(store, x12(GOOD_850, icn=icn, gcn=icn), f"{icn}.x12"))
    numbers = [read(raw)[1][0].control_number for raw in sent_back(store)]
    assert numbers == ["000000001", "000000002", "000000003"]
    assert store.peek_control_number("ACME", "x12", "interchange") == 3


def test_duplicate_interchange_is_rejected_or_processed_as_the_partner_file_says(tmp_path, store):
    deployment = deployment_in(tmp_path, edi="acknowledge = true\nduplicates = \"reject\"\n")
    first = receive(store, x12(GOOD_850, icn=505, gcn=505), "a.x12")
    assert run_pipeline(store, deployment, first) is not None
    # Different bytes (another PO), same interchange control number.
    again = receive(store, x12(GOOD_850.replace("PO-{st}", "PO-X{st}"), icn=505, gcn=506), "b.x12")
    assert run_pipeline(store, deployment, again) is None
    record = store.message(again)
    assert record.status is MessageStatus.FAILED and "duplicate interchange control number" in record.error
    assert [e.outcome for e in store.timeline(again) if e.step == "duplicate-interchange"] == ["rejected"]
    refusal = sent_back(store)[-1].decode()     # after the 997 for the first: a TA1 025 for the repeat
    assert "TA1*000000505*261127*0900*R*025~" in refusal and "ST*997" not in refusal

    lenient = deployment_in(tmp_path / "lenient", edi="duplicates = \"process\"\n")
    third = receive(store, x12(GOOD_850.replace("PO-{st}", "PO-Y{st}"), icn=505, gcn=507), "c.x12")
    assert run_pipeline(store, lenient, third) is not None
    assert [e.outcome for e in store.timeline(third) if e.step == "duplicate-interchange"] == ["processed"]


def test_partner_997_settles_the_invoice_we_sent_and_a_missing_one_becomes_overdue(tmp_path, store):
    deployment = deployment_in(tmp_path, edi="acknowledge = true\nformat = \"x12\"\nexpect_ack_minutes = 60\n")
    partner = deployment.partners["ACME"]
    invoice = {"number": "INV-1", "issue_date": "2026-11-27", "order_number": "PO-1", "currency": "USD",
               "buyer": {"id": "0614141000012", "scheme": "GLN", "name": "Acme"}, "seller": None,
               "lines": [{"line": "1", "item": {"gtin": "012345678905", "buyer_code": None, "seller_code": None,
                                                "description": None},
                          "quantity": "10", "unit": "EA", "unit_price": "2.50", "line_amount": "25.00",
                          "tax_rate": None}],
               "totals": {"net": "25.00", "tax": "0.00", "gross": "25.00"}}
    sent = []
    for n in range(2):
        composed = compose_documents(deployment, partner, "invoice", [dict(invoice, number=f"INV-{n}")],
                                     datetime(2026, 11, 27, tzinfo=timezone.utc))
        message, _ = store.submit_interchange(
            partner="ACME", target="outbox:ACME", format="x12", filename=f"inv-{n}.x12",
            build=lambda nn, c=composed: render(c.envelope, c.messages, nn), idempotency_key=f"inv-{n}",
            expect_ack_within=3600.0, standard=composed.standard, now=1000.0)
        sent.append(message.id)
    # Invoice 0 went out as group 1, set 0001: the partner's 997 accepts it.
    ack = ("ISA*00*          *00*          *ZZ*ACMEUS         *ZZ*MYCOMPANY      *261127*1000*U*00401*000000900*0*P*>~"
           "GS*FA*ACMEUS*MYCOMPANY*20261127*1000*900*X*004010~ST*997*0001~AK1*IN*1~AK2*810*0001~AK5*A~"
           "AK9*A*1*1*1~SE*6*0001~GE*1*900~IEA*1*000000900~").encode()
    ack_id = receive(store, ack, "997.x12")
    before = len(sent_back(store))
    outcome = run_pipeline(store, deployment, ack_id)
    assert outcome is not None and outcome.documents == [] and outcome.acks
    assert len(sent_back(store)) == before     # an acknowledgment is never acknowledged (no ack ping-pong)
    assert {a.status for a in store.acks_of(sent[0])} == {"accepted"}
    assert {a.status for a in store.acks_of(sent[1])} == {"pending"}
    overdue = store.overdue_acks(now=1000.0 + 3601)
    assert {row.message_id for row in overdue} == {sent[1]}
    assert any(e.step == "ack-overdue" for e in store.timeline(sent[1]))


def test_xml_document_from_a_partner_channel_is_checked_against_its_xsd_and_mapped(tmp_path, store):
    deployment = deployment_in(tmp_path)
    [case] = sorted((REPO / "mappings" / "golden" / "xml-acme-order").glob("full.input.xml"))
    outcome = run_pipeline(store, deployment, receive(store, case.read_bytes(), "po.xml"))
    assert outcome is not None and outcome.format == "xml"
    expected = json.loads(case.with_name("full.expected.json").read_text())
    expected = expected[0] if isinstance(expected, list) else expected
    assert outcome.documents[0].envelope["document"] == expected

    broken = case.read_bytes().replace(b'<Quantity unit="PCE">24</Quantity>', b'<Qty unit="PCE">24</Qty>', 1)
    message_id = receive(store, broken, "bad.xml")
    assert run_pipeline(store, deployment, message_id) is None
    assert "does not match" in store.message(message_id).error and "line" in store.message(message_id).error


def test_xml_without_a_partner_channel_is_refused_clearly(tmp_path, store):
    deployment = deployment_in(tmp_path)
    [case] = sorted((REPO / "mappings" / "golden" / "xml-acme-order").glob("full.input.xml"))
    message_id = receive(store, case.read_bytes(), "orphan.xml", partner=None)
    assert run_pipeline(store, deployment, message_id) is None
    assert "names no sender" in store.message(message_id).error


def test_gateway_send_document_maps_canonical_json_to_the_partners_edi_with_fresh_numbers(tmp_path):
    from click.testing import CliRunner

    from gateway.cli import main
    from gateway.store import Store

    home = tmp_path / "home"
    deployment_in(home, edi="format = \"edifact\"\n")
    [case] = sorted((REPO / "mappings" / "golden" / "out-edifact-invoic").glob("*.input.json"))[:1]
    runner = CliRunner()
    for _ in range(2):   # the same file twice: one interchange (idempotent), not two
        result = runner.invoke(main, ["--home", str(home), "send", str(case), "--partner", "ACME",
                                      "--document", "invoice", "--no-wait", "--json"])
        assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"number": "X", "lines": [{"quantity": 1.5}]}))
    result = runner.invoke(main, ["--home", str(home), "send", str(bad), "--partner", "ACME", "--document", "invoice"])
    assert result.exit_code == 1 and "not a valid canonical invoice" in result.output

    store = Store.open(f"sqlite:///{home / 'var' / 'gateway.db'}", home / "var" / "blobs")
    try:
        [raw] = sent_back(store)
        fmt, [interchange] = read(raw)
        assert fmt == "edifact" and interchange.control_number == "1"
        assert (interchange.sender.id, interchange.recipient.id) == ("4000001000005", "5412345000013")
        assert {m.type for m in interchange.messages} == {"INVOIC"}
        data = json.loads(case.read_text())
        documents = data if isinstance(data, list) else [data]
        assert [m.segments[1].get(2) for m in interchange.messages] == [d["number"] for d in documents]   # BGM 1004
    finally:
        store.close()


def test_ta1_follows_the_partner_setting_and_the_isa14_request(tmp_path, store):
    requested = deployment_in(tmp_path / "req", edi="acknowledge = true\nta1 = \"requested\"\n")
    asking = x12(GOOD_850, icn=601, gcn=601).replace(b"*000000601*0*P*", b"*000000601*1*P*")   # ISA14 = 1
    run_pipeline(store, requested, receive(store, asking, "asking.x12"))
    run_pipeline(store, requested, receive(store, x12(GOOD_850, icn=602, gcn=602), "quiet.x12"))
    first, second = sent_back(store)
    assert b"TA1*000000601*261127*0900*A*000~" in first
    assert b"TA1*" not in second and b"AK1*PO*602~" in second


def test_partner_edi_settings_are_checked_and_a_bad_one_disables_only_that_partner(tmp_path):
    home = tmp_path / "home"
    deployment_in(home)
    (home / "partners" / "BETA.toml").write_text(
        '[identifiers]\nx12 = ["ZZ:BETA"]\n[inbox]\nenabled = false\n'
        '[edi]\nacknowledge = "yes"\nta1 = "sometimes"\nack_channel = "as2:BETA"\nbogus = 1\n'
        '[validation]\nrequired = ["not a path"]\n')
    deployment = load_deployment(home)
    assert "BETA" not in deployment.partners and "ACME" in deployment.partners
    problems = {(p.key, p.problem.split(",")[0]) for p in deployment.problems if p.file == "partners/BETA.toml"}
    keys = {key for key, _ in problems}
    assert {"edi.acknowledge", "edi.ta1", "edi.bogus"} <= keys
    assert any(key.startswith("validation.") for key in keys)


def test_log_show_lists_the_acknowledgments_a_sent_interchange_waits_for(tmp_path):
    from click.testing import CliRunner

    from gateway.cli import main

    home = tmp_path / "home"
    deployment_in(home, edi="format = \"x12\"\nexpect_ack_minutes = 30\n")
    [case] = sorted((REPO / "mappings" / "golden" / "out-x12-810").glob("*.input.json"))[:1]
    runner = CliRunner()
    sent = runner.invoke(main, ["--home", str(home), "send", str(case), "--partner", "ACME", "--document", "invoice",
                                "--no-wait", "--json"])
    assert sent.exit_code == 0, sent.output
    message_id = json.loads(sent.output)["message_id"]
    shown = runner.invoke(main, ["--home", str(home), "log", "show", message_id, "--json"])
    acks = json.loads(shown.output)["acknowledgments"]
    assert {(a["level"], a["status"]) for a in acks} >= {("interchange", "pending"), ("message", "pending")}
    text = runner.invoke(main, ["--home", str(home), "log", "show", message_id]).output
    assert "acknowledgments expected" in text and "pending" in text


def test_duplicate_edifact_interchange_gets_contrl_code_26(tmp_path, store):
    deployment = deployment_in(tmp_path)
    assert run_pipeline(store, deployment, receive(store, edifact_orders("D7"), "first.edi")) is not None
    again = edifact_orders("D7").replace(b"PO-E1", b"PO-E2")   # other bytes, same interchange reference
    assert run_pipeline(store, deployment, receive(store, again, "again.edi")) is None
    fmt, [interchange] = read(sent_back(store)[-1])
    uci = interchange.messages[0].body[0]
    assert (uci.tag, uci.get(1), uci.get(4), uci.get(5)) == ("UCI", "D7", "4", "26")


def test_a_message_processed_once_is_not_processed_again_except_by_an_explicit_replay(tmp_path, store):
    deployment = deployment_in(tmp_path, edi="")
    message_id = receive(store, x12(GOOD_850, icn=707, gcn=707), "once.x12")
    assert run_pipeline(store, deployment, message_id) is not None
    assert len(store.deliveries(message_id=message_id)) == 1
    # A second run of the server's path (another node, or the sweep) changes nothing.
    assert run_pipeline(store, deployment, message_id) is None
    assert len([e for e in store.timeline(message_id) if e.step == "processed"]) == 1
    # `gateway replay` does run it again; a result arriving after the message was finished (two nodes
    # processing it at once) is dropped by the store itself.
    outcome = run_pipeline(store, deployment, message_id, replay=True)
    assert outcome is not None
    assert store.record_processed(message_id, format="x12", standard="850 004010", interchange="707",
                                  documents=outcome.documents, only_pending=True) is None
    assert len([e for e in store.timeline(message_id) if e.step == "processed"]) == 2   # the replay's, not a third
