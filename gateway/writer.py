"""Group commit for store writes: one writer thread, and whatever queued up meanwhile commits together."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import structlog

log = structlog.get_logger("gateway.writer")


@dataclass(slots=True)
class _Write:
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    durable: bool
    future: asyncio.Future


class BatchWriter:
    """Runs store writes on one thread; writes that arrive while one batch commits form the next.

    Under load this turns N small transactions into one (one BEGIN/COMMIT, at most one fsync),
    and an idle gateway still commits each write at once. SQLite allows one writer anyway,
    so a single thread also keeps our own writes from queueing in SQLite's busy handler.
    A batch is all or nothing: if any write in it fails, the batch is rolled back and its
    writes are re-run one by one, so each caller gets exactly its own result or error.
    """

    def __init__(self, store: Any, max_batch: int = 200) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._queue: list[_Write] = []
        self._flushing = False

    async def __call__(self, fn: Callable[..., Any], *args: Any, durable: bool = False, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` (a store write) and return its result.

        ``durable``: the write's commit must be fsync'd (it backs an acknowledgment).
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append(_Write(fn, args, kwargs, durable, future))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
                try:
                    results = await loop.run_in_executor(self._pool, self._run, batch)
                except BaseException as exc:  # the pool itself failed (shutdown): fail the callers
                    results = [(False, exc)] * len(batch)
                for write, (ok, value) in zip(batch, results):
                    if write.future.done():
                        continue
                    if ok:
                        write.future.set_result(value)
                    else:
                        write.future.set_exception(value)
        finally:
            self._flushing = False

    def _run(self, batch: list[_Write]) -> list[tuple[bool, Any]]:
        if len(batch) > 1:
            try:
                with self.store.batch(durable=any(w.durable for w in batch)):
                    return [(True, w.fn(*w.args, **w.kwargs)) for w in batch]
            except Exception as exc:
                log.debug("batch failed; re-running its writes one by one", size=len(batch), error=repr(exc))
        return [self._one(w) for w in batch]

    @staticmethod
    def _one(write: _Write) -> tuple[bool, Any]:
        try:
            return True, write.fn(*write.args, **write.kwargs)
        except Exception as exc:
            return False, exc

    def close(self) -> None:
        """Wait for the writer thread to finish what it has."""
        self._pool.shutdown(wait=True)


Write = Callable[..., Awaitable[Any]]


async def threaded_write(fn: Callable[..., Any], *args: Any, durable: bool = False, **kwargs: Any) -> Any:
    """The stand-in for a BatchWriter where there is none (tests, tools): the write on a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def blocking(write: Write, loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """``write`` for code running in another thread (the pipeline): submits to ``loop`` and waits."""
    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(write(fn, *args, **kwargs), loop).result()
    return call
