"""Benchmark: AS2 receive throughput, latency and peak memory of `gateway serve`, side by side with pyas2lib 1.4.4.

End to end: `gateway serve` (a subprocess, fresh SQLite deployment in a temp dir) receives N
10 KB EDIFACT ORDERS from partner ACME, signed (sha256) + encrypted (aes256-cbc), each asking
for a signed synchronous MDN, from 16 concurrent aiohttp senders. All messages are built
before timing; latency is POST start -> MDN read. Afterwards every MDN is verified (signature,
disposition, MIC) and every order must be stored, processed and delivered to the test target.
Peak memory: a second, fresh gateway receives one 100 MB signed + encrypted payload; the
figure is its peak RSS (VmHWM) minus its RSS before, over the payload size.

Reference: pyas2lib 1.4.4 in one process parses the same kind of message (built by pyas2lib)
and builds the signed MDN (its ``Message.parse``), on one core; and its peak memory for the
100 MB message, in a subprocess. Our AS2 core (gateway.as2 parse + build_mdn) is measured the
same way for a like-for-like row.

Usage: .venv/bin/python scripts/bench_as2.py [--messages 2000] [--quick] [--only PART] [--json FILE]
                                             [--no-large-reference]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent / "tests")]

from bench_pipeline import percentile  # noqa: E402
from harness import GatewayProcess, RecordingTarget, edifact_order, wait_for  # noqa: E402
from test_as2_e2e import as2_pair  # noqa: E402

from gateway.as2 import Identity, build, build_mdn, load_certificates, load_identity, parse, parse_mdn  # noqa: E402

SENDERS = 16
ORDER_LINES = 172               # edifact_order(..., lines=172) is ~10.2 KB
LARGE_BYTES = 100 * 2**20
GOAL_MSGS_PER_S = 150.0
GOAL_MEMORY_RATIO = 3.0
PARTS = ("throughput", "memory", "reference")
MDN_OPTIONS = "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256"


@dataclass(frozen=True)
class Keys:
    """The two parties' key pairs and certificates, as the deployments in the temp dir hold them."""

    hq_home: Path
    acme_home: Path

    @property
    def acme(self) -> Identity:
        return load_identity((self.acme_home / "certs" / "acme.pem").read_bytes())

    @property
    def hq(self) -> Identity:
        return load_identity((self.hq_home / "certs" / "hq.pem").read_bytes())

    def cert(self, name: str) -> Any:
        home = self.hq_home if name == "hq" else self.acme_home
        return load_certificates((home / "certs" / f"{name}.cert.pem").read_bytes())[0]


@dataclass(frozen=True)
class Prepared:
    """One AS2 request ready to POST, and the MIC its MDN must return."""

    message_id: str
    headers: dict[str, str]
    body: bytes
    mic: str
    mic_algorithm: str


# ----------------------------------------------------------------------------- shared helpers


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "openssl": openssl}


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux clear_refs "5"); False where not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def order(n: int) -> bytes:
    """The n-th distinct ~10 KB order: its own PO number and interchange control reference."""
    return edifact_order(f"AS2B-{n:06d}", icr=str(100000 + n), lines=ORDER_LINES)


def large_payload() -> bytes:
    """100 MB of incompressible bytes, the same in every process (seeded)."""
    return random.Random(4130).randbytes(LARGE_BYTES)


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(latencies_ms, p), 2) for p in (50, 95, 99)}


# ----------------------------------------------------------------------------- end to end


def deployment(tmp: Path, target_url: str, max_body_mb: int | None = None, processes: int = 1) -> tuple[Keys, str]:
    """Our gateway `hq` receiving from ACME (tests/test_as2_e2e.py's pair); returns its keys and AS2 URL."""
    hq, acme = as2_pair(tmp, target_url, mdn="sync", signed=True, compress="")
    config = hq / "gateway.toml"
    config.write_text(config.read_text().replace("[server]\n", f"[server]\nprocesses = {processes}\n", 1))
    if max_body_mb:
        config.write_text(config.read_text().replace("[http]\n", f"[http]\nmax_body_mb = {max_body_mb}\n", 1))
    port = tomllib.loads(config.read_text())["http"]["port"]
    return Keys(hq, acme), f"http://127.0.0.1:{port}/as2"


def prepare(keys: Keys, payloads: list[bytes], tag: str,
            content_type: str = "application/edi-consent") -> list[Prepared]:
    """Build every message (sign as ACME, encrypt to HQ) before anything is timed."""
    acme, hq_cert = keys.acme, keys.cert("hq")
    prepared = []
    for n, payload in enumerate(payloads):
        out = build(payload, content_type=content_type, filename=f"{tag}-{n}.edi", sign=acme, digest="sha256",
                    encrypt=[hq_cert], cipher="aes256-cbc")
        message_id = f"<{tag}-{n:06d}@acme.bench>"
        headers = {"AS2-Version": "1.2", "AS2-From": "ACMEAS2", "AS2-To": "HQGW", "Message-ID": message_id,
                   "MIME-Version": "1.0", "Content-Type": out.content_type, "Subject": "bench",
                   "Disposition-Notification-To": "edi@acme.bench", "Disposition-Notification-Options": MDN_OPTIONS,
                   **dict(out.headers)}
        prepared.append(Prepared(message_id, headers, out.body, out.mic, out.mic_algorithm))
    return prepared


async def post_all(url: str, messages: list[Prepared], senders: int) -> tuple[float, list[dict[str, Any]]]:
    """POST every message from ``senders`` concurrent clients; returns wall seconds and one result per message."""
    results: list[dict[str, Any]] = [{} for _ in messages]
    pending = iter(range(len(messages)))
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=senders)) as session:
        async def sender() -> None:
            for n in pending:
                m = messages[n]
                started = time.perf_counter()
                try:
                    async with session.post(url, data=m.body, headers=m.headers) as resp:
                        body = await resp.read()
                        results[n] = {"status": resp.status, "content_type": resp.headers.get("Content-Type", ""),
                                      "body": body, "ms": (time.perf_counter() - started) * 1000}
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    results[n] = {"status": None, "error": f"{type(exc).__name__}: {exc}",
                                  "ms": (time.perf_counter() - started) * 1000}

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        return time.perf_counter() - began, results


def check_mdn(result: dict[str, Any], message: Prepared, hq_cert: Any) -> str | None:
    """None when the answer is a signed, positive MDN for this message carrying its MIC; else the problem."""
    if result.get("status") != 200:
        detail = result.get("error") or result.get("body", b"")[:200]
        return f"{message.message_id}: HTTP {result.get('status')} {detail!r}"
    try:
        mdn = parse_mdn(result["content_type"], result["body"], trusted=[hq_cert], require_signature=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable MDN is a counted error, not a crash of the benchmark
        return f"{message.message_id}: unreadable MDN: {exc}"
    if not mdn.ok or mdn.modifier:
        return f"{message.message_id}: MDN {mdn.disposition} {mdn.modifier}"
    if mdn.original_message_id != message.message_id:
        return f"{message.message_id}: MDN answers {mdn.original_message_id}"
    if not mdn.mic_matches(message.mic, message.mic_algorithm):
        return f"{message.message_id}: MDN MIC {mdn.mic} != {message.mic}"
    return None


def run_throughput(tmp: Path, count: int, processes: int = 1, store: str | None = None) -> dict[str, Any]:
    target = RecordingTarget()
    try:
        keys, url = deployment(tmp / "throughput", target.url, processes=processes)
        messages = prepare(keys, [order(n) for n in range(count)], "thr")
        gw = GatewayProcess(keys.hq_home, env={"GATEWAY_STORE_URL": store} if store else None)
        gw.start()
        wait_for(lambda: gw.log().count('"gateway started"') >= processes, 30, "every gateway process")
        try:
            print(f"end to end: {count} messages of {len(order(0)):,} bytes, {SENDERS} senders -> {url} "
                  f"(gateway pid {gw.proc.pid})", flush=True)
            gateway_cpu, client_cpu = cpu_seconds(gw.proc.pid), time.process_time()
            seconds, results = asyncio.run(post_all(url, messages, SENDERS))
            gateway_cpu, client_cpu = cpu_seconds(gw.proc.pid) - gateway_cpu, time.process_time() - client_cpu
            hq_cert = keys.cert("hq")
            problems = [p for r, m in zip(results, messages) if (p := check_mdn(r, m, hq_cert))]
            for p in problems[:5]:
                print("  error:", p)
            # Nothing lost: every order processed and delivered to the target, exactly once.
            try:
                wait_for(lambda: len(target.received) >= count - len(problems), 300, "the orders at the target", 0.1)
            except AssertionError as exc:  # reported below as lost, not a crash of the benchmark
                print("  error:", exc)
            delivered = {r["document"]["document"]["number"] for r in target.received}
            listed = gw.cli_json("log", "list", "--limit", str(min(10000, count + 10)))
            statuses: dict[str, int] = {}
            for row in listed:
                statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            peak = proc_status(gw.proc.pid)["VmHWM"]
        finally:
            gw.stop()
    finally:
        target.close()
    latencies = [r["ms"] for r in results if r.get("status") == 200]
    return {
        "messages": count, "payload_bytes": len(order(0)), "senders": SENDERS, "seconds": round(seconds, 3),
        "msgs_per_s": round(count / seconds, 1), "latency_ms": summary(latencies), "errors": len(problems),
        "stored_statuses": statuses, "delivered_distinct": len(delivered), "deliveries": len(target.received),
        "lost": count - statuses.get("processed", 0), "gateway_peak_rss_mb": round(peak / 2**20, 1),
        # CPU cores busy while sending: is the gateway CPU-bound, and how much did the senders take?
        "gateway_cores": round(gateway_cpu / seconds, 2), "client_cores": round(client_cpu / seconds, 2),
    }


def run_large(tmp: Path) -> dict[str, Any]:
    """One 100 MB signed + encrypted message into a fresh gateway: its peak RSS over its RSS before."""
    target = RecordingTarget()
    try:
        keys, url = deployment(tmp / "large", target.url, max_body_mb=2 * LARGE_BYTES // 2**20)
        [message] = prepare(keys, [large_payload()], "big", content_type="application/octet-stream")
        gw = GatewayProcess(keys.hq_home)
        gw.start()
        try:
            time.sleep(1.0)  # let start-up work (recovery scan, first polls) settle so the baseline is idle
            fresh = reset_peak(gw.proc.pid)
            before = proc_status(gw.proc.pid)
            _, [result] = asyncio.run(post_all(url, [message], 1))
            at_mdn = proc_status(gw.proc.pid)["VmHWM"]
            problem = check_mdn(result, message, keys.cert("hq"))
            [row] = wait_for(lambda: [r for r in gw.cli_json("log", "list") if r["status"] != "received"], 120,
                             "the pipeline to finish with the large message", interval=0.5)
            after = proc_status(gw.proc.pid)["VmHWM"]
        finally:
            gw.stop()
    finally:
        target.close()
    if problem:
        print("  error:", problem)
    baseline = before["VmRSS"] if fresh else max(before["VmRSS"], before["VmHWM"])
    return {
        "payload_bytes": LARGE_BYTES, "body_bytes": len(message.body), "mdn_ok": problem is None,
        "mdn_ms": round(result["ms"], 1), "rss_before_mb": round(before["VmRSS"] / 2**20, 1),
        "peak_at_mdn_mb": round(at_mdn / 2**20, 1), "peak_after_pipeline_mb": round(after / 2**20, 1),
        "pipeline_status": row["status"], "peak_reset": fresh,
        "ratio": round((at_mdn - baseline) / LARGE_BYTES, 2),
        "ratio_after_pipeline": round((after - baseline) / LARGE_BYTES, 2),
    }


# ----------------------------------------------------------------------------- reference: in one process


def pyas2lib_parties(keys: Keys) -> dict[str, Any]:
    """pyas2lib's view of both sides: ACME sends (sign, encrypt, signed MDN requested), HQ receives."""
    from pyas2lib_shim import load_oscrypto_with_openssl3_version_fix
    load_oscrypto_with_openssl3_version_fix()
    from pyas2lib import as2

    hq_pem = (keys.hq_home / "certs" / "hq.pem").read_bytes()
    acme_pem = (keys.acme_home / "certs" / "acme.pem").read_bytes()
    hq_cert = (keys.hq_home / "certs" / "hq.cert.pem").read_bytes()
    acme_cert = (keys.acme_home / "certs" / "acme.cert.pem").read_bytes()
    common = {"sign": True, "encrypt": True, "enc_alg": "aes_256_cbc", "digest_alg": "sha256", "mdn_mode": "SYNC",
              "mdn_digest_alg": "sha256", "validate_certs": False}
    return {
        "as2": as2,
        "acme": as2.Organization(as2_name="ACMEAS2", sign_key=acme_pem, decrypt_key=acme_pem, domain="acme.bench"),
        "hq_for_acme": as2.Partner(as2_name="HQGW", encrypt_cert=hq_cert, verify_cert=hq_cert, **common),
        "hq": as2.Organization(as2_name="HQGW", sign_key=hq_pem, decrypt_key=hq_pem, domain="hq.bench"),
        "acme_for_hq": as2.Partner(as2_name="ACMEAS2", verify_cert=acme_cert, encrypt_cert=acme_cert, **common),
    }


def pyas2lib_build(parties: dict[str, Any], payload: bytes, n: int, content_type: str) -> tuple[bytes, Any]:
    """One message built by pyas2lib: raw headers + body, as its parse() takes it, and the sender's Message."""
    message = parties["as2"].Message(parties["acme"], parties["hq_for_acme"])
    message.build(payload, filename=f"ref-{n}.edi", content_type=content_type, message_id=f"ref-{n:06d}")
    return message.headers_str + b"\r\n" + message.content, message


def pyas2lib_receive(parties: dict[str, Any], raw: bytes) -> tuple[Any, Any]:
    """pyas2lib's whole receive: parse (decrypt, verify, MIC) and build the signed MDN."""
    received = parties["as2"].Message()
    status, (exc, _), mdn = received.parse(raw, find_org_cb=lambda _id: parties["hq"],
                                           find_partner_cb=lambda _id: parties["acme_for_hq"])
    if status != "processed" or exc is not None or mdn is None:
        raise RuntimeError(f"pyas2lib did not process its own message: {status} {exc}")
    return received, mdn


def run_pyas2lib_inprocess(keys: Keys, count: int) -> dict[str, Any]:
    parties = pyas2lib_parties(keys)
    built = [pyas2lib_build(parties, order(n), n, "application/edi-consent") for n in range(count)]
    latencies = []
    gc.collect()
    began = time.perf_counter()
    for raw, _ in built:
        started = time.perf_counter()
        received, mdn = pyas2lib_receive(parties, raw)
        latencies.append((time.perf_counter() - started) * 1000)
    seconds = time.perf_counter() - began
    # Outside the timing: the last receipt really is a signed MDN pyas2lib accepts, with the sender's MIC.
    raw_mdn = mdn.headers_str + b"\r\n" + mdn.content
    status, detail = parties["as2"].Mdn().parse(raw_mdn, find_message_cb=lambda _mid, _pid: built[-1][1])
    assert status == "processed" and received.signed and received.encrypted, (status, detail)
    assert received.mic == built[-1][1].mic
    return {"messages": count, "seconds": round(seconds, 3), "msgs_per_s": round(count / seconds, 1),
            "latency_ms": summary(latencies)}


def run_ours_inprocess(keys: Keys, count: int) -> dict[str, Any]:
    """gateway.as2 on the same job: parse + build the signed MDN, one process, one core (no HTTP, no store)."""
    messages = prepare(keys, [order(n) for n in range(count)], "ref")
    hq, acme_cert = keys.hq, keys.cert("acme")
    latencies = []
    gc.collect()
    began = time.perf_counter()
    for m in messages:
        started = time.perf_counter()
        inbound = parse(m.headers["Content-Type"], m.body, identities=[hq], trusted=[acme_cert], max_size=2**30,
                        require_signature=True, require_encryption=True)
        content_type, body = build_mdn(original_message_id=m.message_id, our_as2_id="HQGW", partner_as2_id="ACMEAS2",
                                       mic=inbound.mic, mic_algorithm=inbound.mic_algorithm, sign=hq)
        latencies.append((time.perf_counter() - started) * 1000)
    seconds = time.perf_counter() - began
    mdn = parse_mdn(content_type, body, trusted=[keys.cert("hq")], require_signature=True)
    assert mdn.ok and mdn.mic_matches(messages[-1].mic, messages[-1].mic_algorithm)
    return {"messages": count, "seconds": round(seconds, 3), "msgs_per_s": round(count / seconds, 1),
            "latency_ms": summary(latencies)}


# ----------------------------------------------------------------------------- reference: pyas2lib's 100 MB peak


def child_build(keys: Keys, out: Path) -> None:
    """(subprocess) pyas2lib builds the 100 MB message and writes it to ``out``."""
    raw, _ = pyas2lib_build(pyas2lib_parties(keys), large_payload(), 0, "application/octet-stream")
    out.write_bytes(raw)


def child_receive(keys: Keys, raw_file: Path) -> None:
    """(subprocess) pyas2lib reads and receives the 100 MB message; prints RSS before and peak, as JSON."""
    parties = pyas2lib_parties(keys)
    gc.collect()
    before = proc_status(os.getpid())
    received, mdn = pyas2lib_receive(parties, raw_file.read_bytes())
    peak = proc_status(os.getpid())
    print(json.dumps({"rss_before": before["VmRSS"], "hwm_before": before["VmHWM"], "hwm": peak["VmHWM"],
                      "payload_ok": received.content == large_payload(), "mdn_bytes": len(mdn.content)}))


def run_pyas2lib_large(keys: Keys, tmp: Path) -> dict[str, Any]:
    raw_file = tmp / "pyas2lib-100mb.raw"
    me = [sys.executable, str(Path(__file__).resolve()), "--hq", str(keys.hq_home), "--acme", str(keys.acme_home)]
    subprocess.run([*me, "--child-build", str(raw_file)], check=True)
    began = time.perf_counter()
    done = subprocess.run([*me, "--child-receive", str(raw_file)], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    raw_file.unlink()
    return {"payload_bytes": LARGE_BYTES, "payload_ok": figures["payload_ok"], "seconds": round(seconds, 1),
            "rss_before_mb": round(figures["rss_before"] / 2**20, 1), "peak_mb": round(figures["hwm"] / 2**20, 1),
            "ratio": round((figures["hwm"] - figures["rss_before"]) / LARGE_BYTES, 2)}


# ----------------------------------------------------------------------------- report


def report(figures: dict[str, Any]) -> None:
    """Print the side-by-side table, the details behind it and the goal check (parts not run show "-")."""
    m = figures["machine"]
    e2e, large = figures.get("end_to_end", {}), figures.get("large", {})
    ref, ours = figures.get("pyas2lib", {}), figures.get("ours_in_process", {})
    ref_large = figures.get("pyas2lib_large", {})

    def num(d: dict[str, Any], key: str, fmt: str = "{:.1f}") -> str:
        return fmt.format(d[key]) if key in d else "-"

    def ratio(a: dict[str, Any], b: dict[str, Any], key: str, sub: str | None = None) -> str:
        x, y = (a.get(key), b.get(key)) if sub is None else (a.get(key, {}).get(sub), b.get(key, {}).get(sub))
        return f"{x / y:.2f}x" if x is not None and y else "-"

    def lat(d: dict[str, Any]) -> str:
        q = d.get("latency_ms")
        return f"{q['p50']:.1f} / {q['p95']:.1f} / {q['p99']:.1f}" if q else "-"

    print(f"\nmachine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['openssl']}; "
          f"deployments in {figures['deployments_in']}")
    rows = [
        ("", "gateway", "pyas2lib 1.4.4", "ours/theirs"),
        ("10 KB messages/s (1)", num(e2e, "msgs_per_s"), num(ref, "msgs_per_s"), ratio(e2e, ref, "msgs_per_s")),
        ("10 KB messages/s, one process (2)", num(ours, "msgs_per_s"), num(ref, "msgs_per_s"),
         ratio(ours, ref, "msgs_per_s")),
        ("latency P50 / P95 / P99 ms (1)", lat(e2e), lat(ref), ratio(e2e, ref, "latency_ms", "p50")),
        ("latency P50 / P95 / P99 ms, one process (2)", lat(ours), lat(ref), ratio(ours, ref, "latency_ms", "p50")),
        ("100 MB peak memory / payload (3)", num(large, "ratio", "{:.2f}x"), num(ref_large, "ratio", "{:.2f}x"),
         ratio(large, ref_large, "ratio")),
    ]
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>20}  {r[2]:>20}  {r[3]:>11}")
    print("(1) gateway: `gateway serve` end to end (HTTP POST from 16 senders -> decrypt, verify, store, signed sync\n"
          "    MDN; parsed and queued), latency POST start -> MDN read; pyas2lib: Message.parse (with its signed MDN)\n"
          "    in one process on one core, latency per message -- it has no server of its own to compare.\n"
          "(2) both in one process on one core, no HTTP or store: parse (decrypt, verify, MIC) + the signed MDN.\n"
          "(3) peak RSS (VmHWM) minus RSS before, over 100 MB, signed + encrypted: gateway while receiving it over\n"
          "    HTTP until its MDN is read; pyas2lib reading the message from a file, parse + MDN (a subprocess).")
    print()
    if e2e:
        print(f"end to end: {e2e['messages']} messages of {e2e['payload_bytes']:,} bytes in {e2e['seconds']:.2f} s, "
              f"errors {e2e['errors']}, stored {e2e['stored_statuses']}, delivered {e2e['delivered_distinct']} "
              f"distinct orders ({e2e['deliveries']} deliveries), lost {e2e['lost']}\n"
              f"  gateway peak RSS {e2e['gateway_peak_rss_mb']} MB; CPU cores busy while sending: gateway "
              f"{e2e['gateway_cores']}, senders {e2e['client_cores']} (of {m['nproc']})")
    if large:
        print(f"100 MB: gateway RSS {large['rss_before_mb']} MB before, peak {large['peak_at_mdn_mb']} MB at the MDN "
              f"({large['mdn_ms'] / 1000:.1f} s, MDN ok: {large['mdn_ok']}), peak {large['peak_after_pipeline_mb']} MB "
              f"after the pipeline (message {large['pipeline_status']}: random bytes are not EDI; "
              f"{large['ratio_after_pipeline']:.2f}x)")
    if ref_large:
        print(f"100 MB: pyas2lib RSS {ref_large['rss_before_mb']} MB before, peak {ref_large['peak_mb']} MB "
              f"({ref_large['seconds']} s, payload byte-identical: {ref_large['payload_ok']})")
    if ref:
        print(f"in-process runs: {ref['messages']} messages each (pyas2lib {ref['seconds']} s, "
              f"gateway.as2 {ours['seconds']} s)")
    if not (e2e and large):
        print("\ngoal check: needs the throughput and memory parts")
        return
    goal_rate, goal_mem = e2e["msgs_per_s"] >= GOAL_MSGS_PER_S, large["ratio"] < GOAL_MEMORY_RATIO
    intact = not e2e["lost"] and not e2e["errors"] and e2e["delivered_distinct"] == e2e["messages"]
    print(f"\ngoal >= {GOAL_MSGS_PER_S:g} msgs/s end to end: {'MET' if goal_rate else 'NOT MET'} "
          f"({e2e['msgs_per_s']:.1f}); goal peak memory < {GOAL_MEMORY_RATIO:g}x payload: "
          f"{'MET' if goal_mem else 'NOT MET'} ({large['ratio']:.2f}x); nothing lost: "
          f"{'yes' if intact else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="end-to-end messages (default 2000)")
    parser.add_argument("--quick", action="store_true", help="200 messages")
    parser.add_argument("--store", help="store URL for the throughput run, e.g. an empty PostgreSQL database "
                        "(default: SQLite in the deployment)")
    parser.add_argument("--processes", type=int, default=1,
                        help="[server] processes of the receiving gateway (default 1)")
    parser.add_argument("--reference-messages", type=int, default=300,
                        help="messages for the in-process runs (pyas2lib and gateway.as2; default 300)")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only this part (repeatable; default all): " + ", ".join(PARTS))
    parser.add_argument("--json", type=Path, help="also save the figures to this file")
    parser.add_argument("--no-large-reference", action="store_true",
                        help="reference part without pyas2lib's 100 MB message (~35 s, ~1.7 GB): smoke checks")
    parser.add_argument("--tmp", type=Path, help="directory for the temp deployments (default: the system's; "
                        "e.g. /dev/shm to see what fsync costs)")
    parser.add_argument("--hq", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--acme", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-receive", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_build or args.child_receive:
        keys = Keys(args.hq, args.acme)
        child_build(keys, args.child_build) if args.child_build else child_receive(keys, args.child_receive)
        return
    parts = args.only or PARTS
    count = 200 if args.quick else args.messages
    reference_count = min(count, args.reference_messages)
    figures: dict[str, Any] = {"machine": machine()}
    figures["deployments_in"] = str(args.tmp or tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="bench-as2-", dir=args.tmp) as name:
        tmp = Path(name)
        if "throughput" in parts:
            figures["end_to_end"] = run_throughput(tmp, count, args.processes, args.store)
            print(f"  {figures['end_to_end']['msgs_per_s']} msgs/s", flush=True)
        if "memory" in parts:
            print("100 MB message into a fresh gateway ...", flush=True)
            figures["large"] = run_large(tmp)
        if "reference" in parts:
            keys, _ = deployment(tmp / "reference", "http://127.0.0.1:9/unused")   # only its key pairs are used
            print(f"in process: pyas2lib and gateway.as2, {reference_count} messages each ...", flush=True)
            figures["pyas2lib"] = run_pyas2lib_inprocess(keys, reference_count)
            figures["ours_in_process"] = run_ours_inprocess(keys, reference_count)
            if not args.no_large_reference:
                print("pyas2lib with the 100 MB message (subprocess) ...", flush=True)
                figures["pyas2lib_large"] = run_pyas2lib_large(keys, tmp)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
