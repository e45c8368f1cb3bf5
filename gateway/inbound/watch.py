"""Watch each trading partner's inbox folder and hand over every file exactly when it is complete.

A file is handed to ``on_ready(partner, path)``:

* at once when it was renamed/moved into the inbox under a final name (atomic publish) or
  closed after writing (inotify ``IN_CLOSE_WRITE``), once a ``stat`` confirms it is a
  non-empty regular file;
* otherwise (a create/modify without a close, a file found by a scan, an empty file) only
  when its size and mtime stayed the same for ``stable_seconds`` and its mtime is at least
  ``stable_seconds`` old.

Temporary names (:func:`is_temporary`), directories, sub-folders, symlinks and other
non-regular files are never handed over; symlinks and special files are reported once via
``on_skip``. The handler is expected to store the bytes and then move the file away (see
:func:`archive`); a file still in place after its handler returned is offered again at the
next rescan, never in a loop. watchdog's threads only hop events onto the event loop; all
bookkeeping lives on the loop, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from watchdog.events import (DirDeletedEvent, FileAttribEvent, FileClosedEvent, FileCreatedEvent, FileDeletedEvent,
                             FileModifiedEvent, FileMovedEvent, FileSystemEvent, FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from .archive import archive

__all__ = ["InboxWatcher", "Ready", "Skip", "archive", "is_temporary"]

logger = logging.getLogger("gateway.inbound.watch")

Ready = Callable[[str, Path], Awaitable[None]]
"""``await on_ready(partner, path)``: store the file, then move it out of the inbox."""

Skip = Callable[[str, Path, str], object]
"""``on_skip(partner, path, reason)``: a symlink or special file was left alone (may be async)."""

# (st_dev, st_ino, st_size, st_mtime_ns): which file is at a path, and whether it changed.
Sig = tuple[int, int, int, int]

# An mtime up to this far ahead of our clock is waited out; beyond it, it is not trusted.
_FUTURE_TOLERANCE = 60.0

_TEMP_SUFFIXES = (".part", ".filepart", ".tmp", ".partial", ".crdownload")

# Only the events that can change a file's readiness; watchdog narrows the inotify mask to them.
_EVENTS: list[type[FileSystemEvent]] = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileMovedEvent,
                                         FileClosedEvent, FileDeletedEvent, DirDeletedEvent]


def is_temporary(name: str) -> bool:
    """True for names that writers use while a file is incomplete or hidden.

    Dotfiles, ``*~`` and ``*.part``, ``*.filepart``, ``*.tmp``, ``*.partial``,
    ``*.crdownload`` (suffixes compared case-insensitively: Windows clients upper-case them).
    """
    return not name or name.startswith(".") or name.endswith("~") or name.lower().endswith(_TEMP_SUFFIXES)


def _sig(st: os.stat_result) -> Sig:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:  # gone (the usual case), or unreadable: a later rescan looks again
        return None


def _dir_ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _list_inbox(inbox: Path) -> list[tuple[str, os.stat_result]]:
    """Top-level non-temporary, non-directory entries with their lstat (links not followed)."""
    found = []
    with os.scandir(inbox) as entries:
        for entry in entries:
            if is_temporary(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                found.append((entry.name, st))
    return found


def _make_observer() -> BaseObserver:
    try:
        # Full events: a file moved in from outside the inbox arrives as a move (a publish),
        # not as a bare create that would have to wait out the stability period.
        return Observer(generate_full_events=True)  # type: ignore[call-arg]
    except TypeError:  # not inotify (another OS): plain events, the stability rule covers it
        return Observer()


class _Relay(FileSystemEventHandler):
    """Runs in watchdog's thread and only hops each event onto the loop: no shared state."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Callable[[str, FileSystemEvent], None],
                 partner: str) -> None:
        self._loop, self._sink, self._partner = loop, sink, partner

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._sink, self._partner, event)
        except RuntimeError:  # the loop is closed: the gateway is shutting down
            pass


@dataclass(slots=True)
class _Candidate:
    """A file waiting out its quiet period; ``since`` is when it was last seen changing."""

    partner: str
    since: float
    sig: Sig | None = None


class InboxWatcher:
    """Hands each complete file in the partners' inbox folders to ``on_ready`` exactly once.

    ``inboxes`` maps partner id -> folder and is fixed here (folders are resolved to absolute
    paths now; two partners may not share one). ``on_ready`` runs for at most
    ``max_concurrent`` files at a time and never twice at once for the same path; its
    exceptions are logged and the file is retried at the next rescan. ``on_skip`` hears about
    symlinks and special files, once per file.
    """

    def __init__(
        self,
        inboxes: Mapping[str, Path],
        on_ready: Ready,
        *,
        stable_seconds: float = 1.0,
        rescan_seconds: float = 5.0,
        max_concurrent: int = 8,
        on_skip: Skip | None = None,
    ) -> None:
        if stable_seconds < 0 or rescan_seconds <= 0 or max_concurrent < 1:
            raise ValueError("need stable_seconds >= 0, rescan_seconds > 0 and max_concurrent >= 1")
        folders: dict[str, Path] = {}
        owner: dict[Path, str] = {}
        for partner, folder in inboxes.items():
            if not partner:
                raise ValueError("an inbox needs a partner id")
            # Resolved once, here: watchdog watches with IN_DONT_FOLLOW, so a symlinked inbox
            # folder would otherwise watch the link itself and report nothing.
            path = Path(folder).resolve()
            if path in owner:
                raise ValueError(f"partners {owner[path]!r} and {partner!r} share the inbox {path}")
            folders[partner], owner[path] = path, partner
        self._inboxes: Mapping[str, Path] = MappingProxyType(folders)
        self._on_ready = on_ready
        self._on_skip: Skip = on_skip or (lambda partner, path, reason: None)
        self._stable = float(stable_seconds)
        self._rescan = float(rescan_seconds)
        # Check pending files a few times per quiet period, but not busily.
        self._tick = min(0.25, max(0.02, self._stable / 4))
        self._sem = asyncio.Semaphore(max_concurrent)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: BaseObserver | None = None
        self._observer_lock = threading.Lock()  # schedule() runs in worker threads, stop() too
        self._watch_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Future[object]] = set()
        self._started = self._stopping = False
        self._scans = 0

        self._candidates: dict[Path, _Candidate] = {}
        self._running: dict[Path, asyncio.Task[None]] = {}
        self._republished: set[Path] = set()  # published again while its handler ran
        self._cooldown: dict[Path, Sig] = {}  # handler returned, file unchanged: wait for a rescan
        self._skipped: dict[Path, Sig] = {}
        self._future_mtime: set[Path] = set()
        # partner -> (watch, the inbox folder's (dev, inode) when it was watched)
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._dead: set[str] = set()  # inbox folder deleted: its watch stopped
        self._unwatched: set[str] = set()  # warned that the folder is missing/unwatchable

    @property
    def inboxes(self) -> Mapping[str, Path]:
        """Partner id -> resolved inbox folder, as fixed at construction."""
        return self._inboxes

    @property
    def not_ready(self) -> str | None:
        """Why the watcher is not watching yet (None when it is, or has no inboxes): for /ready."""
        if not self._inboxes:
            return None
        if self._stopping or self._observer is None or not self._observer.is_alive():
            return "not watching"
        return "first scan not finished" if self.scans < 1 else None

    @property
    def scans(self) -> int:
        """How many full scans of all inboxes have completed (for monitoring and tests)."""
        return self._scans

    async def start(self) -> None:
        """Create missing inbox folders, start watching, then scan every inbox once.

        The scan picks up files that arrived while the gateway was down; watching starts
        first so nothing can slip in between.
        """
        if self._started:
            raise RuntimeError("InboxWatcher.start() called twice")
        self._started = True
        self._loop = asyncio.get_running_loop()
        for inbox in self._inboxes.values():
            await asyncio.to_thread(inbox.mkdir, parents=True, exist_ok=True)
        self._observer = _make_observer()
        self._observer.start()
        await self._ensure_watches()
        await self.scan()
        self._tasks = [
            asyncio.create_task(self._rescan_loop(), name="inbox-rescan"),
            asyncio.create_task(self._stability_loop(), name="inbox-stability"),
        ]

    async def stop(self) -> None:
        """Stop watching and rescanning, then wait for handlers already running to finish."""
        if self._stopping:
            return
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._stop_observer)
        # Handlers still waiting for the semaphore see _stopping and return at once.
        await asyncio.gather(*self._running.values(), *self._side_tasks, return_exceptions=True)

    async def scan(self) -> None:
        """Look at every inbox now, as the periodic rescan does (also retries failed files)."""
        async with self._scan_lock:
            for partner, inbox in self._inboxes.items():
                try:
                    entries = await asyncio.to_thread(_list_inbox, inbox)
                except OSError as exc:  # missing folder: _ensure_watches already warned
                    if not isinstance(exc, FileNotFoundError):
                        logger.warning("cannot scan inbox %s of partner %s: %s", inbox, partner, exc,
                                       extra={"partner": partner})
                    continue
                if not self._stopping:
                    self._absorb_scan(partner, inbox, entries)
            self._scans += 1

    # -- background loops -------------------------------------------------------------------

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self._rescan)
            try:
                await self._ensure_watches()
                await self.scan()
            except Exception:  # a rescan must never end the watcher
                logger.exception("inbox rescan failed")

    async def _stability_loop(self) -> None:
        while True:
            if not self._candidates:
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(self._tick)
            try:
                await self._check_candidates()
            except Exception:
                logger.exception("inbox stability check failed")

    async def _check_candidates(self) -> None:
        items = list(self._candidates.items())
        stats = await asyncio.to_thread(lambda: [_lstat(path) for path, _ in items])
        now, wall = time.monotonic(), time.time()
        for (path, cand), st in zip(items, stats):
            if self._candidates.get(path) is not cand:
                continue  # published, forgotten or replaced while we were stat'ing
            if st is None or not stat.S_ISREG(st.st_mode):
                del self._candidates[path]
                if st is not None:
                    self._note_unusual(cand.partner, path, st)
                continue
            sig = _sig(st)
            if sig != cand.sig:
                first_look = cand.sig is None
                cand.sig = sig
                if not first_look:
                    cand.since = now  # it changed: start the quiet period again
                    continue
            # cand.since is read after the await: an event that arrived meanwhile counts.
            if now - cand.since >= self._stable and self._mtime_old_enough(cand.partner, path, st, wall):
                del self._candidates[path]
                self._dispatch(cand.partner, path, expect=sig)

    def _mtime_old_enough(self, partner: str, path: Path, st: os.stat_result, wall: float) -> bool:
        # The mtime age catches writes whose events have not reached us yet.
        age = wall - st.st_mtime_ns / 1e9
        if age >= self._stable:
            return True
        if age >= -max(self._stable, _FUTURE_TOLERANCE):
            return False
        # Far in the future (a skewed server clock, a preserved timestamp): waiting for the clock
        # could hold the file for hours, so the observed quiet period alone decides.
        if path not in self._future_mtime:
            self._future_mtime.add(path)
            logger.warning("%s: partner %s: mtime is %.0f s in the future; judging it by observation only",
                           path, partner, -age, extra={"partner": partner})
        return True

    # -- events (on the loop, via call_soon_threadsafe) ---------------------------------------

    def _on_fs_event(self, partner: str, event: FileSystemEvent) -> None:
        if self._stopping:
            return
        inbox = self._inboxes[partner]
        src = Path(os.fsdecode(event.src_path)) if event.src_path else None
        if event.is_directory:
            if isinstance(event, DirDeletedEvent) and src == inbox:
                # watchdog stops this watch; the rescan re-watches the folder if it comes back.
                self._dead.add(partner)
                logger.warning("inbox %s of partner %s was deleted", inbox, partner,
                               extra={"partner": partner})
            return
        if src is not None and src.parent != inbox:
            src = None  # not top level: ignored
        if isinstance(event, FileMovedEvent):
            if src is not None:
                self._forget(src)
            dest = Path(os.fsdecode(event.dest_path)) if event.dest_path else None
            if dest is not None and dest.parent == inbox:
                self._publish(partner, dest)
        elif src is None:
            return
        elif isinstance(event, FileClosedEvent):
            self._publish(partner, src)
        elif isinstance(event, FileDeletedEvent):
            self._forget(src)
        else:  # created, modified, attributes changed
            self._changed(partner, src)

    def _publish(self, partner: str, path: Path) -> None:
        """Renamed in or closed after writing: ready now (after one stat in _deliver)."""
        if is_temporary(path.name):
            return
        if path in self._running:
            self._republished.add(path)  # decided when the running handler returns
            return
        self._candidates.pop(path, None)
        self._dispatch(partner, path, published=True)

    def _changed(self, partner: str, path: Path) -> None:
        if is_temporary(path.name) or path in self._running:
            return  # a running handler's file is looked at again when the handler returns
        cand = self._candidates.get(path)
        if cand is None:
            self._track(partner, path)
        else:
            cand.since = time.monotonic()

    def _forget(self, path: Path) -> None:
        self._candidates.pop(path, None)
        self._cooldown.pop(path, None)
        self._skipped.pop(path, None)
        self._future_mtime.discard(path)

    def _track(self, partner: str, path: Path, sig: Sig | None = None) -> None:
        self._candidates[path] = _Candidate(partner, time.monotonic(), sig)
        self._wake.set()

    def _absorb_scan(self, partner: str, inbox: Path, entries: list[tuple[str, os.stat_result]]) -> None:
        present = set()
        for name, st in entries:
            path = inbox / name
            present.add(path)
            if not stat.S_ISREG(st.st_mode):
                self._note_unusual(partner, path, st)
                continue
            if path in self._running or path in self._candidates:
                continue
            sig = _sig(st)
            failed = self._cooldown.pop(path, None)
            if failed == sig:
                self._dispatch(partner, path, expect=sig, retry=True)  # "at the next rescan"
            else:
                self._track(partner, path, sig)
        # Drop what we remember about files that are gone, so memory stays bounded.
        for book in (self._cooldown, self._skipped):
            for path in [p for p in book if p.parent == inbox and p not in present]:
                del book[path]
        self._future_mtime = {p for p in self._future_mtime if p.parent != inbox or p in present}

    def _note_unusual(self, partner: str, path: Path, st: os.stat_result) -> None:
        """Report a symlink or special file once per file; directories are simply ignored."""
        if stat.S_ISDIR(st.st_mode) or self._skipped.get(path) == _sig(st):
            return
        self._skipped[path] = _sig(st)
        reason = "symlink (never followed)" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        logger.warning("%s: partner %s: skipped: %s", path, partner, reason, extra={"partner": partner})
        try:
            result = self._on_skip(partner, path, reason)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._side_tasks.add(task)  # keep a reference until done; stop() waits for it
                task.add_done_callback(self._side_done)
        except Exception:
            logger.exception("%s: partner %s: on_skip failed", path, partner, extra={"partner": partner})

    def _side_done(self, task: asyncio.Future[object]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("inbox on_skip hook failed", exc_info=task.exception())

    # -- handing over -------------------------------------------------------------------------

    def _dispatch(self, partner: str, path: Path, *, expect: Sig | None = None,
                  published: bool = False, retry: bool = False) -> None:
        if path in self._running or self._stopping:
            return
        self._candidates.pop(path, None)
        self._running[path] = asyncio.create_task(self._deliver(partner, path, expect, published, retry))

    async def _deliver(self, partner: str, path: Path, expect: Sig | None, published: bool,
                       retry: bool) -> None:
        try:
            outcome = await self._attempt(partner, path, expect, published, retry)
        finally:
            self._running.pop(path, None)
        if outcome is None or self._stopping:
            self._republished.discard(path)
            return
        delivered, after = outcome
        republished = path in self._republished
        self._republished.discard(path)
        if after is None:
            return  # archived or removed by the handler: done
        if not stat.S_ISREG(after.st_mode):
            self._note_unusual(partner, path, after)
        elif delivered is None or _sig(after) != delivered:
            # A new or changed file now sits at this path.
            if republished:
                self._dispatch(partner, path, published=True)
            else:
                self._track(partner, path, _sig(after))
        else:
            self._cooldown[path] = delivered
            logger.warning("%s: partner %s: still in the inbox after its handler returned; "
                           "retrying at the next rescan", path, partner, extra={"partner": partner})

    async def _attempt(self, partner: str, path: Path, expect: Sig | None, published: bool,
                       retry: bool) -> tuple[Sig | None, os.stat_result | None] | None:
        """Run the handler once; returns (signature handed over, lstat after), or None if skipped."""
        async with self._sem:
            if self._stopping:
                return None
            st = await asyncio.to_thread(_lstat, path)
            if st is None:
                return None
            if not stat.S_ISREG(st.st_mode):
                self._note_unusual(partner, path, st)
                return None
            sig = _sig(st)
            if (expect is not None and sig != expect) or (published and st.st_size == 0):
                # Changed since it was judged quiet, or an empty close (a bare `touch`, a
                # client that creates first and writes later): let the quiet period decide.
                return None, st
            if self._cooldown.get(path) == sig and not retry:
                return None  # the same file its handler already left behind: the rescan retries it
            self._cooldown.pop(path, None)
            try:
                await self._on_ready(partner, path)
            except Exception:
                logger.exception("%s: partner %s: inbox handler failed", path, partner,
                                 extra={"partner": partner})
            return sig, await asyncio.to_thread(_lstat, path)

    # -- watches ------------------------------------------------------------------------------

    async def _ensure_watches(self) -> None:
        """Watch every inbox folder that exists; re-watch one that was deleted or replaced."""
        async with self._watch_lock:
            for partner, inbox in self._inboxes.items():
                ident = await asyncio.to_thread(_dir_ident, inbox)
                current = self._watches.get(partner)
                if ident is None:
                    if partner not in self._unwatched:
                        self._unwatched.add(partner)
                        logger.warning("inbox %s of partner %s is missing; watching again when it is back",
                                       inbox, partner, extra={"partner": partner})
                    continue
                if current is not None and current[1] == ident and partner not in self._dead:
                    continue
                self._dead.discard(partner)
                try:
                    watch = await asyncio.to_thread(self._rewatch, partner, inbox, current and current[0])
                except OSError as exc:  # e.g. the inotify watch limit: rescans still find files
                    self._watches.pop(partner, None)
                    if partner not in self._unwatched:
                        self._unwatched.add(partner)
                        logger.warning("cannot watch inbox %s of partner %s (%s); relying on rescans",
                                       inbox, partner, exc, extra={"partner": partner})
                    continue
                if watch is not None:
                    self._watches[partner] = (watch, ident)
                    self._unwatched.discard(partner)

    def _rewatch(self, partner: str, inbox: Path, old: ObservedWatch | None) -> ObservedWatch | None:
        with self._observer_lock:  # never schedule on an observer that stop() is tearing down
            observer, loop = self._observer, self._loop
            if observer is None or loop is None or self._stopping:
                return None
            if old is not None:
                with contextlib.suppress(KeyError, RuntimeError):
                    observer.unschedule(old)
            return observer.schedule(_Relay(loop, self._on_fs_event, partner), str(inbox),
                                     recursive=False, event_filter=_EVENTS)

    def _stop_observer(self) -> None:
        with self._observer_lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
