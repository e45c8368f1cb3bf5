"""``gateway init``: copy the example deployment (config, partners, mappings, certs, examples) into a folder."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from .errors import GatewayError

PARTS = ("gateway.toml", "partners", "mappings", "certs", "examples")


def example_root() -> Path:
    """Where the example deployment lives: inside the wheel, or at the root of a source checkout."""
    packaged = Path(str(resources.files("gateway"))) / "_example"
    if (packaged / "gateway.toml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[1]   # editable install: the repository itself
    if (checkout / "gateway.toml").is_file() and (checkout / "partners").is_dir():
        return checkout
    raise GatewayError("the example deployment is missing from this installation")


def init_deployment(target: Path, force: bool = False) -> list[Path]:
    """Create a working deployment in ``target``; refuses to overwrite one unless ``force``."""
    source = example_root()
    if (target / "gateway.toml").exists() and not force:
        raise GatewayError(f"{target} already holds a deployment (gateway.toml); use --force to overwrite")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for part in PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, target / part, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy2(src, target / part)
        else:
            continue
        written.append(target / part)
    (target / "var").mkdir(exist_ok=True)
    return written
