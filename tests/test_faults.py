"""Fault matrix: real gateway processes hit by kills, full disks, database outages, bad targets, clock jumps and rot."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fault_helpers import (FaultTarget, SilentAs2Partner, archive_of, free_port, post_until_mdn, fault_gateway, inbox_of, log_events, read_store, reconcile,
                           seeded, send_orders)
from harness import GatewayProcess, edifact_order, wait_for

pytestmark = pytest.mark.slow

# FAULTS_LONG=1: more files, messages and kills per case (minutes instead of seconds).
LONG = os.environ.get("FAULTS_LONG") == "1"


@pytest.fixture
def fault_target():
    recording = FaultTarget()
    yield recording
    recording.close()


@pytest.fixture
def gateways():
    """Gateways a test started; stopped (or reaped after a kill) at the end."""
    started: list[GatewayProcess] = []
    yield started
    for gw in started:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait(10)


def _start(gateways: list[GatewayProcess], gw: GatewayProcess) -> GatewayProcess:
    if gw not in gateways:
        gateways.append(gw)
    return gw.start()


# --------------------------------------------------------------------------- SIGKILL


def test_sigkill_during_inbox_receipt_loses_and_doubles_nothing(tmp_path, fault_target, gateways):
    rng = seeded("receipt")
    gw = _start(gateways, fault_gateway(tmp_path, fault_target))
    sent: list[str] = []
    rounds, per_round = (8, 150) if LONG else (3, 40)
    for round_no in range(rounds):   # a kill per round, at a seeded point while files are being taken
        archived = len(list(archive_of(gw).glob("*.edi"))) if archive_of(gw).exists() else 0
        sent += send_orders(gw, f"PO-RCPT{round_no}", per_round, first=0)
        wait_for(lambda: archive_of(gw).exists() and len(list(archive_of(gw).glob("*.edi"))) > archived, 20,
                 "this run to take files")
        time.sleep(rng.uniform(0.0, 0.4))
        taken_before_kill = len(list(archive_of(gw).glob("*.edi")))
        gw.kill()
        waiting = len(list(inbox_of(gw).glob("*.edi")))
        gw.start()
        print(f"kill {round_no}: {taken_before_kill} archived, {waiting} still in the inbox")
    result = reconcile(gw, fault_target, sent)
    # Partner: every file left its inbox (all archived), none refused. Operator: one processed message each.
    assert {f"{po}.edi" for po in sent} <= {p.name for p in archive_of(gw).iterdir()}
    assert result.message_statuses["processed"] == len(sent), result
    assert set(result.message_statuses) <= {"processed", "duplicate"}, result
    assert result.delivered == rounds * per_round and result.dead == set()
    print(f"reconciled: {result}")


def test_sigkill_after_store_before_archive_takes_the_file_once(tmp_path, fault_target, gateways):
    """The bytes are committed but the file cannot leave the inbox (archive blocked), then a kill."""
    gw = fault_gateway(tmp_path, fault_target)
    archive = archive_of(gw)
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_text("not a directory: archiving fails after the store commit")
    _start(gateways, gw)
    sent = send_orders(gw, "PO-NOARCH", 5)
    view = wait_for(lambda: (lambda v: v if len(v.messages) >= 5 else None)(read_store(gw)), 20,
                    "five stored messages")
    time.sleep(0.5)
    gw.kill()
    # The partner still sees every file in its inbox: nothing was acknowledged by moving it.
    assert sorted(p.name for p in inbox_of(gw).iterdir()) == sorted(f"{po}.edi" for po in sent)
    archive.unlink()
    gw.start()
    result = reconcile(gw, fault_target, sent)
    view = read_store(gw)
    # Operator: the re-taken files are recorded as duplicates of the stored ones, not processed again.
    assert result.message_statuses["processed"] == 5, result
    assert set(result.message_statuses) <= {"processed", "duplicate"}, result
    assert sorted(p.name for p in archive.iterdir()) == sorted(f"{po}.edi" for po in sent)
    errors = [e for e in log_events(gw, 1) if e.get("level") == "error"]
    assert errors and all("archive" in (e.get("event", "") + str(e.get("exception", ""))).lower()
                          or "not a directory" in str(e).lower() for e in errors), errors[:3]
    print(f"reconciled: {result}; messages {len(view.messages)}")


def test_sigkill_during_delivery_redelivers_under_the_same_key(tmp_path, fault_target, gateways):
    rng = seeded("delivery")
    fault_target.delay = 1.0    # a slow target: deliveries are in flight when the kill comes
    gw = _start(gateways, fault_gateway(tmp_path, fault_target))
    count, kills = (120, 4) if LONG else (30, 1)
    sent = send_orders(gw, "PO-INFLIGHT", count)
    in_flight = 0
    for _ in range(kills):
        wait_for(lambda: fault_target.in_flight >= 2, 30, "deliveries in flight")
        time.sleep(rng.uniform(0.0, 0.8))
        in_flight += fault_target.in_flight
        gw.kill()
        gw.start()
    fault_target.delay = 0.0
    result = reconcile(gw, fault_target, sent, timeout=180 if LONG else 90)
    # The target finished the requests the dead process had open: those documents come again after
    # the lease expires, under the same key (the consumer dedupes by Idempotency-Key).
    assert 1 <= result.redeliveries <= in_flight + 4 * kills, (result, in_flight)
    assert result.message_statuses == {"processed": count}
    # Operator: nothing waiting, nothing dead; the taken-over claims are in the timeline.
    assert gw.cli_json("queue", "list") == [] and gw.cli_json("dlq", "list") == []
    print(f"in flight at the kill: {in_flight}; reconciled: {result}")


# --------------------------------------------------------------------------- the target misbehaves


@pytest.mark.parametrize("fault", ["500", "slow", "close", "late"])
def test_target_faults_are_retried_with_the_same_key_until_delivered(tmp_path, fault_target, gateways, fault):
    behaviour = {"500": 500, "slow": "ok", "close": "close", "late": "late"}[fault]
    fault_target.fault = lambda key, attempt: behaviour if attempt <= 2 else "ok"   # two bad answers per document
    if fault == "slow":
        fault_target.delay = 0.6    # slower than usual, inside the timeout: no retry needed
    fault_target.late_seconds = 1.5
    gw = _start(gateways, fault_gateway(tmp_path, fault_target, timeout=1))
    sent = send_orders(gw, f"PO-T{fault.upper()}", 5)
    result = reconcile(gw, fault_target, sent, timeout=60)
    view = read_store(gw)
    retries = view.events_named("retry-scheduled")
    if fault == "slow":
        assert retries == [] and result.attempts == 5 and result.redeliveries == 0
    else:
        assert len(retries) == 10, [e["detail"] for e in retries]   # two per document, then delivered
        phrase = {"500": "HTTP 500", "close": "cannot", "late": "no answer from"}[fault]
        assert all(phrase.lower() in e["detail"].lower() for e in retries), [e["detail"] for e in retries][:3]
        assert all(fault_target.tries[k] == 3 for k in fault_target.tries), fault_target.tries
    if fault == "late":   # the target kept each late copy: three copies, one key
        assert result.redeliveries == 10, result
    else:
        assert result.redeliveries == 0, result
    assert {d["attempts"] for d in view.deliveries} == ({1} if fault == "slow" else {3})
    print(f"{fault}: retry errors {sorted({e['detail'][60:160] for e in retries})[:3]}; {result}")


# --------------------------------------------------------------------------- a corrupt blob


def test_corrupt_blob_is_dead_lettered_never_sent_and_the_gateway_keeps_running(tmp_path, fault_target, gateways):
    fault_target.fault = lambda key, attempt: 503   # hold the deliveries while a blob rots
    gw = _start(gateways, fault_gateway(tmp_path, fault_target))
    sent = send_orders(gw, "PO-ROT", 3)
    view = wait_for(lambda: (lambda v: v if len(v.documents) == 3 else None)(read_store(gw)), 20, "three documents")
    victim = next(d for d in view.documents if d["number"] == "PO-ROT-0001")
    blob = gw.home / "var" / "blobs" / victim["blob_sha256"][:2] / victim["blob_sha256"]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    sent_before = {k for _, _, k in fault_target.attempts}
    fault_target.fault = lambda key, attempt: "ok"
    result = reconcile(gw, fault_target, sent, dead={"PO-ROT-0001"})
    # Partner: its file was taken (archived). Target: never a byte of the damaged document after the rot.
    assert victim["idempotency_key"] in sent_before
    assert all(r["headers"]["Idempotency-Key"] != victim["idempotency_key"] for r in fault_target.received)
    # Operator: the dead letter names the blob and says corrupt; the log line names the message.
    assert f"blob {victim['blob_sha256']} is corrupt" in result.dead_errors["PO-ROT-0001"]
    [dlq] = gw.cli_json("dlq", "list")
    assert "corrupt" in dlq["last_error"]
    lines = [e for e in log_events(gw) if "corrupt" in str(e.get("event", ""))]
    assert lines and lines[0]["level"] == "error" and dlq["id"] in lines[0]["event"], lines
    # (The log line lacks message_id/partner: stdlib `extra` is dropped by gateway/logs.py; see the report.)
    timeline = [e for e in read_store(gw).events if e["message_id"] == victim["message_id"] and "corrupt" in e["detail"]]
    assert timeline and timeline[0]["delivery_id"] == dlq["id"], timeline
    assert gw.proc.poll() is None

    # The raw bytes rot too: a replay refuses with a BlobError naming the message, and sends nothing.
    raw_sha = next(m["raw_sha256"] for m in read_store(gw).messages if m["id"] == victim["message_id"])
    raw = gw.home / "var" / "blobs" / raw_sha[:2] / raw_sha
    raw.write_bytes(raw.read_bytes().replace(b"PO-ROT-0001", b"PO-ROT-0009"))
    attempts = len(fault_target.attempts)
    replay = gw.cli("replay", victim["message_id"], check=False)
    assert replay.returncode == 1 and f"blob {raw_sha} is corrupt" in replay.stderr, replay
    time.sleep(1.0)
    assert len(fault_target.attempts) == attempts and gw.proc.poll() is None
    print(f"dead letter: {dlq['last_error']}; replay: {replay.stderr.strip()}")


# --------------------------------------------------------------------------- disk full


def test_disk_full_while_storing_keeps_files_in_the_inbox_until_space_returns(tmp_path, fault_target, gateways):
    gw = fault_gateway(tmp_path, fault_target)
    blobs = gw.home / "var" / "blobs"
    blobs.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(blobs)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        _start(gateways, gw)
        # ~300 KB each (and a larger canonical document): the raw bytes of 10 alone cannot fit in 2 MB.
        sent = send_orders(gw, "PO-FULL", 10, lines=5000)
        def stuck():
            left = sorted(p.name for p in inbox_of(gw).glob("*.edi"))
            full = [e for e in log_events(gw) if "No space left" in str(e)]
            return (left, full) if left and full else None
        left, full = wait_for(stuck, 60, "the disk to fill with files still waiting")
        time.sleep(2.0)   # a rescan or two while full: nothing may be archived without being stored
        view = read_store(gw)
        stored_files = {m["filename"] for m in view.messages}
        archived = {p.name for p in archive_of(gw).iterdir()} if archive_of(gw).exists() else set()
        assert archived <= stored_files
        waiting = sorted(p.name for p in inbox_of(gw).glob("*.edi"))
        assert waiting and len(waiting) + len(archived) == 10, (waiting, archived)
        print(f"full: {len(archived)} archived, {len(waiting)} waiting; error: {full[0].get('event')} "
              f"{str(full[0].get('exception', ''))[-160:]}")
        assert gw.proc.poll() is None
        subprocess.run(["mount", "-o", "remount,size=64m", str(blobs)], check=True)
        result = reconcile(gw, fault_target, sent, timeout=90)
        print(f"after space returned: {result}")
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.stop()
        subprocess.run(["umount", "-l", str(blobs)], capture_output=True)


def test_replay_of_a_corrupt_raw_blob_is_a_clear_error_naming_the_message(tmp_path, target):
    from harness import make_deployment
    from gateway.model import Channel, Received
    from gateway.store import Store

    home = make_deployment(tmp_path / "gw", target.url)
    store = Store.open(f"sqlite:///{home / 'var' / 'gateway.db'}", home / "var" / "blobs")
    try:
        stored = store.receive(Received(raw=edifact_order("PO-REPLAY-ROT"), channel=Channel("inbox"), partner="ACME",
                                        filename="po.edi"))
        message_id = stored.message.id
        sha = store.message(message_id).raw_sha256
    finally:
        store.close()
    blob = home / "var" / "blobs" / sha[:2] / sha
    blob.write_bytes(blob.read_bytes().replace(b"PO-REPLAY-ROT", b"PO-REPLAY-ROX"))
    replay = GatewayProcess(home).cli("replay", message_id, check=False)
    assert replay.returncode == 1 and "Traceback" not in replay.stderr, replay.stderr
    assert message_id in replay.stderr and "corrupt" in replay.stderr, replay.stderr


# --------------------------------------------------------------------------- the partner's MDN never arrives


def test_async_mdn_never_arriving_is_retried_then_dead_lettered(tmp_path, fault_target, gateways):
    from gateway.as2 import generate_identity

    partner = SilentAs2Partner()
    try:
        gw = fault_gateway(tmp_path, fault_target, retry="max_attempts = 3\ninitial_delay = 0.2\njitter = 0.0\n")
        key, cert = generate_identity("HQGW")
        _, their_cert = generate_identity("ACMEAS2")
        (gw.home / "certs").mkdir(exist_ok=True)
        (gw.home / "certs" / "hq.pem").write_bytes(key + cert)
        (gw.home / "certs" / "acme.cert.pem").write_bytes(their_cert)
        with (gw.home / "gateway.toml").open("a") as fh:
            fh.write(f'\n[http]\nport = {free_port()}\n[as2]\nas2_id = "HQGW"\nidentities = ["certs/hq.pem"]\n'
                     'mdn_timeout = 1\n')
        with (gw.home / "partners" / "ACME.toml").open("a") as fh:
            fh.write(f'\n[as2]\nid = "ACMEAS2"\nurl = "{partner.url}"\ntimeout = 2\nmdn = "async"\n'
                     'certificates = ["certs/acme.cert.pem"]\n')
        _start(gateways, gw)
        invoice = tmp_path / "invoice.edi"
        invoice.write_bytes(edifact_order("PO-NOMDN"))
        sent = gw.cli("send", str(invoice), "--partner", "ACME", "--channel", "as2", "--timeout", "30", check=False)
        # Partner: three POSTs of one message, one Message-ID (it can drop the repeats), each asking for an async MDN.
        assert len(partner.posts) == 3, partner.posts
        assert len({p["Message-ID"] for p in partner.posts}) == 1
        assert all(p.get("Receipt-Delivery-Option") for p in partner.posts)
        # Operator: `gateway send` says dead; the dead letter says the MDN did not come; the dlq lists it.
        assert sent.returncode != 0 and "dead" in (sent.stdout + sent.stderr), sent
        [dead] = gw.cli_json("dlq", "list")
        assert dead["target"] == "as2:ACME" and dead["attempts"] == 3, dead
        assert "mdn" in dead["last_error"].lower(), dead["last_error"]
        retries = read_store(gw).events_named("retry-scheduled")
        assert len(retries) == 2 and all("mdn" in e["detail"].lower() for e in retries), retries
        view = read_store(gw)
        assert [d["status"] for d in view.deliveries] == ["dead"]
        assert all(m["status"] != "received" for m in view.messages)
        assert fault_target.attempts == []
        print(f"send: {(sent.stdout + sent.stderr).strip()}; dead letter: {dead['last_error']}")
    finally:
        partner.close()


# --------------------------------------------------------------------------- clock jumps

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def _gateway_on_a_fake_clock(tmp_path, fault_target, gateways) -> tuple[GatewayProcess, Path]:
    """A gateway whose wall clock follows the offset file (libfaketime), its monotonic clock real."""
    if not FAKETIME_LIB.exists():
        pytest.skip("libfaketime is not installed (apt-get install -y faketime)")
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    clock = {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
             # Faking CLOCK_MONOTONIC backwards would freeze every asyncio timer, which no real clock does.
             # (With this flag libfaketime 0.9.10 breaks time.sleep with EINVAL; `gateway serve` does not use it.)
             "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    gw = fault_gateway(tmp_path, fault_target, env=clock)
    _start(gateways, gw)
    return gw, offset


def test_wall_clock_jump_forward_loses_and_doubles_nothing(tmp_path, fault_target, gateways):
    gw, offset = _gateway_on_a_fake_clock(tmp_path, fault_target, gateways)
    # Retries pending, then the clock jumps 2 h ahead: leases and backoffs all look expired at once.
    fault_target.fault = lambda key, attempt: 503
    sent = send_orders(gw, "PO-CLKFWD", 5)
    wait_for(lambda: len(fault_target.attempts) >= 10, 30, "failing attempts before the jump")
    offset.write_text("+2h\n")
    fault_target.fault = lambda key, attempt: "ok"
    sent += send_orders(gw, "PO-CLKFWD", 5, first=5)
    result = reconcile(gw, fault_target, sent, timeout=30)
    stamps = [e["timestamp"] for e in log_events(gw) if e.get("event") == "delivered"]
    assert stamps and stamps[-1][11:13] != time.strftime("%H", time.gmtime()), "the clock did not jump"
    assert result.message_statuses == {"processed": 10}
    print(f"forward: {result}")


def test_wall_clock_jump_back_does_not_strand_retries(tmp_path, fault_target, gateways):
    gw, offset = _gateway_on_a_fake_clock(tmp_path, fault_target, gateways)
    offset.write_text("+2h\n")
    # Retries scheduled on the +2 h clock (max_delay 1 s), then the clock returns to the real time.
    fault_target.fault = lambda key, attempt: 503 if attempt <= 2 else "ok"
    sent = send_orders(gw, "PO-CLKBACK", 5)
    wait_for(lambda: sum(1 for k, a, w in fault_target.outcomes if w == "503" and a == 1) >= 5, 30,
             "the first failed attempt of each order")
    offset.write_text("+0\n")
    started = time.monotonic()
    try:
        result = reconcile(gw, fault_target, sent, timeout=8)   # max_delay is 1 s: 8 s is plenty
    finally:
        waiting = GatewayProcess(gw.home).cli_json("queue", "list")   # the operator's view, on the real clock
        print(f"after the jump back: {len(waiting)} waiting, next attempts "
              f"{sorted({time.strftime('%H:%M', time.gmtime(d['next_attempt_at'])) for d in waiting})}")
    print(f"back: {result}; delivered {time.monotonic() - started:.1f} s after the jump back")


# --------------------------------------------------------------------------- the database goes away


def _pg_cluster() -> tuple[str, str]:
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []
    if not versions or not shutil.which("pg_ctlcluster"):
        pytest.skip("no local PostgreSQL cluster managed by pg_ctlcluster")
    return versions[-1].parent.name, "main"


def _pg(action: str, version: str, cluster: str) -> None:
    done = subprocess.run(["pg_ctlcluster", version, cluster, action], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"pg_ctlcluster {version} {cluster} {action} not permitted: {done.stderr.strip()}")


@pytest.mark.postgres
@pytest.mark.skipif(os.environ.get("FAULTS_PG_RESTART") != "1",
                    reason="stops the shared PostgreSQL server for a while: set FAULTS_PG_RESTART=1 (no other tests)")
def test_postgresql_stopped_and_started_while_running_loses_nothing(tmp_path, fault_target, gateways):
    psycopg = pytest.importorskip("psycopg")
    from conftest import PG_ADMIN_URL, _libpq_url, _with_database

    version, cluster = _pg_cluster()
    name = f"gw_faults_{os.getpid()}"
    with psycopg.connect(_libpq_url(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(PG_ADMIN_URL, name)
    try:
        fault_target.delay = 0.3    # deliveries in flight when the server goes
        gw = _start(gateways, fault_gateway(tmp_path, fault_target, env={"GATEWAY_STORE_URL": url}))
        sent = send_orders(gw, "PO-PGDOWN", 10)
        wait_for(lambda: len(fault_target.received) >= 3, 30, "the first deliveries")
        _pg("stop", version, cluster)
        try:
            stopped = time.monotonic()
            sent += send_orders(gw, "PO-PGDOWN", 10, first=10)
            time.sleep(8)
            # Partner: files that arrived during the outage are still in its inbox (not acknowledged).
            waiting = sorted(p.name for p in inbox_of(gw).glob("*.edi"))
            assert {f"PO-PGDOWN-{n:04d}.edi" for n in range(10, 20)} <= set(waiting), waiting
            assert gw.proc.poll() is None, gw.log()[-2000:]
        finally:
            _pg("start", version, cluster)
        print(f"server down {time.monotonic() - stopped:.1f} s; {len(waiting)} files waited in the inbox")
        result = reconcile(gw, fault_target, sent, timeout=120)
        assert gw.starts == 1 and gw.proc.poll() is None
        store_errors = [e for e in log_events(gw) if e.get("level") in ("error", "warning")]
        assert store_errors, "the outage left no trace in the log"
        print(f"reconciled: {result}; {len(store_errors)} warnings/errors, first: "
              f"{str(store_errors[0].get('event'))[:200]}")
    finally:
        for gw in gateways:
            gw.stop()
        with psycopg.connect(_libpq_url(PG_ADMIN_URL), autocommit=True, connect_timeout=30) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- SIGKILL while AS2 partners send


def test_sigkill_during_as2_receipt_every_message_gets_a_positive_mdn_once(tmp_path, fault_target, gateways):
    from concurrent.futures import ThreadPoolExecutor

    from gateway.as2 import generate_identity

    rng = seeded("as2")
    port = free_port()
    gw = fault_gateway(tmp_path, fault_target)
    key, cert = generate_identity("HQGW")
    (gw.home / "certs").mkdir(exist_ok=True)
    (gw.home / "certs" / "hq.pem").write_bytes(key + cert)
    with (gw.home / "gateway.toml").open("a") as fh:
        fh.write(f'\n[http]\nport = {port}\n[as2]\nas2_id = "HQGW"\nidentities = ["certs/hq.pem"]\n')
    with (gw.home / "partners" / "ACME.toml").open("a") as fh:
        fh.write('\n[as2]\nid = "ACMEAS2"\nrequire_signature = false\nrequire_encryption = false\n'
                 'sign = ""\nencrypt = ""\nmdn_signed = false\ntimeout = 2\n')   # a partner without certificates
    _start(gateways, gw)
    url = f"http://127.0.0.1:{port}/as2"
    count, kills = (200, 5) if LONG else (40, 2)
    sent = [f"PO-AS2K-{n:04d}" for n in range(count)]
    partner = ThreadPoolExecutor(6)
    try:
        futures = {po: partner.submit(post_until_mdn, url, edifact_order(po), f"<{po}@ACMEAS2>",
                                      as2_from="ACMEAS2", as2_to="HQGW", deadline_seconds=240 if LONG else 60)
                   for po in sent}
        for kill in range(kills):   # kills at seeded points while the partner is sending
            stored = len(read_store(gw).messages)
            wait_for(lambda: len(read_store(gw).messages) > stored + 3, 30, "messages coming in")
            time.sleep(rng.uniform(0.0, 0.5))
            gw.kill()
            time.sleep(0.5)
            gw.start()
        answers = {po: f.result(timeout=300 if LONG else 90) for po, f in futures.items()}
    finally:
        partner.shutdown(wait=False, cancel_futures=True)
    # Partner: every message got a positive MDN in the end; some had to be sent again.
    assert all(b"processed" in mdn and b"error" not in mdn.lower() for _, mdn in answers.values())
    resent = sum(tries - 1 for tries, _ in answers.values())
    result = reconcile(gw, fault_target, sent, partner_inbox=False)
    view = read_store(gw)
    # Operator: one message per Message-ID (a resend of a stored one is recovered, not stored twice).
    assert sorted(m["source_ref"] for m in view.messages) == sorted(f"as2:<{po}@ACMEAS2>" for po in sent)
    assert result.message_statuses == {"processed": count}
    print(f"resent {resent} times; {len(view.events_named('received'))} received events; {result}")
