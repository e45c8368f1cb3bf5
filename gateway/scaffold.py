"""``gateway init``: copy the example deployment (config, partners, mappings, certs, examples) into a folder."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from .errors import GatewayError

PARTS = ("gateway.toml", "partners", "mappings", "certs", "examples")
# Key material in a source checkout's certs/ (made there by `gateway certs generate`) is never copied.
_NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pem", "*.key", "*.p12", "*.pfx", "ssh_host_*")
HOST_KEY = "certs/ssh_host_ed25519_key"


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
            shutil.copytree(src, target / part, dirs_exist_ok=True, ignore=_NOT_COPIED)
        elif src.is_file():
            shutil.copy2(src, target / part)
        else:
            continue
        written.append(target / part)
    (target / "var").mkdir(exist_ok=True)
    written.append(_host_key(target))
    return written


def _host_key(target: Path) -> Path:
    """This deployment's own SSH host key (SFTP server), 0600, named in gateway.toml [sftp] host_keys."""
    import asyncssh

    path = target / HOST_KEY
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        (target / (HOST_KEY + ".pub")).write_bytes(key.export_public_key())
    config = target / "gateway.toml"
    text = config.read_text()
    commented = f'# host_keys = ["{HOST_KEY}"]'
    if commented in text:
        config.write_text(text.replace(commented, f'host_keys = ["{HOST_KEY}"]', 1))
    return path
