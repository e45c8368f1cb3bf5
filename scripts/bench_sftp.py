"""Benchmark: SFTP upload throughput of `gateway serve` side by side with OpenSSH's sshd/internal-sftp.

Both servers run on this machine on loopback ports, in a temp dir (``--tmp``), and get the same
uploads from the same client, OpenSSH's ``sftp`` in batch mode (key login, pinned host key):

1. one large file (200 MB of random bytes) in one session: MB/s, client start to exit; done
   ``--repeat`` times (default 3, new content each time) and the median run reported
   (the faster one of two);
2. 500 x 4 KB files (random bytes) in one session: files/s;
3. 50 sessions at once, 10 x 4 KB files each: files/s over the wall time, errors.

Both servers are up for the whole run and take turns on each part (OpenSSH, then ours), so
both meet the same background load; the load average is recorded with the figures.

Ours is a fresh SQLite deployment (`gateway serve` as a subprocess); partner ACME uploads 1 and 2,
partners B01..B50 (one account each, one session each) upload 3. Our server commits every
upload to the store (blob + message row, fsynced) before it answers the client's close, so the
client's exit means every file was stored; the pipeline then rejects the random bytes as not
EDI, which is fine -- the upload is what is measured. Between the parts the gateway's pipeline
is let finish, so one part's processing does not run into the next. Afterwards every upload
must be in `gateway log list` (channel sftp, right partner, size and SHA-256).

The reference is `/usr/sbin/sshd -D -e -f CONFIG` (``Subsystem sftp internal-sftp``), logged in
as root, writing into a temp dir on the same file system; it does not fsync. Every uploaded
file is checked by size and SHA-256. The machine needs root, sshd and the sftp client.

``--profile DIR``: after the measurements, one more large upload and one more small-files
session to our server (fresh files, not timed) under py-spy (raw stacks into DIR), and the
functions the gateway spent its busy samples in.

Usage: .venv/bin/python scripts/bench_sftp.py [--quick] [--repeat 3] [--tmp DIR] [--json FILE] [--profile DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent / "tests")]

from bench_as2 import cpu_seconds, machine  # noqa: E402
from harness import GatewayProcess, make_deployment, wait_for  # noqa: E402
from sshd_helpers import Sshd, free_port, keygen, sshd_unavailable  # noqa: E402

SMALL_BYTES = 4096
FILES_PER_SESSION = 10
GOAL_RATIO = 0.5
FULL = {"large_mb": 200, "small_files": 500, "sessions": 50}
QUICK = {"large_mb": 20, "small_files": 100, "sessions": 10}
CLIENT_TIMEOUT = 900


@dataclass(frozen=True)
class Upload:
    """One file the client uploads: where it is locally, the name it gets remotely, what it must hash to."""

    local: Path
    name: str
    size: int
    sha256: str


@dataclass
class Workload:
    """The files of the three parts, written once and uploaded to both servers."""

    work: Path
    large: list[Upload]           # one per repeat: our store would not write a blob it already holds again
    small: list[Upload]
    sessions: list[list[Upload]]

    @property
    def every(self) -> list[Upload]:
        return [*self.large, *self.small, *(u for s in self.sessions for u in s)]


def write_file(path: Path, size: int) -> Upload:
    """``size`` random bytes at ``path`` (in 8 MB chunks: no 200 MB buffer in this process)."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * 2**20))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return Upload(path, path.name, size, digest.hexdigest())


def make_workload(work: Path, large_mb: int, small_files: int, sessions: int, repeat: int) -> Workload:
    (work / "small").mkdir(parents=True)
    (work / "sessions").mkdir()
    large = [write_file(work / f"large-{n}.bin", large_mb * 2**20) for n in range(1, repeat + 1)]
    small = [write_file(work / "small" / f"s{i:04d}.bin", SMALL_BYTES) for i in range(1, small_files + 1)]
    per_session = [[write_file(work / "sessions" / f"c{s:02d}-{i:02d}.bin", SMALL_BYTES)
                    for i in range(1, FILES_PER_SESSION + 1)] for s in range(1, sessions + 1)]
    return Workload(work, large, small, per_session)


# ----------------------------------------------------------------------------- the two servers


@dataclass
class Server:
    """An SFTP server the client uploads to: its port, pinned host key, users and upload folder."""

    label: str
    port: int
    host_key: str                 # the server's public key line, pinned in known_hosts
    key: Path                     # the client's private key
    known_hosts: Path
    folder: str                   # remote folder the uploads go to
    large_user: str               # who uploads parts 1 and 2
    session_users: list[str]      # who uploads part 3, one per session
    landing: Path                 # local folder where the server writes an upload's bytes as they arrive
    pid: int | None = None        # the process to measure CPU of (ours)

    def __post_init__(self) -> None:
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key}\n")

    def command(self, user: str, *, verbose: bool = False) -> list[str]:
        """OpenSSH ``sftp -b -`` as ``user``: key login only, host key pinned, no user config."""
        return ["sftp", "-F", "/dev/null", "-P", str(self.port), "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", *(["-v"] if verbose else []), "-b", "-", f"{user}@127.0.0.1"]

    def puts(self, uploads: list[Upload]) -> str:
        return "".join(f"put {u.local} {self.folder}/{u.name}\n" for u in uploads)


def client_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}   # no agent, no forwarded keys


class BenchSshd(Sshd):
    """tests/sshd_helpers.Sshd with room for 50 logins at once (sshd's MaxStartups default drops some at 10)."""

    def _write_config(self) -> None:
        super()._write_config()
        with self.config.open("a") as fh:
            fh.write("MaxStartups 200\n")


def start_gateway(home: Path, client_public: str, sessions: int) -> tuple[GatewayProcess, int]:
    """A fresh deployment with partner ACME and partners B01.. as SFTP accounts; `gateway serve` started."""
    make_deployment(home, "http://127.0.0.1:9/unused")   # nothing is delivered: random bytes are not EDI
    (home / "certs").mkdir(exist_ok=True)
    keygen(home / "certs" / "ssh_host_ed25519_key")
    port = free_port()
    with (home / "gateway.toml").open("a") as fh:
        fh.write(f'\n[sftp]\nport = {port}\nhost_keys = ["certs/ssh_host_ed25519_key"]\n')
    with (home / "partners" / "ACME.toml").open("a") as fh:
        fh.write(f'\n[sftp]\nauthorized_keys = ["{client_public}"]\n')
    for n in range(1, sessions + 1):
        (home / "partners" / f"B{n:02d}.toml").write_text(
            f'name = "Bench partner {n}"\n[inbox]\nenabled = false\n'
            f'[sftp]\nusername = "b{n:02d}"\nauthorized_keys = ["{client_public}"]\n')
    gw = GatewayProcess(home)
    gw.cli("check")
    gw.start()
    wait_for(lambda: b"sftp server listening" in (home / f"serve-{gw.starts}.log").read_bytes(), 30,
             "the gateway's SFTP server")
    return gw, port


def pipeline_idle(gw: GatewayProcess, timeout: float = 300) -> None:
    """Wait until no stored message is still waiting for the pipeline."""
    wait_for(lambda: not gw.cli_json("log", "list", "--status", "received", "--limit", "1"), timeout,
             "the pipeline to finish the uploads", interval=0.5)


# ----------------------------------------------------------------------------- measuring


class BytesIn(threading.Thread):
    """Notes when a new file in ``folder`` first holds ``size`` bytes: the server has written the upload's last byte.

    Splits a large upload into the transfer and what the server does after it (ours: commit to
    the store) before it answers the close. Files already that large when it starts are not new.
    Polls every 5 ms (a few stat calls).
    """

    def __init__(self, folder: Path, size: int) -> None:
        super().__init__(daemon=True)
        self.folder, self.size = folder, size
        self.before = set(self._full())
        self.at: float | None = None
        self.done = threading.Event()

    def _full(self) -> list[str]:
        with os.scandir(self.folder) as entries:
            return [e.name for e in entries if e.is_file(follow_symlinks=False) and e.stat().st_size >= self.size]

    def run(self) -> None:
        while self.at is None:
            finished = self.done.is_set()   # one more look after the client exited: the last write may be late
            if set(self._full()) - self.before:
                self.at = time.perf_counter()
            if finished:
                return
            self.done.wait(0.005)


def run_client(server: Server, user: str, commands: str, cwd: Path, watch: BytesIn | None = None) -> dict[str, Any]:
    """One ``sftp`` session, timed from process start to exit (and to the last byte in, with ``watch``)."""
    started = time.perf_counter()
    if watch is not None:
        watch.start()
    try:
        done = subprocess.run(server.command(user), input=commands, capture_output=True, text=True, cwd=cwd,
                              env=client_env(), timeout=CLIENT_TIMEOUT)
    finally:
        if watch is not None:
            watch.done.set()
            watch.join()
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{server.label}: sftp as {user} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    figures = {"seconds": seconds}
    if watch is not None and watch.at is not None:
        last_byte = min(watch.at - started, seconds)   # seen only after the exit: within the 5 ms poll
        figures["last_byte_in_seconds"] = round(last_byte, 3)
        figures["after_last_byte_seconds"] = round(seconds - last_byte, 3)
    return figures


def run_sessions(server: Server, workload: Workload) -> dict[str, Any]:
    """Every session's ``sftp`` started at once; wall time from the first start to the last exit."""
    started = time.perf_counter()
    procs = []
    for user, uploads in zip(server.session_users, workload.sessions):
        proc = subprocess.Popen(server.command(user), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=workload.work, env=client_env())
        procs.append(proc)
        assert proc.stdin is not None
        proc.stdin.write(server.puts(uploads))   # a few hundred bytes: fits the pipe, never blocks
        proc.stdin.close()
    errors = []
    for user, proc in zip(server.session_users, procs):
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        if proc.wait(CLIENT_TIMEOUT) != 0:
            errors.append(f"{user}: exit {proc.returncode}: {stderr.strip().splitlines()[-1:]}")
    seconds = time.perf_counter() - started
    files = sum(len(s) for s in workload.sessions)
    return {"seconds": round(seconds, 3), "sessions": len(procs), "files": files,
            "files_per_s": round(files / seconds, 1), "errors": errors}


def measure(servers: list[Server], workload: Workload, settle: Callable[[], None]) -> dict[str, dict[str, Any]]:
    """The three parts, the servers taking turns on each; ``settle()`` runs before every timed run."""
    figures: dict[str, dict[str, Any]] = {server.label: {"large_runs": []} for server in servers}

    def timed(server: Server, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        settle()    # ours: the pipeline has finished the previous part's uploads
        os.sync()   # the previous part's dirty pages are not written back on this part's time
        cpu = cpu_seconds(server.pid) if server.pid else None
        result = run()
        if cpu is not None:
            result["server_cores"] = round((cpu_seconds(server.pid) - cpu) / result["seconds"], 2)
        return result

    for n, large in enumerate(workload.large, 1):
        for server in servers:
            run = timed(server, lambda: run_client(server, server.large_user, server.puts([large]), workload.work,
                                                   BytesIn(server.landing, large.size)))
            run.update(bytes=large.size, seconds=round(run["seconds"], 3),
                       mb_per_s=round(large.size / 2**20 / run["seconds"], 1))
            figures[server.label]["large_runs"].append(run)
            print(f"  {large.size / 2**20:.0f} MB file, run {n}: {server.label} {run['mb_per_s']} MB/s", flush=True)
    for side in figures.values():
        side["large"] = sorted(side["large_runs"], key=lambda r: r["mb_per_s"])[len(side["large_runs"]) // 2]

    for server in servers:
        run = timed(server, lambda: run_client(server, server.large_user, server.puts(workload.small), workload.work))
        run.update(files=len(workload.small), seconds=round(run["seconds"], 3),
                   files_per_s=round(len(workload.small) / run["seconds"], 1))
        figures[server.label]["small"] = run
        print(f"  {len(workload.small)} x 4 KB, one session: {server.label} {run['files_per_s']} files/s", flush=True)

    for server in servers:
        run = timed(server, lambda: run_sessions(server, workload))
        figures[server.label]["sessions"] = run
        print(f"  {len(workload.sessions)} sessions at once: {server.label} {run['files_per_s']} files/s, "
              f"{len(run['errors'])} errors", flush=True)

    for server in servers:
        figures[server.label]["negotiated"] = negotiated(server, workload.work)
    return figures


def negotiated(server: Server, cwd: Path) -> dict[str, str]:
    """Key exchange and cipher the client and this server agree on, and how long an empty session takes."""
    started = time.perf_counter()
    done = subprocess.run(server.command(server.large_user, verbose=True), input="pwd\n", capture_output=True,
                          text=True, cwd=cwd, env=client_env(), timeout=60)
    seconds = time.perf_counter() - started
    kex = re.search(r"kex: algorithm: (\S+)", done.stderr)
    cipher = re.search(r"kex: client->server cipher: (\S+) MAC: (\S+)", done.stderr)
    return {"kex": kex.group(1) if kex else "?", "cipher": cipher.group(1) if cipher else "?",
            "mac": cipher.group(2) if cipher else "?", "empty_session_seconds": round(seconds, 3)}


# ----------------------------------------------------------------------------- checking what arrived


def check_ours(gw: GatewayProcess, workload: Workload, session_partners: list[str]) -> dict[str, Any]:
    """Every upload must be a stored message: channel sftp, its partner, its name, size and SHA-256."""
    expected = {("ACME", u.name): u for u in [*workload.large, *workload.small]}
    for partner, uploads in zip(session_partners, workload.sessions):
        expected.update({(partner, u.name): u for u in uploads})
    rows = gw.cli_json("log", "list", "--limit", str(len(expected) + 100))
    stored = {(r["partner"], r["filename"]): r for r in rows if r["channel"] == "sftp"}
    missing = [f"{p}/{n}" for (p, n), u in expected.items()
               if (p, n) not in stored or (stored[p, n]["size"], stored[p, n]["raw_sha256"]) != (u.size, u.sha256)]
    return {"expected": len(expected), "stored": sum(k in stored for k in expected), "wrong_or_missing": missing,
            "statuses": dict(Counter(r["status"] for r in rows))}


def check_openssh(folder: Path, workload: Workload) -> dict[str, Any]:
    """Every upload must be in ``folder`` with its size and SHA-256."""
    bad = []
    for upload in workload.every:
        path = folder / upload.name
        if not path.is_file() or path.stat().st_size != upload.size or file_sha256(path) != upload.sha256:
            bad.append(upload.name)
    return {"expected": len(workload.every), "stored": len(workload.every) - len(bad), "wrong_or_missing": bad}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- profiling


# Leaves where a thread waits (for the network, for work, for another thread), not computes.
IDLE_LEAVES = ("EpollSelector.select (selectors.py)", "_worker (concurrent/futures/thread.py)",
               "Condition.wait (threading.py)")
SCAFFOLDING = re.compile(r"\((<frozen runpy>|click/|asyncio/|threading\.py|concurrent/futures/|selectors\.py"
                         r"|gateway/cli\.py)")


def profile(server: Server, uploads: list[Upload], timed_seconds: float, out: Path, top: int = 12) -> dict[str, Any]:
    """py-spy (raw, non-blocking) on our gateway during one more, untimed, session uploading ``uploads``.

    The uploads must be new content: a blob the store already holds is not written again.
    py-spy records for about as long as the timed run of the same part took.
    """
    assert server.pid is not None
    py_spy = Path(sys.executable).with_name("py-spy")
    duration = max(2, math.ceil(timed_seconds) + 2)
    spy = subprocess.Popen([str(py_spy), "record", "--pid", str(server.pid), "--duration", str(duration),
                            "--format", "raw", "-o", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)   # let py-spy attach before the session starts (not a measurement)
    run_client(server, server.large_user, server.puts(uploads), uploads[0].local.parent)
    _, err = spy.communicate(timeout=duration + 60)
    if spy.returncode != 0 or not out.exists():
        return {"error": f"py-spy exited {spy.returncode}: {err.strip()[-500:]}"}
    return {"file": str(out), **top_functions(out.read_text(), top)}


def top_functions(raw: str, top: int) -> dict[str, Any]:
    """From py-spy's raw (collapsed) stacks: busy samples per function, self (leaf) and total (in the stack).

    Samples whose leaf is an idle wait are left out; "total" leaves out the event loop's and
    the CLI's own frames, which are in every sample.
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    busy = idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]   # one entry per function
        if frames[-1] in IDLE_LEAVES:
            idle += count
            continue
        busy += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not SCAFFOLDING.search(frame):
                total[frame] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / busy, 1)] for name, n in counter.most_common(top)] if busy else []

    return {"busy_samples": busy, "idle_samples": idle, "self_percent": share(own), "total_percent": share(total)}


def run_profiles(server: Server, workload: Workload, timed: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Profile one more large upload and one more small-files session, with fresh files."""
    folder.mkdir(parents=True, exist_ok=True)
    fresh = workload.work / "profile"
    fresh.mkdir()
    large = [write_file(fresh / "profile-large.bin", workload.large[0].size)]
    small = [write_file(fresh / f"p{i:04d}.bin", SMALL_BYTES) for i in range(1, len(workload.small) + 1)]
    return {"large": profile(server, large, timed["large"]["seconds"], folder / "large.raw"),
            "small": profile(server, small, timed["small"]["seconds"], folder / "small.raw")}


# ----------------------------------------------------------------------------- report


def report(figures: dict[str, Any]) -> None:
    """The side-by-side table, what arrived, and the goal check."""
    m, ours, ref = figures["machine"], figures["ours"], figures["openssh"]
    print(f"\nmachine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['openssh']}, asyncssh "
          f"{m['asyncssh']}; files in {figures['tmp']}; load average {figures['load_before']} before, "
          f"{figures['load_after']} after")

    def pair(part: str, key: str, fmt: str = "{:,.1f}") -> tuple[str, str, str]:
        a, b = ours[part][key], ref[part][key]
        return fmt.format(a), fmt.format(b), f"{a / b:.2f}x" if b else "-"

    n = figures["sizes"]
    rows = [("", "gateway", "OpenSSH sshd", "ours/theirs"),
            (f"{n['large_mb']} MB file, MB/s (median of {len(ours['large_runs'])})", *pair("large", "mb_per_s")),
            (f"{n['small_files']} x 4 KB, one session, files/s", *pair("small", "files_per_s")),
            (f"{n['sessions']} sessions x {FILES_PER_SESSION} x 4 KB, files/s", *pair("sessions", "files_per_s")),
            (f"{n['sessions']} sessions, wall s", *pair("sessions", "seconds", "{:.2f}")),
            (f"{n['sessions']} sessions, errors", str(len(ours["sessions"]["errors"])),
             str(len(ref["sessions"]["errors"])), "")]
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>12}  {r[2]:>14}  {r[3]:>11}")
    for label, side in (("gateway", ours), ("OpenSSH", ref)):
        neg = side["negotiated"]
        stored = side["check"]
        print(f"{label}: {neg['kex']}, {neg['cipher']} ({neg['mac']}), an empty session (login, pwd, exit) "
              f"{neg['empty_session_seconds']:.2f} s; stored {stored['stored']} of "
              f"{stored['expected']} uploads intact" + (f", wrong or missing: {stored['wrong_or_missing'][:5]}"
                                                         if stored["wrong_or_missing"] else ""))
    for label, side in (("gateway", ours), ("OpenSSH", ref)):
        print(f"{label}: {n['large_mb']} MB runs, MB/s: {', '.join(str(r['mb_per_s']) for r in side['large_runs'])}")
        large = side["large"]
        if "last_byte_in_seconds" in large:
            print(f"{label}: large file's last byte written by the server after {large['last_byte_in_seconds']:.2f} s "
                  f"({large['bytes'] / 2**20 / large['last_byte_in_seconds']:.1f} MB/s), client done "
                  f"{large['after_last_byte_seconds']:.2f} s later (median run)")
    print(f"gateway CPU (cores busy, incl. its pipeline): large {ours['large'].get('server_cores')}, "
          f"small {ours['small'].get('server_cores')}, sessions {ours['sessions'].get('server_cores')}; "
          f"messages afterwards: {ours['check']['statuses']} (random bytes are not EDI)")
    for label, side in (("gateway", ours), ("OpenSSH", ref)):
        for error in side["sessions"]["errors"][:5]:
            print(f"  {label} session error: {error}")
    ratio = ours["large"]["mb_per_s"] / ref["large"]["mb_per_s"]
    intact = not ours["check"]["wrong_or_missing"] and not ref["check"]["wrong_or_missing"]
    print(f"\ngoal: throughput >= {GOAL_RATIO:g} x OpenSSH's: {'MET' if ratio >= GOAL_RATIO else 'NOT MET'} "
          f"({ratio:.2f}x); every upload stored: {'yes' if intact else 'NO'}")
    for part, found in figures.get("profile", {}).items():
        what = f"{n['large_mb']} MB upload" if part == "large" else f"{n['small_files']} x 4 KB session"
        if "error" in found:
            print(f"\nprofile of one more {what}: {found['error']}")
            continue
        print(f"\nprofile of the gateway during one more {what}: {found['busy_samples']} busy samples "
              f"({found['idle_samples']} idle left out), {found['file']}")
        for title, key in (("self", "self_percent"), ("total, without event loop/CLI frames", "total_percent")):
            print(f"  top by {title}:")
            for name, percent in found[key]:
                print(f"    {percent:5.1f}%  {name}")


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 MB, 100 files, 10 sessions")
    parser.add_argument("--repeat", type=int, default=3, help="large-file runs per server, median reported (3)")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="where the temp dir goes (default /tmp)")
    parser.add_argument("--json", type=Path, help="also save the figures to this file")
    parser.add_argument("--profile", type=Path, help="folder for py-spy's raw stacks: profile our server")
    args = parser.parse_args()
    if reason := sshd_unavailable():
        sys.exit(f"cannot run the OpenSSH reference: {reason}")
    sizes = QUICK if args.quick else FULL
    import asyncssh

    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    figures: dict[str, Any] = {"machine": {**machine(), "openssh": ssh_version, "asyncssh": asyncssh.__version__},
                               "sizes": sizes, "repeat": args.repeat, "tmp": str(args.tmp),
                               "load_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="bench-sftp-", dir=args.tmp) as name, contextlib.ExitStack() as stop:
        tmp = Path(name)
        print(f"writing the files ({args.repeat} x {sizes['large_mb']} MB + {sizes['small_files']} + "
              f"{sizes['sessions'] * FILES_PER_SESSION} x 4 KB) ...", flush=True)
        workload = make_workload(tmp / "client", **sizes, repeat=args.repeat)
        client_key = tmp / "client_ed25519"
        client_public = keygen(client_key)
        session_partners = [f"B{n:02d}" for n in range(1, sizes["sessions"] + 1)]

        (tmp / "sshd").mkdir()
        landed = tmp / "openssh-uploads"
        landed.mkdir()
        sshd = BenchSshd(tmp / "sshd", tmp / "sshd" / "ssh_host_ed25519_key", [client_public])
        sshd_public = keygen(sshd.host_key)
        sshd.start()
        stop.callback(sshd.stop)
        home = tmp / "gateway"
        gw, port = start_gateway(home, client_public, sizes["sessions"])
        stop.callback(gw.stop)
        assert gw.proc is not None

        reference = Server("OpenSSH", sshd.port, sshd_public, client_key, tmp / "known_hosts_sshd", str(landed),
                           "root", ["root"] * sizes["sessions"], landing=landed)
        host_public = (home / "certs" / "ssh_host_ed25519_key.pub").read_text().strip()
        ours = Server("gateway", port, host_public, client_key, tmp / "known_hosts_gateway", "inbox", "acme",
                      [p.lower() for p in session_partners], landing=home / "var" / "sftp" / ".partial",
                      pid=gw.proc.pid)
        print("OpenSSH sshd (internal-sftp) and gateway serve, taking turns:", flush=True)
        results = measure([reference, ours], workload, settle=lambda: pipeline_idle(gw))
        figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
        figures["openssh"], figures["ours"] = results["OpenSSH"], results["gateway"]
        pipeline_idle(gw)
        figures["openssh"]["check"] = check_openssh(landed, workload)
        figures["ours"]["check"] = check_ours(gw, workload, session_partners)
        if args.profile:
            print("profiling one more large upload and small-files session with py-spy ...", flush=True)
            figures["profile"] = run_profiles(ours, workload, figures["ours"], args.profile.resolve())
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
