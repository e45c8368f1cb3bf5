"""Benchmark-only: make pyas2lib 1.4.4 importable on OpenSSL 3.0.10+ (never imported by the gateway).

oscrypto 1.3.0, pyas2lib's crypto backend and its latest release, reads the libcrypto version
with the regex ``\\b(\\d\\.\\d\\.\\d[a-z]*)\\b``, which cannot match "OpenSSL 3.0.19" and makes
``import oscrypto...`` raise "Error detecting the version of libcrypto" (wbond/oscrypto#75).
The fix (wbond/oscrypto#76, ``\\d+``) is merged on oscrypto's master but unreleased. This shim
applies exactly that one-character change at import time and nothing else.
"""

from __future__ import annotations

import importlib.util
import sys

_RELEASED_REGEX = "'\\\\b(\\\\d\\\\.\\\\d\\\\.\\\\d[a-z]*)\\\\b'"   # as written in oscrypto 1.3.0's source
_FIXED_REGEX = "'\\\\b(\\\\d+\\\\.\\\\d+\\\\.\\\\d+[a-z]*)\\\\b'"    # upstream master


def load_oscrypto_with_openssl3_version_fix() -> None:
    """Import oscrypto's libcrypto binding with upstream's version-regex fix; call before importing pyas2lib.

    Idempotent. Raises RuntimeError when the installed oscrypto is not the source this shim
    knows (neither the released nor the fixed regex is present), rather than guessing.
    """
    import oscrypto

    binding = f"oscrypto._openssl._libcrypto_{oscrypto.ffi()}"   # cffi or ctypes, as oscrypto chooses
    if binding in sys.modules:
        return
    spec = importlib.util.find_spec(binding)
    if spec is None or spec.loader is None or spec.origin is None:
        raise RuntimeError(f"cannot find {binding}")
    source = spec.loader.get_source(binding)  # type: ignore[attr-defined]
    if source is None or (_RELEASED_REGEX not in source and _FIXED_REGEX not in source):
        raise RuntimeError(f"{binding} is not the oscrypto source this shim patches; check the oscrypto version")
    module = importlib.util.module_from_spec(spec)
    sys.modules[binding] = module
    try:
        exec(compile(source.replace(_RELEASED_REGEX, _FIXED_REGEX), spec.origin, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[binding]
        raise
