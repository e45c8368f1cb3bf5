"""Run every benchmark of the project and its references in one go; write the side-by-side table to BENCHMARKS.md.

Each benchmark script runs as a subprocess with ``--json`` (its own output is kept in a log
file), one after another so they do not share the CPU:

- ``edi``: scripts/bench_edi.py -- our EDIFACT/X12 readers vs pydifact and a regex splitter;
- ``as2``: scripts/bench_as2.py -- `gateway serve` end to end and gateway.as2 in one process vs
  pyas2lib 1.4.4's parse + MDN (``pip install -e '.[bench]'``; scripts/pyas2lib_shim.py);
- ``sftp``: scripts/bench_sftp.py -- our SFTP server vs OpenSSH's sshd/internal-sftp;
- ``pipeline``: scripts/bench_pipeline.py -- inbox -> REST target, burst and paced at 100/s;
- ``scale``: scripts/bench_scale.py -- 1, 2, 3 nodes on PostgreSQL, and SQLite;
- ``search``: scripts/bench_search.py -- transmission search on 1M messages vs OFFSET / a table scan;
- ``store``: scripts/bench_store.py -- Store operations, one transaction each vs batched;
- ``rsa``: ``openssl speed -seconds 3 rsa2048`` -- the RSA limit the AS2 figures are held against.

The goals checked: AS2 >= 10% of the RSA limit (sign/s / 2: a signed + encrypted message
with a signed MDN costs us two private-key operations, the decryption and the MDN signature),
EDI tokenizing >= 5x pydifact with flat memory, SFTP >= 0.5x OpenSSH, P95 receipt-to-delivery
< 250 ms at 100 messages/s. For each goal missed, a profile (py-spy on the gateway process,
cProfile in process) says where the time goes; it is written to BENCHMARKS.md too.

Usage: .venv/bin/python scripts/bench_all.py [--quick] [--only NAME,...] [--out BENCHMARKS.md] [--logs DIR]
                                             [--json FILE] [--no-profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path[:0] = [str(ROOT), str(SCRIPTS), str(ROOT / "tests")]

PG_ADMIN = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PY_SPY = Path(sys.executable).with_name("py-spy")

GOAL_AS2_SHARE_OF_RSA = 0.10
GOAL_EDI_VS_PYDIFACT = 5.0
GOAL_EDI_FLAT_GROWTH = 2.0      # peak memory may grow less than 2x while the streamed input grows 10x
GOAL_SFTP_VS_OPENSSH = 0.5
GOAL_P95_MS = 250.0
GOAL_RATE = 100.0


@dataclass
class Bench:
    """One benchmark script: its arguments for the full and the quick run."""

    script: str
    full: list[str]
    quick: list[str]
    timeout: int = 3600


BENCHES: dict[str, Bench] = {
    "edi": Bench("bench_edi.py", [], ["--sizes", "2000,20000", "--stream-mb", "10"]),
    "as2": Bench("bench_as2.py", [], ["--messages", "100", "--reference-messages", "50",
                                      "--only", "throughput", "--only", "reference", "--no-large-reference"]),
    "sftp": Bench("bench_sftp.py", [], ["--quick", "--repeat", "1"]),
    "pipeline": Bench("bench_pipeline.py", ["--files", "1000", "--rate", str(GOAL_RATE)],
                      ["--files", "100", "--rate", str(GOAL_RATE)]),
    "scale": Bench("bench_scale.py", ["--pg", PG_ADMIN], ["--pg", PG_ADMIN, "--docs", "60", "--nodes", "1,2",
                                                           "--no-sqlite"]),
    "search": Bench("bench_search.py", [], ["--messages", "20000", "--runs", "3", "--naive-runs", "1"]),
    "store": Bench("bench_store.py", ["--pg", PG_ADMIN], ["-n", "50", "--pg", PG_ADMIN]),
}
NAMES = ("rsa", *BENCHES)


# ----------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and the OpenSSL versions (the CLI's and the one `cryptography` links)."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                 platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
    os_name = platform.platform()
    release = Path("/etc/os-release")
    if release.exists():
        fields = dict(line.split("=", 1) for line in release.read_text().splitlines() if "=" in line)
        os_name = f"{fields.get('PRETTY_NAME', '?').strip(chr(34))}, Linux {platform.release()}"
    from cryptography.hazmat.backends.openssl import backend

    return {"cpu": model, "cores": os.cpu_count(), "ram_gb": round(mem_kb / 2**20, 1), "os": os_name,
            "python": platform.python_version(),
            "openssl_cli": subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip(),
            "openssl_cryptography": backend.openssl_version_text(),
            "load_before": [round(x, 2) for x in os.getloadavg()]}


# ----------------------------------------------------------------------------- running the benchmarks


def run_rsa(seconds: int) -> dict[str, Any]:
    """``openssl speed -seconds N rsa2048``: sign/s and verify/s of one core; plus the same through `cryptography`.

    The gateway signs and decrypts with `cryptography`, whose wheel links its own OpenSSL: its
    in-process rate is measured too (same key size, PKCS#1 v1.5 sign of a SHA-256 digest), so
    the limit is not read off a library the gateway does not use. The limit itself is the CLI's,
    as the issue asks.
    """
    done = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "rsa2048"], capture_output=True, text=True,
                          timeout=seconds * 10 + 60)
    line = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)\s*$", done.stdout, re.M)
    if done.returncode != 0 or not line:
        raise RuntimeError(f"openssl speed: exit {done.returncode}, no rsa 2048 line: {done.stdout[-500:]}"
                           f"{done.stderr[-500:]}")
    sign, verify = float(line.group(1)), float(line.group(2))

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        key.sign(b"x" * 64, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    in_process = count / (time.perf_counter() - began)
    return {"sign_per_s": sign, "verify_per_s": verify, "cryptography_sign_per_s": round(in_process, 1),
            "limit_msgs_per_s": sign / 2, "seconds": seconds}


def run_script(name: str, quick: bool, logs: Path, profile_dir: Path | None) -> dict[str, Any]:
    """One benchmark script as a subprocess; its figures (its --json) and how the run went."""
    bench = BENCHES[name]
    out = logs / f"{name}.json"
    args = [*(bench.quick if quick else bench.full)]
    if name == "sftp" and profile_dir is not None and not quick:   # its profile uploads the files once more
        args += ["--profile", str(profile_dir / "sftp")]
    command = [sys.executable, str(SCRIPTS / bench.script), *args, "--json", str(out)]
    log = logs / f"{name}.log"
    began = time.perf_counter()
    with log.open("w") as fh:
        fh.write("$ " + " ".join(command) + "\n")
        fh.flush()
        try:
            code = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                  timeout=bench.timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    result: dict[str, Any] = {"command": " ".join(["scripts/" + bench.script, *args]), "exit": code,
                              "seconds": round(time.perf_counter() - began, 1), "log": str(log)}
    if code == 0 and out.exists():
        result["figures"] = json.loads(out.read_text())
    else:
        result["error"] = tail(log)
    return result


def tail(path: Path, lines: int = 3) -> str:
    text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return " / ".join(text[-lines:])[-400:]


def pyas2lib_available() -> str | None:
    """None when pyas2lib 1.4.4 imports (with the OpenSSL 3 shim); otherwise why not."""
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'scripts');"
                           "from pyas2lib_shim import load_oscrypto_with_openssl3_version_fix as f; f();"
                           "import pyas2lib"], capture_output=True, text=True, cwd=ROOT)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["?"])[-1] + " (pip install -e '.[bench]')"


# ----------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the table: our figure, the reference it is compared to, their ratio, the goal."""

    area: str
    figure: str
    ours: str
    reference: str
    ratio: str = ""
    goal: str = ""
    status: str = ""          # met, missed, or "" (no goal)


@dataclass
class Findings:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)   # profile keys: as2_e2e, as2_core, edi, sftp, pipeline

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.rows.append(Row(*args, **kwargs))


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def num(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def as2_rows(f: Findings, as2: dict[str, Any], rsa: dict[str, Any] | None) -> None:
    figures = as2.get("figures", {})
    e2e, core = figures.get("end_to_end"), figures.get("ours_in_process")
    ref, large, ref_large = figures.get("pyas2lib"), figures.get("large"), figures.get("pyas2lib_large")
    limit = rsa["limit_msgs_per_s"] if rsa else None
    limit_text = (f"RSA limit {num(limit)} msgs/s (openssl sign/s {num(rsa['sign_per_s'])} / 2)" if rsa
                  else "RSA limit: not measured (rsa not run)")
    goal = f">= {GOAL_AS2_SHARE_OF_RSA:.0%} of the RSA limit"
    for key, what, data in (("as2_e2e", "`gateway serve` end to end: msgs/s (10 KB, signed+encrypted, signed sync "
                             f"MDN, {e2e['senders'] if e2e else 16} senders)", e2e),
                            ("as2_core", "gateway.as2 in one process: parse + signed MDN, msgs/s", core)):
        if not data:
            continue
        if limit:
            share = data["msgs_per_s"] / limit
            f.add("AS2", what, num(data["msgs_per_s"]), limit_text, f"{share:.1%}", goal,
                  verdict(share >= GOAL_AS2_SHARE_OF_RSA))
            if share < GOAL_AS2_SHARE_OF_RSA:
                f.missed.append(key)
        else:
            f.add("AS2", what, num(data["msgs_per_s"]), limit_text, "", goal, "not checked")
    if ref:
        if e2e:
            f.add("AS2", "end to end msgs/s vs pyas2lib parse + MDN in one process", num(e2e["msgs_per_s"]),
                  f"pyas2lib 1.4.4: {num(ref['msgs_per_s'])}", f"{e2e['msgs_per_s'] / ref['msgs_per_s']:.2f}x")
        if core:
            f.add("AS2", "parse + signed MDN in one process, msgs/s", num(core["msgs_per_s"]),
                  f"pyas2lib 1.4.4: {num(ref['msgs_per_s'])}", f"{core['msgs_per_s'] / ref['msgs_per_s']:.2f}x")
    elif as2.get("pyas2lib_missing"):
        f.add("AS2", "pyas2lib reference", "-", f"not run: {as2['pyas2lib_missing']}")
    if e2e:
        lat = e2e["latency_ms"]
        f.add("AS2", "end to end latency P50 / P95 / P99 ms (POST -> MDN read)",
              f"{lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f}",
              f"pyas2lib in process P50 {ref['latency_ms']['p50']:.1f}" if ref else "-")
        f.notes.append(f"AS2 end to end: {e2e['messages']} messages in {e2e['seconds']} s, errors {e2e['errors']}, "
                       f"lost {e2e['lost']}, delivered {e2e['delivered_distinct']} distinct; gateway busy "
                       f"{e2e['gateway_cores']} cores, senders {e2e['client_cores']} cores.")
    if large or ref_large:
        ours_ratio = f"{large['ratio']:.2f}x payload" if large else "not run"
        theirs = f"pyas2lib: {ref_large['ratio']:.2f}x" if ref_large else "-"
        both = f"{large['ratio'] / ref_large['ratio']:.2f}x" if large and ref_large else ""
        status = verdict(large["ratio"] < 3.0) if large else ""
        f.add("AS2", "100 MB message: peak memory growth / payload", ours_ratio, theirs, both,
              "< 3x payload (bench_as2)" if large else "", status)
    if rsa:
        f.notes.append(f"RSA-2048: `openssl speed -seconds {rsa['seconds']} rsa2048` sign/s {num(rsa['sign_per_s'])}, "
                       f"verify/s {num(rsa['verify_per_s'])} (one core, OpenSSL CLI); through `cryptography` in "
                       "process (the library the gateway signs and decrypts with): "
                       f"{num(rsa['cryptography_sign_per_s'])}"
                       " sign/s. The RSA limit for our AS2 is sign/s / 2: our decryption and our MDN signature are "
                       "the two private-key operations per message.")


def edi_rows(f: Findings, edi: dict[str, Any]) -> None:
    rows = edi.get("figures", {}).get("rows", [])
    sizes = [r["file"] for r in rows if r["reader"] == "edifact stream"]
    if not sizes:
        return
    biggest = sizes[-1]   # the largest size run: the most segments, the steadiest rate
    by = {r["reader"].split(" (")[0]: r for r in rows if r["file"] == biggest}
    pyd = by.get("edifact pydifact")
    for reader, what in (("edifact stream", "EDIFACT tokenizing, streamed (iter_messages, what the gateway uses)"),
                         ("edifact parse", "EDIFACT tokenizing, whole file in memory (parse)")):
        r = by[reader]
        ratio = r["segments_per_s"] / pyd["segments_per_s"]
        f.add("EDI", f"{what}: segments/s, {r['segments']:,} segments", num(r["segments_per_s"], 0),
              f"pydifact 0.2.3: {num(pyd['segments_per_s'], 0)} ({pyd['segments']:,} segments)", f"{ratio:.2f}x",
              f">= {GOAL_EDI_VS_PYDIFACT:g}x pydifact", verdict(ratio >= GOAL_EDI_VS_PYDIFACT))
        if ratio < GOAL_EDI_VS_PYDIFACT and "edi" not in f.missed:
            f.missed.append("edi")
    regex = by["edifact regex"]
    f.add("EDI", "EDIFACT streamed vs the regex splitter (no envelopes, no objects)",
          num(by["edifact stream"]["segments_per_s"], 0), f"regex: {num(regex['segments_per_s'], 0)}",
          f"{by['edifact stream']['segments_per_s'] / regex['segments_per_s']:.2f}x")
    x12 = [r for r in rows if r["file"].startswith("x12") and r["reader"] in ("x12 stream", "x12 regex")]
    if x12:
        xs = {r["reader"]: r for r in x12[-2:]}
        f.add("EDI", "X12 streamed: segments/s (pydifact reads no X12)", num(xs["x12 stream"]["segments_per_s"], 0),
              f"regex: {num(xs['x12 regex']['segments_per_s'], 0)}",
              f"{xs['x12 stream']['segments_per_s'] / xs['x12 regex']['segments_per_s']:.2f}x")
    for fmt in ("edifact", "x12"):
        streamed = [r for r in rows if r["file"].startswith(fmt) and r["file"].endswith(" MB")]
        if len(streamed) == 2:
            small, big = streamed
            growth = big["peak_mb"] / max(small["peak_mb"], 0.1)
            f.add("EDI", f"{fmt.upper() if fmt == 'x12' else 'EDIFACT'} streamed, peak memory: "
                  f"{big['file'].split(' ', 1)[1]} file", f"{big['peak_mb']:.1f} MB",
                  f"{small['file'].split(' ', 1)[1]} file: {small['peak_mb']:.1f} MB", f"{growth:.2f}x",
                  f"flat: < {GOAL_EDI_FLAT_GROWTH:g}x for 10x the input", verdict(growth < GOAL_EDI_FLAT_GROWTH))
            if growth >= GOAL_EDI_FLAT_GROWTH and "edi" not in f.missed:
                f.missed.append("edi")


def sftp_rows(f: Findings, sftp: dict[str, Any]) -> None:
    figures = sftp.get("figures")
    if not figures:
        return
    ours, ref, n = figures["ours"], figures["openssh"], figures["sizes"]
    goal = f">= {GOAL_SFTP_VS_OPENSSH:g}x OpenSSH"
    for part, key, what, unit in (("large", "mb_per_s", f"one {n['large_mb']} MB file (median of "
                                   f"{len(ours['large_runs'])})", "MB/s"),
                                  ("small", "files_per_s", f"{n['small_files']} x 4 KB, one session", "files/s"),
                                  ("sessions", "files_per_s", f"{n['sessions']} sessions at once x 10 x 4 KB",
                                   "files/s")):
        a, b = ours[part][key], ref[part][key]
        ratio = a / b if b else 0.0
        f.add("SFTP", f"upload, {what}: {unit}", num(a), f"OpenSSH sshd: {num(b)}", f"{ratio:.2f}x", goal,
              verdict(ratio >= GOAL_SFTP_VS_OPENSSH))
        if ratio < GOAL_SFTP_VS_OPENSSH and "sftp" not in f.missed:
            f.missed.append("sftp")
    intact = not ours["check"]["wrong_or_missing"] and not ref["check"]["wrong_or_missing"]
    f.notes.append(f"SFTP: ours commits every upload to the store (fsynced) before answering the close; OpenSSH "
                   f"does not fsync. Every upload intact on both: {'yes' if intact else 'NO'}; session errors ours "
                   f"{len(ours['sessions']['errors'])}, OpenSSH {len(ref['sessions']['errors'])}; load average "
                   f"{figures['load_before']} before, {figures['load_after']} after.")


def pipeline_rows(f: Findings, pipeline: dict[str, Any]) -> None:
    p = pipeline.get("figures")
    if not p:
        return
    lat = p["latency_ms"]
    ok = lat["p95"] < GOAL_P95_MS and p["paced_achieved_per_s"] >= 0.95 * GOAL_RATE
    f.add("Pipeline", f"inbox -> REST target at {p['paced_achieved_per_s']:g} files/s ({p['files']} files): P95 ms",
          num(lat["p95"], 0), f"goal {GOAL_P95_MS:g} ms", f"{lat['p95'] / GOAL_P95_MS:.2f}x of the goal",
          f"P95 < {GOAL_P95_MS:g} ms at {GOAL_RATE:g}/s", verdict(ok))
    if not ok:
        f.missed.append("pipeline")
    f.add("Pipeline", "same run: P50 / P99 / max ms", f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['max']:.0f}", "-")
    f.add("Pipeline", f"burst: {p['files']} files dropped at once -> delivered, files/s", num(p["burst_files_per_s"]),
          f"paced rate {GOAL_RATE:g}/s", f"{p['burst_files_per_s'] / GOAL_RATE:.2f}x")


def scale_rows(f: Findings, scale: dict[str, Any]) -> None:
    s = scale.get("figures")
    if not s:
        return
    base = next((r for r in s["runs"] if r["store"] == "postgresql" and r["nodes"] == 1), None)
    for r in s["runs"]:
        if r is base:
            continue
        ref = base if base else None
        f.add("Scale", f"{r['store']}, {r['nodes']} node(s): deliveries/s ({s['docs']} docs, {s['cores']} cores "
              f"shared), redelivered {r['redelivered']}", num(r["deliveries_per_s"]),
              f"1 node PostgreSQL: {num(ref['deliveries_per_s'])}" if ref else "-",
              f"{r['deliveries_per_s'] / ref['deliveries_per_s']:.2f}x" if ref else "")
    if base:
        f.notes.append(f"Scale: 1 node on PostgreSQL {num(base['deliveries_per_s'])} deliveries/s, redelivered "
                       f"{base['redelivered']}.")


def search_rows(f: Findings, search: dict[str, Any]) -> None:
    s = search.get("figures")
    if not s:
        return
    searches = [r for r in s["rows"] if not r["search"].startswith("overview")]
    slowest = max(searches, key=lambda r: r["median_ms"])
    f.add("Search", f"slowest first page of {len(searches)} searches ({slowest['search']}), {s['messages']:,} "
          "messages: median ms", num(slowest["median_ms"], 2), f"same search NOT INDEXED: "
          f"{num(slowest['not_indexed_ms'], 1)} ms", f"{slowest['median_ms'] / slowest['not_indexed_ms']:.2f}x")
    scans = sorted(r["not_indexed_ms"] / r["median_ms"] for r in searches)
    f.add("Search", "first page, median over the searches: speed-up vs a table scan (NOT INDEXED)",
          f"{scans[len(scans) // 2]:.0f}x faster", "messages NOT INDEXED", "")
    deep = [r for r in searches if r.get("page1000_keyset_ms")]
    if deep:
        speedups = sorted(r["page1000_offset_ms"] / r["page1000_keyset_ms"] for r in deep)
        worst = max(deep, key=lambda r: r["page1000_keyset_ms"])
        f.add("Search", f"page 1000, keyset cursor: slowest ms ({worst['search']})",
              num(worst["page1000_keyset_ms"], 2), f"OFFSET: {num(worst['page1000_offset_ms'], 1)} ms",
              f"median speed-up {speedups[len(speedups) // 2]:.0f}x over {len(deep)} searches")
    for r in s["rows"]:
        if r["search"].startswith("overview"):
            f.add("Search", f"{r['search']}: median ms", num(r["median_ms"], 1), "-")


def store_rows(f: Findings, store: dict[str, Any]) -> None:
    s = store.get("figures")
    if not s:
        return
    for backend in ("sqlite", "postgresql"):
        modes = s.get(backend)
        if not modes:
            continue
        single, batched = modes[0], modes[-1]
        f.add("Store", f"{backend}: writes per file (receive, record_processed, claim, complete), ms wall, "
              f"{batched['mode']} ({s['messages']} files)", num(batched["per_file_writes_wall_ms"], 2),
              f"one transaction per call: {num(single['per_file_writes_wall_ms'], 2)} ms",
              f"{batched['per_file_writes_wall_ms'] / single['per_file_writes_wall_ms']:.2f}x")


# ----------------------------------------------------------------------------- profiles of missed goals


def py_spy_record(pid: int, seconds: float, out: Path, work: Callable[[], None]) -> dict[str, Any]:
    """py-spy (raw stacks, non-blocking) on ``pid`` while ``work()`` runs; its busiest functions."""
    if not PY_SPY.exists():
        return {"error": f"{PY_SPY} is absent (pip install py-spy)"}
    from bench_sftp import top_functions

    spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds) + 1),
                            "--format", "raw", "-o", str(out), "--nonblocking", "--rate", "200"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)   # let py-spy attach before the work starts (not a measurement)
    work()
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy exited {spy.returncode}: {err.strip()[-300:]}"}
    return {"tool": "py-spy", "file": str(out), **top_functions(out.read_text(), 14)}


def cprofile_top(work: Callable[[], Any], top: int = 14) -> dict[str, Any]:
    """cProfile of ``work()`` in this process: the functions with the most own time (share of the total)."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values()) or 1e-9   # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]   # type: ignore[attr-defined]

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        short = file.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        return f"{func} ({short}:{line})" if line else func

    cumulative = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)   # type: ignore[attr-defined]
    own_code = [(k, v) for k, v in cumulative if "gateway/" in k[0]][:top]
    return {"tool": "cProfile", "total_seconds": round(total, 3),
            "self_percent": [[name(k), round(100 * v[2] / total, 1)] for k, v in rows],
            "total_percent": [[name(k), round(100 * v[3] / total, 1)] for k, v in own_code]}


def profile_as2_e2e(tmp: Path, quick: bool) -> dict[str, Any]:
    """py-spy on `gateway serve` while it receives signed + encrypted messages from 16 senders (bench_as2's setup)."""
    import asyncio

    import bench_as2
    from harness import GatewayProcess, RecordingTarget, wait_for

    count = 100 if quick else 600
    target = RecordingTarget()
    try:
        keys, url = bench_as2.deployment(tmp / "as2-profile", target.url)
        messages = bench_as2.prepare(keys, [bench_as2.order(n) for n in range(count)], "prof")
        gw = GatewayProcess(keys.hq_home).start()
        try:
            seconds = count / 40 + 2   # about as long as the run takes at the measured rate
            found = py_spy_record(gw.proc.pid, seconds, tmp / "as2-e2e.raw",
                                  lambda: asyncio.run(bench_as2.post_all(url, messages, bench_as2.SENDERS)))
            wait_for(lambda: len(target.received) >= count, 120, "the profiled orders at the target", 0.1)
        finally:
            gw.stop()
    finally:
        target.close()
    found["what"] = f"`gateway serve` receiving {count} AS2 messages (16 senders), sampled by py-spy"
    return found


def profile_as2_core(tmp: Path, quick: bool) -> dict[str, Any]:
    """cProfile of gateway.as2 parse + build_mdn in one process (bench_as2's in-process run)."""
    import bench_as2

    keys, _ = bench_as2.deployment(tmp / "as2-core", "http://127.0.0.1:9/unused")
    count = 50 if quick else 300
    found = cprofile_top(lambda: bench_as2.run_ours_inprocess(keys, count))
    found["what"] = f"gateway.as2 parse + signed MDN of {count} messages in one process (includes building them)"
    return found


def profile_edi(tmp: Path, quick: bool) -> dict[str, Any]:
    """cProfile of iter_messages streaming an EDIFACT file."""
    import bench_edi

    from gateway.edi import edifact

    path = tmp / "profile.edi"
    path.write_bytes(bench_edi.edifact_file(20_000 if quick else 300_000))

    def work() -> None:
        with path.open("rb") as fh:
            for _ in edifact.iter_messages(fh):
                pass
    found = cprofile_top(work)
    found["what"] = f"gateway.edi.edifact.iter_messages on {path.stat().st_size / 1e6:.1f} MB of ORDERS"
    return found


def profile_pipeline(tmp: Path, quick: bool) -> dict[str, Any]:
    """py-spy on `gateway serve` while files are dropped into its inbox at 100/s (bench_pipeline's paced mode)."""
    from harness import GatewayProcess, RecordingTarget, drop, edifact_order, make_deployment, wait_for

    files = 100 if quick else 1000
    target = RecordingTarget()
    try:
        home = make_deployment(tmp / "pipeline-profile", target.url)
        gw = GatewayProcess(home).start()
        inbox = home / "var" / "inbox" / "ACME"

        def paced() -> None:
            begin = time.monotonic()
            for n in range(files):
                delay = begin + n / GOAL_RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                drop(inbox, f"prof-{n:05d}.edi", edifact_order(f"PR-{n:05d}", icr=str(200000 + n)))
            wait_for(lambda: len(target.received) >= files, 300, "the profiled deliveries", interval=0.02)
        try:
            found = py_spy_record(gw.proc.pid, files / GOAL_RATE + 3, tmp / "pipeline.raw", paced)
        finally:
            gw.stop()
    finally:
        target.close()
    found["what"] = f"`gateway serve` with {files} files dropped at {GOAL_RATE:g}/s, sampled by py-spy"
    return found


PROFILERS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "as2_e2e": profile_as2_e2e, "as2_core": profile_as2_core, "edi": profile_edi, "pipeline": profile_pipeline,
}


def sftp_profile(results: dict[str, Any]) -> dict[str, Any]:
    """bench_sftp's own py-spy profile (its --profile), when it ran."""
    found = results.get("sftp", {}).get("figures", {}).get("profile", {})
    out = {}
    for part, data in found.items():
        out[f"sftp_{part}"] = {**data, "tool": "py-spy", "what": f"`gateway serve` during one more SFTP {part} "
                               "upload (bench_sftp --profile)"}
    return out


# ----------------------------------------------------------------------------- BENCHMARKS.md


def write_markdown(path: Path, m: dict[str, Any], when: str, quick: bool, results: dict[str, Any],
                   f: Findings, profiles: dict[str, Any], total_seconds: float) -> None:
    out = ["# Benchmarks", "",
           "Generated by `scripts/bench_all.py`" + (" --quick (small sizes: a smoke check, not the figures)"
                                                   if quick else "") + f" on {when}. Do not edit by hand: rerun it.",
           "", "## Machine", "",
           f"- CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram_gb']} GB",
           f"- OS: {m['os']}",
           f"- Python {m['python']}; {m['openssl_cli']} (CLI, `openssl speed`); `cryptography` links "
           f"{m['openssl_cryptography']}",
           f"- load average (1, 5, 15 min) before the run: {m['load_before']}, after: {m['load_after']}; whole run "
           f"{total_seconds / 60:.1f} min" + (f". **The machine was busy with other work** (load above its "
                                               f"{m['cores']} cores): the figures are lower than on an idle machine"
                                               if max(m["load_before"][0], m["load_after"][0]) > m["cores"] else ""),
           "", "## Results", "",
           "Ratio: ours / the reference (for the RSA limit: our share of it). Goals are the ones of issue 8.", "",
           "| Area | Figure | Ours | Reference | Ratio | Goal | Status |",
           "|---|---|---:|---|---:|---|---|"]
    for r in f.rows:
        out.append(f"| {r.area} | {r.figure} | {r.ours} | {r.reference} | {r.ratio} | {r.goal} | {r.status} |")
    if f.notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in f.notes]
    out += ["", "## Runs", "", "| Benchmark | Command | Time | Load at start | Result |", "|---|---|---:|---:|---|"]
    for name in NAMES:
        r = results.get(name)
        if r is None:
            continue
        state = "ok" if r.get("exit") == 0 else f"failed (exit {r.get('exit')}): {r.get('error', '')}"
        out.append(f"| {name} | `{r.get('command', '')}` | {r.get('seconds', 0):.0f} s | {r.get('load', '')} "
                   f"| {state} |")
    if profiles:
        out += ["", "## Where the time goes (goals missed)", ""]
        for key, p in profiles.items():
            out += [f"### {key}: {p.get('what', '')}", ""]
            if "error" in p:
                out += [f"Profile failed: {p['error']}", ""]
                continue
            basis = (f"{p['busy_samples']} busy samples of all the process's threads "
                     f"({p['idle_samples']} idle left out; shares are of the busy ones)" if p["tool"] == "py-spy"
                     else f"{p['total_seconds']} s profiled")
            out += [f"{p['tool']}, {basis}.", "", "| Own time (self) | share | In the stack (total) | share |",
                    "|---|---:|---|---:|"]
            own, total = p.get("self_percent", []), p.get("total_percent", [])
            for i in range(max(len(own), len(total))):
                a = own[i] if i < len(own) else ["", ""]
                b = total[i] if i < len(total) else ["", ""]
                out.append(f"| `{a[0]}` | {a[1]}% | `{b[0]}` | {b[1]}% |".replace("| `` | % |", "| | |"))
            out.append("")
            if p.get("analysis"):
                out += [p["analysis"], ""]
    out += ["", "## How to run", "", "```sh",
            ".venv/bin/pip install -e '.[bench]' py-spy     # pyas2lib 1.4.4 reference, profiler",
            ".venv/bin/python scripts/bench_all.py          # everything, writes BENCHMARKS.md",
            ".venv/bin/python scripts/bench_all.py --quick  # small sizes, a smoke check (< 3 min)",
            ".venv/bin/python scripts/bench_all.py --only edi,rsa --out /tmp/b.md",
            "```", "",
            "The SFTP reference needs root, `/usr/sbin/sshd` and the `sftp` client; scale and store need PostgreSQL "
            f"at `{PG_ADMIN}` (env GATEWAY_TEST_PG). Each benchmark's own output is in its log (`--logs DIR`).", ""]
    path.write_text("\n".join(out))


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke check (< 3 minutes)")
    parser.add_argument("--only", help="comma-separated subset of: " + ",".join(NAMES))
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown to write (BENCHMARKS.md)")
    parser.add_argument("--logs", type=Path, help="keep each benchmark's output and JSON here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also save every figure to this file")
    parser.add_argument("--no-profile", action="store_true", help="do not profile the goals missed")
    args = parser.parse_args()
    only = [n.strip() for n in args.only.split(",")] if args.only else list(NAMES)
    unknown = set(only) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(NAMES)}")

    started = time.perf_counter()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    m = machine()
    temp = Path(tempfile.mkdtemp(prefix="bench-all-"))
    logs = args.logs or temp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    profile_dir = None if args.no_profile or not PY_SPY.exists() else temp / "profiles"
    results: dict[str, Any] = {}   # the temp dir (logs, py-spy stacks, deployments) is kept for a look afterwards
    for name in NAMES:
        if name not in only:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        load = round(os.getloadavg()[0], 1)   # other work on the machine skews the figures: recorded per run
        if name == "rsa":
            began = time.perf_counter()
            try:
                figures = run_rsa(1 if args.quick else 3)
                results["rsa"] = {"command": f"openssl speed -seconds {figures['seconds']} rsa2048", "exit": 0,
                                  "figures": figures}
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                results["rsa"] = {"command": "openssl speed rsa2048", "exit": "error", "error": str(exc)}
            results["rsa"]["seconds"] = round(time.perf_counter() - began, 1)
        else:
            results[name] = run_script(name, args.quick, logs, profile_dir)
            if name == "as2" and (why := pyas2lib_available()):
                results[name]["pyas2lib_missing"] = why
        r = results[name]
        r["load"] = load
        print(f"    {'ok' if r.get('exit') == 0 else 'FAILED: ' + r.get('error', '')} in {r['seconds']:.0f} s",
              flush=True)

    f = Findings()
    rsa = results.get("rsa", {}).get("figures")
    if "as2" in results:
        as2_rows(f, results["as2"], rsa)
    elif rsa:
        f.add("AS2", "RSA limit (AS2 not run)", "-", f"{num(rsa['limit_msgs_per_s'])} msgs/s")
    for name, rows in (("edi", edi_rows), ("sftp", sftp_rows), ("pipeline", pipeline_rows),
                       ("scale", scale_rows), ("search", search_rows), ("store", store_rows)):
        if name in results:
            rows(f, results[name])

    profiles: dict[str, Any] = {}
    if not args.no_profile:
        for key in f.missed:
            if key == "sftp":
                profiles.update(sftp_profile(results))
                continue
            print(f"[{time.strftime('%H:%M:%S')}] profiling {key} (goal missed) ...", flush=True)
            try:
                profiles[key] = PROFILERS[key](temp, args.quick)
            except Exception as exc:  # noqa: BLE001 - a failed profile is reported, the table is still written
                profiles[key] = {"error": f"{type(exc).__name__}: {exc}", "what": key}
    total = time.perf_counter() - started
    m["load_after"] = [round(x, 2) for x in os.getloadavg()]
    write_markdown(args.out, m, when, args.quick, results, f, profiles, total)
    if args.json:
        args.json.write_text(json.dumps({"machine": m, "date": when, "results": results, "profiles": profiles},
                                        indent=2, default=str) + "\n")
    print(f"\nwrote {args.out} in {total / 60:.1f} min; logs in {logs}")
    print(args.out.read_text().split("## Runs")[0].split("## Results")[1])


if __name__ == "__main__":
    main()
