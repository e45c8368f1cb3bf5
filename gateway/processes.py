"""Several gateway processes on one machine (``[server] processes = N``): the primary runs and watches the rest.

Python runs one thread at a time per process, so one process uses about one core. With N
processes every one serves the HTTP port (SO_REUSEPORT: the kernel spreads the connections),
processes what it received and delivers from the shared queue (claims with leases, as across
nodes). What must run once per deployment runs in the primary only: the inbox watcher, the
SFTP server and polls, the async MDN sender and the recovery of unprocessed messages at start.
A secondary that dies is started again; secondaries end with the primary (even a kill -9 of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

import structlog

from .metrics import process_exited

log = structlog.get_logger("gateway.processes")

_PR_SET_PDEATHSIG = 1
RESTART_DELAY = 1.0


def die_with_parent(parent_pid: int) -> None:
    """In a secondary: receive SIGTERM when the primary exits, however it exits (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:   # the primary was already gone before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Secondaries:
    """Starts ``count`` secondary ``gateway serve`` processes for a home and restarts any that die."""

    def __init__(self, home: Path, count: int) -> None:
        self.home = home
        self.count = count
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        for index in range(1, self.count + 1):
            self._tasks.append(asyncio.create_task(self._keep(index), name=f"secondary-{index}"))

    async def _keep(self, index: int) -> None:
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "--home", str(self.home), "serve", "--secondary", str(index),
                "--primary-pid", str(os.getpid()))
            self._procs[index] = proc
            log.info("secondary started", index=index, pid=proc.pid)
            code = await proc.wait()
            process_exited(proc.pid)   # its counts stay in the metrics; its breaker gauges go
            if self._stopping:
                return
            log.error("secondary exited; starting it again", index=index, pid=proc.pid, exit_code=code)
            await asyncio.sleep(RESTART_DELAY)

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every secondary (each stops cleanly, like the primary) and wait; SIGKILL after ``grace``."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        waits = [proc.wait() for proc in self._procs.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), grace)
        except TimeoutError:
            for proc in self._procs.values():
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
