"""Composition root: wires the store, the receiving edges (inbox, AS2), the pipeline and the delivery worker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import structlog

from . import callbacks, canonical, interchanges, pipeline
from .alerts import AlertRules
from .config import Deployment
from .config_as2 import certificate_warnings
from .errors import DuplicateError, GatewayError
from .http import HttpServer
from .inbound.api import DocumentApi
from .inbound.as2 import As2Receiver
from .inbound.sftp import SftpServer
from .inbound.sftp_poll import SftpPoller
from .inbound.watch import InboxWatcher, archive
from .metrics import Metrics, Readiness, use_multiprocess_dir
from .model import Channel, MessageStatus, Received
from .outbound import CONNECTORS
from .outbound.as2 import As2Connector, ReceiptBook
from .outbound.outbox import OutboxConnector
from .outbound.sftp import SftpConnector
from .processes import Secondaries
from .schedule import Schedule
from .store import Store, document_json
from .worker import DeliveryWorker
from .web import WebDashboard
from .writer import BatchWriter, blocking

log = structlog.get_logger("gateway.app")

MIC_KEPT_SECONDS = 30 * 86400   # an async MDN later than this is not checked against its MIC any more


def open_store(deployment: Deployment) -> Store:
    """Open (and migrate) the deployment's store."""
    s = deployment.settings.store
    return Store.open(s.url, s.blobs, duplicate_window=s.duplicate_window_days * 86400)


def _direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def run_pipeline(store: Store, deployment: Deployment, message_id: str,
                 write: Callable[..., Any] = _direct, *, replay: bool = False,
                 metrics: Metrics | None = None) -> pipeline.Outcome | None:
    """Run the pipeline on a stored message and record the result; blocking (call off the loop).

    Used by the server for new and recovered messages and by ``gateway replay``. ``write``
    runs one store write (the server routes writes to its single writer thread); reads and
    blob writes happen right here, in the caller's thread, so they never queue behind it.
    Returns the outcome, or None when the input was rejected (the typed error is recorded) or,
    unless ``replay``, when the message is no longer waiting: another node (or this one's
    sweep) processed it, and doing it again would re-send what was delivered.
    """
    record = store.message(message_id)
    if not replay and record.status is not MessageStatus.RECEIVED:
        return None
    if metrics is not None and not replay:
        metrics.message_received(record.partner, record.channel)
    raw = store.raw(message_id)
    try:
        outcome = pipeline.process(raw, deployment, partner_id=record.partner, channel=record.channel,
                                   message_id=message_id, raw_sha256=record.raw_sha256, filename=record.filename)
        duplicate = interchanges.check_duplicates(store, deployment, message_id, outcome, write)
        if duplicate is not None:
            raise duplicate
    except GatewayError as exc:
        write(store.record_failed, message_id, exc)
        if metrics is not None:
            metrics.message_processed(record.partner or exc.partner, None,
                                      "duplicate" if isinstance(exc, DuplicateError) else "failed")
        log.warning("message rejected", message_id=message_id, partner=record.partner, error=str(exc))
        interchanges.send_acknowledgments(store, deployment, message_id, record.partner or exc.partner,
                                          interchanges.checked_of_failure(raw, exc), write)
        return None
    for document in outcome.documents:
        document.body = document_json(document.envelope)
        store.blobs.put(document.body)   # durable before the rows that name it
    queued = write(store.record_processed, message_id, format=outcome.format, standard=outcome.standard,
                   interchange=outcome.interchange, documents=outcome.documents, partner=outcome.partner,
                   control_numbers=interchanges.control_numbers(outcome), only_pending=not replay)
    if queued is None:
        log.info("message already processed elsewhere", message_id=message_id, partner=outcome.partner)
        return None
    if metrics is not None:
        metrics.message_processed(outcome.partner, outcome.format, "processed", [d.type for d in outcome.documents])
    for message, issues in outcome.rejected:
        write(store.event, "rejected", "error", message_id=message_id, partner=outcome.partner,
              detail=f"{message.type} {message.reference}: " + "; ".join(str(i) for i in issues))
    if outcome.acks:
        interchanges.match_acknowledgments(store, message_id, outcome, write)
    interchanges.send_acknowledgments(store, deployment, message_id, outcome.partner, outcome.checked, write)
    return outcome


class Gateway:
    """One running gateway node: receives, processes and delivers until stopped.

    ``secondary`` (1, 2...) is one of several processes of one deployment on this machine
    (see gateway/processes.py): it serves HTTP, processes and delivers, and leaves what must
    run once (inbox watcher, SFTP, async MDNs, start-up recovery) to the primary.
    """

    def __init__(self, deployment: Deployment, store: Store, *, secondary: int = 0) -> None:
        self.deployment = deployment
        self.settings = deployment.settings
        self.store = store
        self.primary = secondary == 0
        node = self.settings.node if self.primary else f"{self.settings.node}/{secondary}"
        # Row writes go through one group-committing writer; reads and blob I/O run elsewhere.
        self.write = BatchWriter(store)
        self._work: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()        # messages this process will process (queued or running)
        self._sweeper: asyncio.Task | None = None
        self._reporter: asyncio.Task | None = None
        self._processors: list[asyncio.Task] = []
        self.connectors = {name: CONNECTORS[t.type](t, deployment.home) for name, t in self.settings.targets.items()}
        # Partners' own channels ("as2:<ID>", "outbox:<ID>"...): one connector per partner and channel.
        self.receipts = ReceiptBook(deployment, store, self.write)
        channels = {
            "as2": lambda partner: As2Connector(partner, deployment, self.receipts),
            "outbox": lambda partner: OutboxConnector(partner, deployment),
            "sftp": lambda partner: SftpConnector(partner, deployment),
        }
        for name, target in deployment.targets.items():
            if target.type in channels:
                self.connectors[name] = channels[target.type](deployment.partners[target.options["partner"]])
        d = self.settings.delivery
        self.worker = DeliveryWorker(store, self.write, deployment.targets, self.connectors, owner=node,
                                     workers=d.workers, per_target=d.per_target, lease_seconds=d.lease_seconds,
                                     poll_seconds=d.poll_seconds)
        inboxes = {p.id: p.inbox for p in deployment.partners.values()
                   if p.inbox is not None and p.enabled and self.primary}
        self.watcher = InboxWatcher(inboxes, self.on_inbox_file, on_skip=self.on_inbox_skip,
                                    stable_seconds=self.settings.inbox.stable_seconds,
                                    rescan_seconds=self.settings.inbox.rescan_seconds)
        self.sftp = None
        if self.primary and self.settings.sftp.enabled and any(p.enabled and p.sftp is not None
                                                               for p in deployment.partners.values()):
            self.sftp = SftpServer(deployment, store, self.write, on_message=self.enqueue)
        # Periodic jobs run on one node of the deployment at a time (gateway/schedule.py).
        self.schedule = Schedule(store, node) if self.primary else None
        holds = self.schedule.holds if self.schedule is not None else (lambda: False)
        self.sftp_poller = (SftpPoller(deployment, store, self.write, on_message=self.enqueue, may_run=holds)
                            if self.primary else None)
        # The HTTP listener opens only when something is served on it (AS2, the document API).
        # Monitoring: counters for /metrics (shared through files by several processes), alert rules.
        monitoring = self.settings.monitoring
        if self.settings.processes > 1:
            use_multiprocess_dir(monitoring.multiprocess_dir, fresh=self.primary)
        self.metrics = Metrics(monitoring, store, deployment, breakers=lambda: self.worker.breakers)
        self.worker.metrics = self.metrics
        alert_settings = self.settings.alerts
        self.alerts = (AlertRules(alert_settings, store, deployment, self.write, may_run=holds,
                                  webhook=self.connectors.get(alert_settings.webhook)) if self.primary else None)
        serve_http = self.settings.http.enabled and (self.settings.as2.enabled or self.settings.api.enabled
                                                     or self.settings.web.enabled or monitoring.listen)
        self.http = HttpServer(self.settings.http, shared=self.settings.processes > 1) if serve_http else None
        if self.http is not None:
            checks = {"inbox watcher": lambda: self.watcher.not_ready}
            if self.sftp is not None:
                checks["sftp server"] = lambda: self.sftp.not_ready
            self.http.add_routes([*self.metrics.routes(),
                                  *Readiness(store, checks, timeout=monitoring.ready_timeout).routes()])
        self.as2 = None
        if self.http is not None and self.settings.as2.enabled:
            self.as2 = As2Receiver(deployment, store, self.write, on_message=self.enqueue,
                                   on_mdn=self.receipts.accept, send_mdns=self.primary, may_send_mdns=holds)
            self.http.add_routes(self.as2.routes())
        self.api = None
        if self.http is not None and self.settings.api.enabled:
            self.api = DocumentApi(deployment, store, self.write, on_queued=self.worker.wake)
            self.http.add_routes(self.api.routes())
        self.web = None
        if self.http is not None and self.settings.web.enabled:
            self.web = WebDashboard(deployment, store, self.settings.web, write=self.write, on_queued=self.worker.wake,
                                    masking={p.id: p.masking for p in deployment.partners.values()})
            self.http.add_routes(self.web.routes())

    async def start(self) -> None:
        """Recover unfinished work, then open the receiving edges and start delivering."""
        self._loop = asyncio.get_running_loop()
        if self.schedule is not None:
            await self.schedule.start()
        if self.primary:
            await self._recover()
            self._sweeper = asyncio.create_task(self._sweep(), name="recover-stale")
            if self.settings.api.enabled and self.settings.api.callbacks:
                self._reporter = asyncio.create_task(self._report_statuses(), name="status-callbacks")
            if self.alerts is not None:
                self.alerts.start()
        for n in range(self.settings.processors):
            self._processors.append(asyncio.create_task(self._process_loop(), name=f"processor-{n}"))
        self.worker.start()
        await self.watcher.start()
        if self.sftp is not None:
            await self.sftp.start()
        if self.sftp_poller is not None:
            await self.sftp_poller.start()
        if self.as2 is not None:
            await self.as2.start()
        if self.http is not None:
            await self.http.start()
        log.info("gateway started", node=self.worker.owner, partners=len(self.deployment.partners),
                 targets=len(self.connectors), recovered=self._work.qsize(),
                 http=self.http.url if self.http is not None else None, as2=self.as2 is not None,
                 api=self.api is not None, schedules=self.schedule is not None and self.schedule.holds(),
                 sftp=f"{self.settings.sftp.host}:{self.sftp.port}" if self.sftp is not None else None)

    async def _recover(self) -> None:
        """Once per deployment (the primary): report config problems, then queue unprocessed messages."""
        for problem in self.deployment.problems:
            log.error("partner file skipped", problem=str(problem))
            await self.write(self.store.event, "config", "error", detail=str(problem))
        for warning in certificate_warnings(self.deployment, dt.datetime.now(dt.UTC)):
            log.warning("certificate expiring", problem=str(warning))
            await self.write(self.store.event, "certificate", "warning", detail=str(warning))
        for record in await asyncio.to_thread(self.store.pending_messages):
            self.enqueue(record.id)   # stored before a crash, never processed

    def enqueue(self, message_id: str) -> None:
        """Have a stored message processed by this process (once, however often it is offered)."""
        if message_id not in self._queued:
            self._queued.add(message_id)
            self._work.put_nowait(message_id)

    async def _sweep(self) -> None:
        """Now and then, process messages that stayed "received" (their process died) and report overdue acks.

        At start-up the primary takes over what a crash left; a secondary that dies (and is
        started again) or a processing error leaves messages nobody holds: this picks them up.
        """
        after = self.settings.recover_after_seconds
        while True:
            await asyncio.sleep(min(60.0, after / 2))
            if self.schedule is None or not self.schedule.holds():
                continue   # another node of the deployment runs the sweep
            try:
                stale = await asyncio.to_thread(self.store.pending_messages)
            except GatewayError as exc:
                log.warning("stale-message sweep failed", error=str(exc))
                continue
            for record in stale:
                if record.received_at < time.time() - after and record.id not in self._queued:
                    log.warning("processing a message left unprocessed", message_id=record.id, partner=record.partner)
                    self.enqueue(record.id)
            try:   # acknowledgments partners owe us: each overdue one becomes an event, once
                await asyncio.to_thread(interchanges.overdue, self.store, _direct)
                await asyncio.to_thread(self.store.forget_sent_mics, time.time() - MIC_KEPT_SECONDS)
            except GatewayError as exc:
                log.warning("overdue-acknowledgment check failed", error=str(exc))

    async def _report_statuses(self) -> None:
        """Queue status callbacks for API submissions whose status settled (gateway/callbacks.py)."""
        while True:
            await asyncio.sleep(self.settings.api.callback_seconds)
            if self.schedule is None or not self.schedule.holds():
                continue
            try:
                if await asyncio.to_thread(callbacks.report_settled, self.store):
                    self.worker.wake()
            except GatewayError as exc:
                log.warning("status callbacks not queued", error=str(exc))

    async def stop(self) -> None:
        """Stop receiving, finish processing what was received, then stop delivering."""
        for task in (self._sweeper, self._reporter):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.alerts is not None:
            await self.alerts.stop()
        if self.sftp is not None:   # lets uploads being stored finish: before the writer closes
            await self.sftp.stop()
        if self.http is not None:
            await self.http.stop()
        if self.as2 is not None:
            await self.as2.stop()
        await self.watcher.stop()
        if self.sftp_poller is not None:
            await self.sftp_poller.stop()
        await self._work.join()
        for task in self._processors:
            task.cancel()
        await asyncio.gather(*self._processors, return_exceptions=True)
        await self.worker.stop()
        for connector in self.connectors.values():
            await connector.close()
        if self.schedule is not None:
            await self.schedule.stop()
        self.write.close()
        log.info("gateway stopped")

    async def on_inbox_file(self, partner: str, path: Path) -> None:
        """A complete file is in a partner's inbox: store it, then archive it, then process it."""
        raw, source_ref = await asyncio.to_thread(_read_inbox_file, path)
        sha = await asyncio.to_thread(self.store.blobs.put, raw)   # the slow, fsync'd part, off the writer
        result = await self.write(self.store.receive,
                                  Received(raw=raw, channel=Channel.INBOX, partner=partner, filename=path.name,
                                           source_ref=source_ref, raw_sha256=sha), durable=True)
        # Only now, with the bytes committed, may the file leave the inbox.
        await asyncio.to_thread(archive, path, self.settings.inbox.archive / partner)
        message = result.message
        log.info("received", partner=partner, message_id=message.id, file=path.name, size=len(raw),
                 duplicate_of=result.duplicate_of, recovered=result.recovered)
        if result.duplicate_of and not result.recovered:
            self.metrics.duplicate_received(partner, Channel.INBOX.value)
        if not result.recovered and message.status == MessageStatus.RECEIVED.value:
            self.enqueue(message.id)

    async def on_inbox_skip(self, partner: str, path: Path, reason: str) -> None:
        """The watcher refused a path (e.g. a symlink): make it visible in the log."""
        log.warning("inbox entry skipped", partner=partner, file=path.name, reason=reason)
        await self.write(self.store.event, "received", "skipped", partner=partner, detail=f"{path.name}: {reason}")

    async def _process_loop(self) -> None:
        while True:
            message_id = await self._work.get()
            try:
                started = time.monotonic()
                outcome = await asyncio.to_thread(self._process, message_id)
                if outcome is not None:
                    self.worker.wake()
                    log.info("processed", message_id=message_id, partner=outcome.partner,
                             documents=len(outcome.documents), ms=round((time.monotonic() - started) * 1000, 1))
            except Exception:  # the message stays 'received' and is retried at the next start
                log.exception("processing failed unexpectedly", message_id=message_id)
            finally:
                self._queued.discard(message_id)
                self._work.task_done()

    def _process(self, message_id: str) -> pipeline.Outcome | None:
        # Parsing, mapping, reads and blob writes run in this thread; row writes on the writer.
        # Every log line written meanwhile (ours, the mapping's, a library's) names the message.
        loop = self._loop
        with structlog.contextvars.bound_contextvars(message_id=message_id):
            return run_pipeline(self.store, self.deployment, message_id, blocking(self.write, loop),
                                metrics=self.metrics)


def _read_inbox_file(path: Path) -> tuple[bytes, str]:
    """The file's bytes and a reference that identifies this exact file (name, size, mtime).

    Opened with O_NOFOLLOW and read from that one descriptor, so a symlink swapped in after
    the watcher's check is refused instead of followed out of the inbox.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        raw = fh.read()
    return raw, f"inbox:{path.name}:{st.st_size}:{st.st_mtime_ns}"


async def serve(deployment: Deployment, secondary: int = 0) -> None:
    """Run the gateway until SIGINT/SIGTERM; the primary also runs ``[server] processes - 1`` secondaries."""
    store = await asyncio.to_thread(open_store, deployment)
    # Compile the schema checks now, not inside the first messages' processing (in several threads at once).
    await asyncio.to_thread(canonical.prepare)
    gateway = Gateway(deployment, store, secondary=secondary)
    extra = deployment.settings.processes - 1 if secondary == 0 else 0
    secondaries = Secondaries(deployment.home, extra) if extra else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    try:
        if secondaries is not None:   # after the primary's start: the schema is migrated, the port bound
            await secondaries.start()
        await stop.wait()
    finally:
        if secondaries is not None:
            await secondaries.stop()
        await gateway.stop()
        store.close()
