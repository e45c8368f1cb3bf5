"""Benchmark: EDI tokenizing speed and peak memory of our readers vs pydifact and a regex splitter.

Generates realistic EDIFACT ORDERS and X12 850 interchanges of a given number of segments and
reads each with every reader in a fresh subprocess (so peak memory is that reader's own):

- ``parse``: ``gateway.edi.edifact.parse`` / ``x12.parse`` on the bytes (whole file in memory);
- ``stream``: ``iter_messages`` on the file, 1 MiB chunks (one message at a time in memory);
- ``pydifact``: ``pydifact.segmentcollection.Interchange.from_str`` (EDIFACT only; capped, see
  ``PYDIFACT_CAP``: above it pydifact reads a smaller interchange of the same content);
- ``regex``: a minimal splitter (one ``re.split`` + ``str.split``s, no envelopes, no objects),
  the rough ceiling for pure-Python tokenizing.

Peak MB is the process's peak resident set while reading minus its resident set just before
(Linux /proc; the input bytes of the in-memory readers are loaded before that baseline).

Usage: .venv/bin/python scripts/bench_edi.py [--sizes 10000,1000000] [--stream-mb 100] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYDIFACT_CAP = 200_000  # segments; pydifact at ~60k/s and ~2 KB per segment gets slow beyond


# --------------------------------------------------------------------------- content


def _orders(n: int) -> list[str]:
    """One ORDERS D96A message body (UNH..UNT) with 4 lines: 26 segments."""
    seg = [f"UNH+M{n}+ORDERS:D:96A:UN:EAN008", f"BGM+220+PO{n:08d}+9", "DTM+137:20261120:102",
           "DTM+2:20261201:102", "CUX+2:EUR:9", "NAD+BY+5412345000013::9++Brasserie du Coin SA",
           "NAD+SU+8711111000007::9++Dutch Foods B.V.", "NAD+DP+5412345000020::9++Magasin 12"]
    for line in range(1, 5):
        seg += [f"LIN+{line}++87111110001{line:02d}:EN", f"PIA+1+B-{n % 9999}:BP+S-{line}:SA",
                "IMD+F++:::Tomato juice 1L?: organic" if line == 3 else "IMD+F++:::Apple juice 1L",
                f"QTY+21:{line * 6}:PCE"]
    seg += ["UNS+S", "CNT+2:4"]
    return [*seg, f"UNT+{len(seg) + 1}+M{n}"]


def edifact_file(segments: int) -> bytes:
    """A UNA/UNB..UNZ interchange of about ``segments`` segments (whole ORDERS messages)."""
    per = len(_orders(0))
    count = max(1, (segments - 2) // per)
    out = ["UNA:+.? '", "UNB+UNOC:3+5412345000013:14+8711111000007:14+261120:1015+IC1'"]
    out += [s + "'" for n in range(count) for s in _orders(n)]
    out.append(f"UNZ+{count}+IC1'")
    return "\n".join(out).encode() + b"\n"


def _850(n: int) -> list[str]:
    """One X12 850 transaction set (ST..SE) with 4 lines: 16 segments."""
    seg = [f"ST*850*{n:04d}", f"BEG*00*SA*PO{n:08d}**20261120", "CUR*BY*USD", "DTM*002*20261201",
           "N1*BY*Acme Stores Inc*UL*0614141000012", "N1*ST*Acme Store 12*92*STORE12",
           "N3*1 Main Street", "N4*Springfield*IL*62701*US"]
    for line in range(1, 5):
        seg += [f"PO1*{line}*{line * 6}*EA*1.25**UP*01234567890{line}*VN*S-5550{line}",
                f"PID*F****Juice {line} 1L>organic"]
    seg.append("CTT*4*60")
    return [*seg, f"SE*{len(seg) + 1}*{n:04d}"]


def x12_file(segments: int) -> bytes:
    """An ISA..IEA interchange (one GS group) of about ``segments`` segments."""
    per = len(_850(0))
    count = max(1, (segments - 4) // per)
    isa = ("ISA*00*          *00*          *ZZ*ACMEUS         *ZZ*OURCO          *261120*1015*^*"
           "00501*000000001*0*P*>")
    out = [isa, "GS*PO*ACMEUS*OURCO*20261120*1015*1*X*005010"]
    out += [s for n in range(count) for s in _850(n)]
    out += [f"GE*{count}*1", "IEA*1*000000001"]
    return "~\n".join(out).encode() + b"~\n"


# --------------------------------------------------------------------------- one measured run


def _regex(raw: bytes, fmt: str) -> int:
    import re

    text = raw.decode("latin-1")
    if fmt == "edifact":
        body = text[9:]
        segs = [s.split("+") for s in re.split(r"(?<!\?)'\s*", body) if s]
        return sum(1 for s in segs if [e.split(":") for e in s])
    segs = [s.split("*") for s in re.split(r"~\s*", text) if s]
    return sum(1 for s in segs if [e.split(">") for e in s])


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in KiB.

    VmHWM (peak resident) belongs to the process's own address space; ``ru_maxrss`` would
    not do: Linux carries it over from the parent across fork and exec.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(reader: str, fmt: str, path: str) -> dict:
    """Run one reader on one file in this (fresh) process; return count, seconds, peak MB."""
    sys.path.insert(0, str(ROOT))
    from gateway.edi import edifact, x12

    module = edifact if fmt == "edifact" else x12
    raw = Path(path).read_bytes() if reader != "stream" else b""
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current resident set
        fh.write("5")
    start = time.perf_counter()
    if reader == "parse":
        count = sum(len(m.segments) + 4 for ic in module.parse(raw) for m in ic.messages)
    elif reader == "stream":
        with open(path, "rb") as fh:
            count = sum(len(m.segments) for _, m in module.iter_messages(fh))
    elif reader == "pydifact":
        from pydifact.segmentcollection import Interchange

        count = sum(1 for _ in Interchange.from_str(raw.decode("latin-1")).segments)
    else:
        count = _regex(raw, fmt)
    seconds = time.perf_counter() - start
    peak = (_status_kb("VmHWM") - base) / 1024
    return {"count": count, "seconds": seconds, "peak_mb": peak}


def measure(reader: str, fmt: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", reader, fmt, str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# --------------------------------------------------------------------------- report


def run(sizes: list[int], stream_mb: int) -> list[dict]:
    """Measure, print the table and return its rows (one dict per reader and file)."""
    rows: list[tuple] = []
    file_of_row: list[str] = []   # which input each row read ("edifact 10000", "x12 100 MB"), for --json
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, make in (("edifact", edifact_file), ("x12", x12_file)):
            for size in sizes:
                path = Path(tmp) / f"{fmt}-{size}"
                data = make(size)
                path.write_bytes(data)
                segments = data.count(b"'\n" if fmt == "edifact" else b"~\n") - (fmt == "edifact")
                results = {r: measure(r, fmt, path) for r in ("parse", "stream", "regex")}
                note = ""
                if fmt == "edifact":
                    small = path
                    if size > PYDIFACT_CAP:
                        small = Path(tmp) / f"{fmt}-cap"
                        small.write_bytes(make(PYDIFACT_CAP))
                        note = f" (capped: {PYDIFACT_CAP:,} segments)"
                    results["pydifact"] = measure("pydifact", fmt, small)
                rates = {r: v["count"] / v["seconds"] for r, v in results.items()}
                for reader, v in results.items():
                    file_of_row.append(f"{fmt} {size}")
                    ratio_py = (f"{rates[reader] / rates['pydifact']:.2f}x" if "pydifact" in rates
                                else "n/a")
                    rows.append((f"{fmt} {reader}" + (note if reader == "pydifact" else ""),
                                 segments if reader != "pydifact" else v["count"], v["seconds"],
                                 rates[reader], ratio_py, f"{rates[reader] / rates['regex']:.2f}x",
                                 v["peak_mb"]))
                path.unlink()
        # Flat memory: stream a large file and compare peak growth with a 10x smaller one.
        for fmt, make in (("edifact", edifact_file), ("x12", x12_file)):
            per_mb = len(make(10_000)) / 10_000 / 1e6
            for mb in (stream_mb // 10, stream_mb):
                path = Path(tmp) / f"{fmt}-{mb}mb"
                with open(path, "wb") as fh:  # written in pieces: the bench keeps no 100 MB bytes
                    segments = int(mb / per_mb)
                    fh.write(make(segments))
                v = measure("stream", fmt, path)
                file_of_row.append(f"{fmt} {mb} MB")
                rows.append((f"{fmt} stream {path.stat().st_size / 1e6:.0f} MB", v["count"],
                             v["seconds"], v["count"] / v["seconds"], "", "", v["peak_mb"]))
                path.unlink()
    head = ("reader", "segments", "seconds", "segments/s", "vs pydifact", "vs regex", "peak MB")
    print(f"{head[0]:<42}{head[1]:>11}{head[2]:>9}{head[3]:>12}{head[4]:>12}{head[5]:>10}{head[6]:>9}")
    for name, segs, secs, rate, rp, rr, peak in rows:
        print(f"{name:<42}{segs:>11,}{secs:>9.2f}{rate:>12,.0f}{rp:>12}{rr:>10}{peak:>9.1f}")
    return [{"file": file, "reader": name, "segments": segs, "seconds": round(secs, 4),
             "segments_per_s": round(rate, 1), "peak_mb": round(peak, 2)}
            for file, (name, segs, secs, rate, _, _, peak) in zip(file_of_row, rows)]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(_child(*sys.argv[2:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="segment counts, comma separated (default 10000,1000000)")
    parser.add_argument("--stream-mb", type=int, default=100,
                        help="size of the streamed file for the flat-memory check (default 100)")
    parser.add_argument("--json", type=Path, help="also save the rows to this file")
    args = parser.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], args.stream_mb)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
