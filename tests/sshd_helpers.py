"""A real OpenSSH ``sshd`` for the SFTP client tests: its own config, host key and authorized keys in a folder.

Started as ``/usr/sbin/sshd -D -e -f CONFIG`` on a free loopback port; its log (stderr:
connections and logins) is kept in ``<folder>/sshd.log`` so tests can check what happened on
the server. Tests need root (sshd switches to the logged-in user);
:func:`sshd_unavailable` gives the reason to skip otherwise. A throwaway system user with a
password can be made for password-login tests (:func:`throwaway_user`) and is removed after.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")   # compiled into Debian's sshd; it refuses to start without it


def sshd_unavailable() -> str | None:
    """Why a real sshd cannot run here, or None."""
    if not SSHD.is_file():
        return f"{SSHD} is absent (install the Debian package openssh-server)"
    if os.geteuid() != 0:
        return "sshd tests log in as root and need to run as root"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen (OpenSSH client tools) is not installed"
    return None


def keygen(path: Path) -> str:
    """A new unencrypted ed25519 key pair at ``path`` / ``path.pub``; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return (path.with_name(path.name + ".pub")).read_text().strip()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_ssh(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(8).startswith(b"SSH-2.0")
    except OSError:
        return False


class Sshd:
    """One sshd process for a test module; ``stop()`` ends it (by its own pid)."""

    def __init__(self, folder: Path, host_key: Path, authorized_keys: list[str]) -> None:
        self.folder = folder
        self.host_key = host_key
        self.config = folder / "sshd_config"
        self.log_path = folder / "sshd.log"
        (folder / "authorized_keys").write_text("".join(line + "\n" for line in authorized_keys))
        self.port = 0
        self.process: subprocess.Popen | None = None

    def _write_config(self) -> None:
        self.config.write_text(
            f"ListenAddress 127.0.0.1:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n"
            "LogLevel VERBOSE\n"
            "Subsystem sftp internal-sftp\n")

    def start(self, timeout: float = 10.0) -> "Sshd":
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        for _ in range(3):   # another process may take the free port first
            self.port = free_port()
            self._write_config()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(self.config)],
                                                stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if _answers_ssh(self.port):
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"sshd did not start; its log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def throwaway_user(password: str) -> Iterator[str]:
    """A system user with ``password`` and no home or shell, deleted afterwards; yields its name."""
    name = f"gwsftp{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                    name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
