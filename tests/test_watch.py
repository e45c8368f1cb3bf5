"""Tests for the inbox watcher: real files in tmp_path, real inotify, bounded waits only."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.inbound import watch as watch_mod
from gateway.inbound.watch import InboxWatcher, archive, is_temporary


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def after_rescans(watcher: InboxWatcher, n: int = 2, timeout: float = 5.0) -> None:
    """Wait until ``n`` more full rescans completed: the watcher had every chance to act."""
    target = watcher.scans + n
    await wait_for(lambda: watcher.scans >= target, timeout, f"{n} rescans")


class Recorder:
    """An on_ready handler that reads the file, then archives it, as the gateway does."""

    def __init__(self, archive_root: Path) -> None:
        self.archive_root = archive_root
        self.calls: list[tuple[str, str, bytes]] = []
        self.active = 0
        self.max_active = 0
        self.fail_next: set[str] = set()

    async def __call__(self, partner: str, path: Path) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            data = path.read_bytes()
            await asyncio.sleep(0.001)  # let other handlers overlap, to observe the limit
            self.calls.append((partner, path.name, data))
            if path.name in self.fail_next:
                self.fail_next.discard(path.name)
                raise RuntimeError("store is down")
            await asyncio.to_thread(archive, path, self.archive_root / partner)
        finally:
            self.active -= 1

    def names(self) -> list[str]:
        return [name for _, name, _ in self.calls]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "in" / "ACME"


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "archive")


@pytest.fixture
async def make_watcher(recorder: Recorder):
    started: list[InboxWatcher] = []

    async def make(inboxes: dict[str, Path], **kwargs) -> InboxWatcher:
        kwargs.setdefault("stable_seconds", 0.2)
        kwargs.setdefault("rescan_seconds", 0.3)
        watcher = InboxWatcher(inboxes, kwargs.pop("on_ready", recorder), **kwargs)
        await watcher.start()
        started.append(watcher)
        return watcher

    yield make
    for watcher in started:
        await watcher.stop()


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        ("order.edi", False), ("INVOIC.txt", False), ("x", False),
        (".hidden", True), ("a.part", True), ("a.PART", True), ("a.filepart", True), ("a.tmp", True),
        ("a.partial", True), ("a.crdownload", True), ("a.edi~", True),
    ],
)
def test_is_temporary(name: str, temporary: bool) -> None:
    assert is_temporary(name) is temporary


async def test_file_written_and_closed_is_handed_over_once(make_watcher, recorder, inbox) -> None:
    # stable_seconds is long: a delivery well within it proves the close event triggered it.
    watcher = await make_watcher({"ACME": inbox}, stable_seconds=3.0)
    (inbox / "order.edi").write_bytes(b"UNA:+.? 'UNB+...'")
    await wait_for(lambda: len(recorder.calls) == 1, timeout=2.0, what="delivery on close")
    assert recorder.calls[0] == ("ACME", "order.edi", b"UNA:+.? 'UNB+...'")
    await after_rescans(watcher)
    assert len(recorder.calls) == 1
    assert (recorder.archive_root / "ACME" / "order.edi").read_bytes() == b"UNA:+.? 'UNB+...'"


async def test_rename_from_part_is_handed_over_once_under_final_name(
    make_watcher, recorder, inbox, tmp_path
) -> None:
    watcher = await make_watcher({"ACME": inbox}, stable_seconds=3.0)
    part = inbox / "invoice.edi.part"
    part.write_bytes(b"ISA*00*")
    await after_rescans(watcher)
    assert recorder.calls == []
    part.rename(inbox / "invoice.edi")
    await wait_for(lambda: len(recorder.calls) == 1, timeout=2.0, what="delivery on rename")
    assert recorder.calls == [("ACME", "invoice.edi", b"ISA*00*")]

    # A move in from a folder outside the inbox is an atomic publish too.
    outside = tmp_path / "staging" / "asn.xml"
    outside.parent.mkdir()
    outside.write_bytes(b"<asn/>")
    outside.rename(inbox / "asn.xml")
    await wait_for(lambda: len(recorder.calls) == 2, timeout=2.0, what="delivery on move-in")
    await after_rescans(watcher)
    assert recorder.names() == ["invoice.edi", "asn.xml"]


async def test_temporary_names_and_subfolders_are_never_handed_over(make_watcher, recorder, inbox) -> None:
    watcher = await make_watcher({"ACME": inbox})
    for name in ("a.part", "b.tmp", ".hidden", "c.filepart", "d.partial", "e.crdownload", "f.edi~", "G.TMP"):
        (inbox / name).write_bytes(b"partial")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "nested.edi").write_bytes(b"nested")
    (inbox / "real.edi").write_bytes(b"real")  # control: the watcher is alive
    await wait_for(lambda: len(recorder.calls) == 1, what="the real file")
    await after_rescans(watcher, 3)
    assert recorder.names() == ["real.edi"]
    assert (inbox / "a.part").exists() and (inbox / "sub" / "nested.edi").exists()


async def test_growing_file_is_not_handed_over_until_closed(make_watcher, recorder, inbox) -> None:
    await make_watcher({"ACME": inbox}, stable_seconds=0.5, rescan_seconds=0.2)
    path = inbox / "big.edi"
    chunks = [f"SEG{i:03d}'".encode() for i in range(10)]
    with open(path, "wb") as writer:
        for chunk in chunks:
            writer.write(chunk)
            writer.flush()
            await asyncio.sleep(0.1)
            assert recorder.calls == [], "handed over while still growing"
        # The writer has stopped but still holds the file open: it is quiet, not yet closed.
        await asyncio.sleep(0.1)
        assert recorder.calls == []
    await wait_for(lambda: len(recorder.calls) == 1, timeout=2.0, what="delivery after close")
    assert recorder.calls == [("ACME", "big.edi", b"".join(chunks))]


async def test_quiet_file_without_close_event_is_handed_over_after_stable_period(
    make_watcher, recorder, inbox
) -> None:
    # A create without a close seen (a writer that keeps the file open): the quiet rule decides.
    await make_watcher({"ACME": inbox}, stable_seconds=0.3)
    path = inbox / "held.edi"
    writer = open(path, "wb")  # noqa: SIM115 - held open on purpose
    try:
        writer.write(b"complete")
        writer.flush()
        started = time.monotonic()
        await wait_for(lambda: len(recorder.calls) == 1, timeout=3.0, what="delivery by quiet period")
        assert time.monotonic() - started >= 0.3
    finally:
        writer.close()
    assert recorder.calls == [("ACME", "held.edi", b"complete")]


async def test_files_present_before_start_are_handed_over_at_start(make_watcher, recorder, inbox) -> None:
    inbox.mkdir(parents=True)
    for i in range(3):
        (inbox / f"old{i}.edi").write_bytes(b"old %d" % i)
    os.utime(inbox / "old0.edi", (time.time() - 3600, time.time() - 3600))
    await make_watcher({"ACME": inbox})
    await wait_for(lambda: len(recorder.calls) == 3, timeout=2.0, what="startup deliveries")
    assert sorted(recorder.calls) == [("ACME", f"old{i}.edi", b"old %d" % i) for i in range(3)]


async def test_start_creates_missing_inboxes(make_watcher, tmp_path) -> None:
    watcher = await make_watcher({"A": tmp_path / "x" / "y", "B": tmp_path / "z"})
    assert (tmp_path / "x" / "y").is_dir() and (tmp_path / "z").is_dir()
    assert watcher.inboxes["A"] == (tmp_path / "x" / "y").resolve()


def test_partners_may_not_share_an_inbox(tmp_path, recorder) -> None:
    with pytest.raises(ValueError, match="share the inbox"):
        InboxWatcher({"A": tmp_path / "in", "B": tmp_path / "in" / ".." / "in"}, recorder)


async def test_two_partners_inboxes_are_kept_apart(make_watcher, recorder, tmp_path) -> None:
    a, b = tmp_path / "in" / "ACME", tmp_path / "in" / "GLOBEX"
    watcher = await make_watcher({"ACME": a, "GLOBEX": b})
    (a / "same.edi").write_bytes(b"from acme")
    (b / "same.edi").write_bytes(b"from globex")
    (b / "only-b.edi").write_bytes(b"b")
    await wait_for(lambda: len(recorder.calls) == 3, what="three deliveries")
    await after_rescans(watcher)
    assert sorted(recorder.calls) == [
        ("ACME", "same.edi", b"from acme"),
        ("GLOBEX", "only-b.edi", b"b"),
        ("GLOBEX", "same.edi", b"from globex"),
    ]


async def test_failing_handler_is_retried_at_next_rescan_and_watcher_survives(
    make_watcher, recorder, inbox, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.inbound.watch")
    attempts_at_scan: list[int] = []
    watcher: InboxWatcher | None = None

    async def on_ready(partner: str, path: Path) -> None:
        assert watcher is not None
        attempts_at_scan.append(watcher.scans)
        await recorder(partner, path)

    recorder.fail_next.add("flaky.edi")
    watcher = await make_watcher({"ACME": inbox}, on_ready=on_ready, rescan_seconds=0.5)
    (inbox / "flaky.edi").write_bytes(b"retry me")
    await wait_for(lambda: len(recorder.calls) == 2, what="the retry")
    assert recorder.names() == ["flaky.edi", "flaky.edi"]
    assert attempts_at_scan[1] > attempts_at_scan[0], "retried before the next rescan"
    failures = [r for r in caplog.records if r.name == "gateway.inbound.watch" and r.exc_info]
    assert len(failures) == 1
    assert "ACME" in failures[0].getMessage() and "flaky.edi" in failures[0].getMessage()

    (inbox / "next.edi").write_bytes(b"still alive")
    await wait_for(lambda: "next.edi" in recorder.names(), what="a later file")
    await after_rescans(watcher)
    assert Counter(recorder.names()) == {"flaky.edi": 2, "next.edi": 1}


async def test_handler_that_leaves_file_is_not_hot_looped(make_watcher, inbox) -> None:
    calls: list[float] = []

    async def lazy(partner: str, path: Path) -> None:  # never archives
        calls.append(time.monotonic())
        open(path, "ab").close()  # an IN_CLOSE_WRITE of its own, arriving after it returns

    watcher = await make_watcher({"ACME": inbox}, on_ready=lazy, rescan_seconds=0.4)
    (inbox / "stuck.edi").write_bytes(b"x")
    await wait_for(lambda: len(calls) == 1, what="first attempt")
    await after_rescans(watcher, 3)
    # One attempt per rescan at most (plus the first), never a tight loop.
    assert 2 <= len(calls) <= 5
    assert all(b - a >= 0.3 for a, b in zip(calls, calls[1:]))


async def test_without_events_rescans_find_files_and_still_wait_for_quiet(
    make_watcher, recorder, inbox, monkeypatch, caplog
) -> None:
    # As on a network filesystem or past the inotify watch limit: no events at all.
    def no_watch(self, partner, inbox, current):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(InboxWatcher, "_rewatch", no_watch)
    await make_watcher({"ACME": inbox}, stable_seconds=0.5, rescan_seconds=0.1)
    assert any("relying on rescans" in r.getMessage() for r in caplog.records)
    path = inbox / "slow.edi"
    with open(path, "wb") as writer:
        for i in range(10):
            writer.write(b"SEG%d'" % i)
            writer.flush()
            await asyncio.sleep(0.1)
            assert recorder.calls == [], "handed over while still growing"
    await wait_for(lambda: len(recorder.calls) == 1, timeout=3.0, what="delivery by rescan")
    assert recorder.calls == [("ACME", "slow.edi", b"".join(b"SEG%d'" % i for i in range(10)))]


async def test_symlink_is_skipped_via_on_skip(make_watcher, recorder, inbox, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for partners")
    inbox.mkdir(parents=True)
    (inbox / "before.edi").symlink_to(secret)
    skipped: list[tuple[str, str, str]] = []
    watcher = await make_watcher(
        {"ACME": inbox}, on_skip=lambda partner, path, reason: skipped.append((partner, path.name, reason))
    )
    (inbox / "after.edi").symlink_to(secret)
    await wait_for(lambda: len(skipped) == 2, what="two skips")
    await after_rescans(watcher)
    assert sorted(skipped) == [
        ("ACME", "after.edi", "symlink (never followed)"),
        ("ACME", "before.edi", "symlink (never followed)"),
    ]  # reported once each, not on every rescan
    assert recorder.calls == []
    assert secret.read_bytes() == b"not for partners"
    assert (inbox / "after.edi").is_symlink()


async def test_special_file_is_skipped_via_async_on_skip(make_watcher, recorder, inbox) -> None:
    skipped: list[tuple[str, str, str]] = []

    async def on_skip(partner: str, path: Path, reason: str) -> None:
        skipped.append((partner, path.name, reason))

    watcher = await make_watcher({"ACME": inbox}, on_skip=on_skip)
    os.mkfifo(inbox / "pipe.edi")  # opening it would block a reader forever
    await wait_for(lambda: len(skipped) == 1, what="the skip")
    await after_rescans(watcher)
    assert skipped == [("ACME", "pipe.edi", "not a regular file")]
    assert recorder.calls == []


def test_archive_never_overwrites_and_keeps_bytes(tmp_path) -> None:
    inbox, done = tmp_path / "in", tmp_path / "archive" / "ACME"
    inbox.mkdir()
    done.mkdir(parents=True)
    (done / "order.edi").write_bytes(b"first")
    contents = [b"second", b"third", bytes(range(256)) * 100]
    targets = []
    for data in contents:
        (inbox / "order.edi").write_bytes(data)
        targets.append(archive(inbox / "order.edi", done))
        assert not (inbox / "order.edi").exists()
    assert len(set(targets)) == 3 and all(t.parent == done for t in targets)
    assert (done / "order.edi").read_bytes() == b"first"
    assert [t.read_bytes() for t in targets] == contents
    assert all(t.name.startswith("order.") and t.name.endswith(".edi") for t in targets)


def test_archive_creates_dir_and_refuses_symlinks(tmp_path) -> None:
    (tmp_path / "a.edi").write_bytes(b"a")
    assert archive(tmp_path / "a.edi", tmp_path / "new" / "dir") == tmp_path / "new" / "dir" / "a.edi"
    (tmp_path / "target").write_bytes(b"t")
    (tmp_path / "link.edi").symlink_to(tmp_path / "target")
    with pytest.raises(ValueError, match="not a regular file"):
        archive(tmp_path / "link.edi", tmp_path / "new" / "dir")


def test_archive_across_filesystems_copies_without_overwriting(tmp_path, monkeypatch) -> None:
    def no_link(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(watch_mod.os, "link", no_link)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "x.edi").write_bytes(b"old")
    (tmp_path / "x.edi").write_bytes(b"new bytes")
    target = archive(tmp_path / "x.edi", tmp_path / "done")
    assert target != tmp_path / "done" / "x.edi"
    assert target.read_bytes() == b"new bytes"
    assert (tmp_path / "done" / "x.edi").read_bytes() == b"old"
    assert not (tmp_path / "x.edi").exists()


async def test_200_files_dropped_quickly_are_each_handed_over_once(make_watcher, recorder, inbox) -> None:
    watcher = await make_watcher({"ACME": inbox}, max_concurrent=8)
    expected = {}
    for i in range(200):
        name, data = f"msg{i:03d}.edi", b"payload %d" % i
        expected[name] = data
        if i % 2:
            (inbox / name).write_bytes(data)
        else:  # half of them published the atomic way
            (inbox / f"{name}.part").write_bytes(data)
            (inbox / f"{name}.part").rename(inbox / name)
    await wait_for(lambda: len(recorder.calls) >= 200, timeout=15.0, what="200 deliveries")
    await after_rescans(watcher)
    counts = Counter(recorder.names())
    assert set(counts.values()) == {1} and len(counts) == 200
    assert {name: data for _, name, data in recorder.calls} == expected
    assert 1 <= recorder.max_active <= 8
    assert sorted(os.listdir(inbox)) == []


async def test_stop_returns_promptly_and_waits_for_running_handler(tmp_path, inbox) -> None:
    finished: list[str] = []
    entered = asyncio.Event()

    async def slow(partner: str, path: Path) -> None:
        entered.set()
        await asyncio.sleep(0.3)
        archive(path, tmp_path / "archive")
        finished.append(path.name)

    watcher = InboxWatcher({"ACME": inbox}, slow, stable_seconds=0.2, rescan_seconds=5.0)
    await watcher.start()
    (inbox / "a.edi").write_bytes(b"a")
    await asyncio.wait_for(entered.wait(), 2.0)
    started = time.monotonic()
    await asyncio.wait_for(watcher.stop(), 3.0)
    assert time.monotonic() - started < 2.0
    assert finished == ["a.edi"]
    await watcher.stop()  # idempotent

    idle = InboxWatcher({"ACME": inbox}, slow, stable_seconds=0.2, rescan_seconds=5.0)
    await idle.start()
    started = time.monotonic()
    await asyncio.wait_for(idle.stop(), 3.0)
    assert time.monotonic() - started < 1.5


async def test_inbox_deleted_and_recreated_is_watched_again(make_watcher, recorder, inbox) -> None:
    watcher = await make_watcher({"ACME": inbox}, stable_seconds=3.0, rescan_seconds=0.2)
    inbox.rmdir()
    await after_rescans(watcher)
    inbox.mkdir()
    await after_rescans(watcher)  # the rescan re-watches the new folder
    (inbox / "late.edi").write_bytes(b"late")
    # Well within stable_seconds: the close event from the new watch delivered it.
    await wait_for(lambda: len(recorder.calls) == 1, timeout=2.0, what="delivery in recreated inbox")
