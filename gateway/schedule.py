"""Once-per-deployment jobs (SFTP polls, async MDNs, overdue checks, callbacks) run on one node at a time.

Every node's primary process competes for one lease in the store (``schedule_leases``); the
holder renews it every third of its length and runs the jobs, the others stand by and take it
over once it lapses (a node that died, or a clean stop that released it). On one machine it is
simply always held. Jobs ask :meth:`Schedule.holds` before each round.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from .errors import GatewayError

log = structlog.get_logger("gateway.schedule")

LEASE = "schedules"


class Schedule:
    """Holds (or waits for) the deployment-wide schedule lease for ``owner``."""

    def __init__(self, store: Any, owner: str, *, lease_seconds: float = 30.0) -> None:
        self.store = store
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._valid_until = 0.0       # monotonic: past this, a lease we did not renew may be someone else's
        self._task: asyncio.Task | None = None

    def holds(self) -> bool:
        """May this node run the once-per-deployment jobs right now?"""
        return time.monotonic() < self._valid_until

    async def start(self) -> None:
        await self._renew()
        self._task = asyncio.create_task(self._run(), name="schedule-lease")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.holds():
            self._valid_until = 0.0
            with contextlib.suppress(GatewayError):
                await asyncio.to_thread(self.store.release_lease, LEASE, self.owner)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await self._renew()

    async def _renew(self) -> None:
        asked = time.monotonic()
        try:
            held = await asyncio.to_thread(self.store.hold_lease, LEASE, self.owner, seconds=self.lease_seconds)
        except GatewayError as exc:   # the store is down: our lease runs out on its own; jobs stop with it
            log.warning("schedule lease not renewed", node=self.owner, error=str(exc))
            return
        before = self.holds()
        # Counted from before the request: the lease may be shorter than it says, never longer.
        self._valid_until = asked + self.lease_seconds if held else 0.0
        if held and not before:
            log.info("running the deployment's schedules on this node", node=self.owner)
        elif before and not held:
            log.warning("another node runs the schedules now", node=self.owner)
