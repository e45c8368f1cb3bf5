"""The benchmark-only oscrypto shim lets pyas2lib 1.4.4 import on OpenSSL 3.0.10+ (scripts/pyas2lib_shim.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.skipif(importlib.util.find_spec("pyas2lib") is None,
                    reason="pyas2lib is not installed (pip install -e '.[bench]')")
def test_shim_makes_pyas2lib_importable():
    # In a subprocess, so this pytest process's oscrypto (if any) is left alone.
    code = ("import pyas2lib_shim; pyas2lib_shim.load_oscrypto_with_openssl3_version_fix(); "
            "from oscrypto._openssl._libcrypto import libcrypto_version_info as v; import pyas2lib.as2; print(v)")
    out = subprocess.run([sys.executable, "-c", code], cwd=SCRIPTS, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("(3,")
