"""scripts/soak.py in its CI mode: 30 s of mixed load on five paths, every figure reported, reconciliation clean."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import REPO

pytestmark = pytest.mark.slow

PATHS = {"as2-sync", "as2-async", "sftp", "inbox", "api"}


def test_soak_ci_mode_reconciles_every_document_and_reports_every_figure(tmp_path):
    report_file = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--ci", "--json", str(report_file)],
                         capture_output=True, text=True, timeout=150, cwd=REPO)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "reconciliation: CLEAN" in run.stdout, run.stdout
    report = json.loads(report_file.read_text())

    # Nothing lost, nothing doubled, on every path; every hand-over was accepted.
    assert report["reconciliation"] == {"clean": True, "failures": 0, "unexpected": []}, report["reconciliation"]
    assert set(report["paths"]) == PATHS
    for name, path in report["paths"].items():
        assert path["sent"] >= 80, (name, path["sent"])        # ~104 at 17.4/s over 5 paths for 30 s
        assert path["accepted"] == path["delivered"] == path["sent"], (name, path)
        for failure in ("lost", "doubled", "misrouted", "key_mismatch", "not_accepted"):
            assert path[failure] == [], (name, failure, path[failure])
        for latency in ("receipt_latency_ms", "submit_latency_ms"):
            figures = path[latency]
            assert figures["n"] == path["delivered"], (name, latency, figures)
            assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"] <= figures["max"], (name, latency, figures)

    # The offered rate is the profile's 100x (15,000 a day -> 17.4/s), and it was delivered.
    assert report["target_rate_per_s"] == pytest.approx(17.36, abs=0.01)
    assert report["throughput"]["offered_per_s"] == pytest.approx(17.36, rel=0.05)
    assert report["throughput"]["delivered_per_s"] >= 0.7 * 17.36, report["throughput"]

    # Deliveries to both internal targets (REST and SOAP by branch) and the partner's, all done at hq.
    hq = report["errors"]["hq_deliveries"]["by_target_status"]
    assert set(hq) == {"erp delivered", "erp-soap delivered", "as2:ACME delivered"}, hq
    assert report["errors"]["soap_refused"] == 0
    assert report["errors"]["hand_over"] == {}

    # Memory, descriptors and database size: sampled over time, with start / peak / end and a slope.
    for series in ("memory_mb", "open_fds"):
        figures = report[series]
        assert len(figures["series"]) >= 10, (series, figures["series"])   # every 2 s over ~30 s of load
        assert 0 < figures["start"] <= figures["peak"] and 0 < figures["end"] <= figures["peak"], figures
        assert figures["slope_per_min"] is not None, figures
    assert report["memory_mb"]["start"] > 20, report["memory_mb"]                # a real gateway process's RSS
    assert 0 < report["db_bytes"]["start"] < report["db_bytes"]["end"], report["db_bytes"]
    assert all(report["cpu"][k] is not None for k in ("hq", "acme", "beta", "soak", "machine")), report["cpu"]
