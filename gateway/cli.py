"""The ``gateway`` command: serve, scaffold and check deployments, and let operators inspect and replay."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import click

from . import pipeline
from .config import Deployment, check_deployment, load_deployment
from .errors import BlobError, ConfigError, GatewayError
from .model import Channel, DeliveryStatus, MessageStatus

EXIT_INVALID_INPUT = 1
EXIT_CONFIG = 2


class Context:
    """Lazily loaded deployment and store shared by the subcommands of one invocation."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._deployment: Deployment | None = None
        self._store: Any = None

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            try:
                self._deployment = load_deployment(self.home)
            except ConfigError as exc:
                fail(f"invalid deployment in {self.home}:\n{exc}", EXIT_CONFIG)
        return self._deployment

    @property
    def store(self) -> Any:
        if self._store is None:
            from .app import open_store

            try:
                self._store = open_store(self.deployment)
            except GatewayError as exc:
                fail(str(exc), EXIT_CONFIG)
        return self._store


def fail(message: str, code: int = 1) -> None:
    """Print one clear line (or block) on stderr and exit; never a traceback for expected errors."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as an aligned plain-text table (no colours: output is often piped)."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value.value if isinstance(value, enum.Enum) else value)


def when(epoch: float | None) -> str:
    """Epoch seconds as a readable UTC time."""
    if not epoch:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(value: str | None) -> float | None:
    """Accept ISO dates/times (UTC unless an offset is given) or relative ages like 15m, 2h, 7d."""
    if not value:
        return None
    rel = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())
    if rel:
        seconds = float(rel.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[rel.group(2)]
        return dt.datetime.now(dt.timezone.utc).timestamp() - seconds
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an ISO time (2026-11-26T10:00) nor an age (15m, 2h, 7d)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def records(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Dataclass records as plain dicts for JSON and tables."""
    from dataclasses import asdict

    return [asdict(item) for item in items]


@click.group()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="GATEWAY_HOME",
              default=".", show_default=True, help="Deployment directory (or set GATEWAY_HOME).")
@click.version_option(package_name="edi-gateway")
@click.pass_context
def main(ctx: click.Context, home: Path) -> None:
    """B2B EDI gateway: receive, translate and deliver EDI durably."""
    ctx.obj = Context(home.resolve())
    if ctx.invoked_subcommand != "serve":
        from .logs import configure

        configure("warning", "console")


@main.command()
@click.option("--secondary", type=int, default=0, hidden=True)      # started by the primary: processes.py
@click.option("--primary-pid", type=int, default=0, hidden=True)
@click.pass_obj
def serve(obj: Context, secondary: int, primary_pid: int) -> None:
    """Run the gateway: watch inboxes, process, deliver (Ctrl-C stops it cleanly)."""
    from .app import serve as run
    from .logs import configure

    deployment = obj.deployment
    configure(deployment.settings.log_level, deployment.settings.log_format)
    if deployment.settings.processes > 1:   # which of this deployment's processes wrote a log line
        import structlog

        structlog.contextvars.bind_contextvars(process=secondary)
    if secondary:
        from .processes import die_with_parent

        die_with_parent(primary_pid)
    for problem in deployment.problems if not secondary else ():
        click.echo(f"warning: skipped: {problem}", err=True)
    try:
        asyncio.run(run(deployment, secondary))
    except GatewayError as exc:
        fail(str(exc), EXIT_CONFIG)
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing deployment's files.")
def init(directory: Path, force: bool) -> None:
    """Create a working example deployment in DIRECTORY."""
    from .scaffold import init_deployment

    try:
        written = init_deployment(directory, force=force)
    except GatewayError as exc:
        fail(str(exc))
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"next: gateway --home {directory} check && gateway --home {directory} serve")


@main.command()
@click.pass_obj
def check(obj: Context) -> None:
    """Validate gateway.toml, partners/ and mappings/; exit 2 listing every problem."""
    problems = check_deployment(obj.home)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        sys.exit(EXIT_CONFIG)
    deployment = obj.deployment
    click.echo(f"ok: {len(deployment.partners)} partners, {len(deployment.settings.targets)} targets, "
               f"{len(list(deployment.mappings))} mappings")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", help="Partner id (default: found from the interchange sender).")
@click.pass_obj
def process(obj: Context, file: Path, partner: str | None) -> None:
    """Dry run: detect, parse, validate and map FILE; print the canonical documents as JSON."""
    raw = file.read_bytes()
    try:
        outcome = pipeline.process(raw, obj.deployment, partner_id=partner, channel=Channel.CLI.value,
                                   message_id="dry-run", filename=str(file))
    except GatewayError as exc:
        fail(str(exc.located(file=str(file))), EXIT_INVALID_INPUT)
    emit_json([doc.envelope for doc in outcome.documents])


@main.group()
def partners() -> None:
    """Trading partners of this deployment."""


@partners.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def partners_list(obj: Context, as_json: bool) -> None:
    """List partners with their identifiers and inbox."""
    rows = [{"id": p.id, "name": p.name, "enabled": p.enabled,
             "identifiers": ", ".join(f"{f}={'|'.join(v)}" for f, v in p.identifiers.items()),
             "inbox": str(p.inbox or ""),
             "routes": ", ".join(f"{r.document}->{'+'.join(r.targets)}" for r in p.routes)}
            for p in obj.deployment.partners.values()]
    emit_json(rows) if as_json else table(rows, ["id", "name", "enabled", "identifiers", "routes"])
    for problem in obj.deployment.problems:
        click.echo(f"skipped: {problem}", err=True)


@main.group()
def log() -> None:
    """The transmission log: what came in, what it became, where it went."""


@log.command("show")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def log_show(obj: Context, message_id: str, as_json: bool) -> None:
    """Show one message, its documents and deliveries, and its event timeline."""
    store = obj.store
    try:
        message = store.message(message_id)
    except GatewayError as exc:
        fail(str(exc))
    documents = store.documents_of(message_id)
    deliveries = [d for doc in documents for d in store.deliveries(document_id=doc.id)]
    events = store.timeline(message_id)
    mdns = store.receipts_of(message_id)
    acks = store.acks_of(message_id)
    if as_json:
        emit_json({"message": records([message])[0], "documents": records(documents),
                   "deliveries": records(deliveries), "mdns": records(mdns), "acknowledgments": records(acks),
                   "events": records(events)})
        return
    m = records([message])[0]
    for key in ("id", "partner", "channel", "filename", "status", "format", "standard", "interchange",
                "size", "raw_sha256", "duplicate_of", "error"):
        if m.get(key) not in (None, ""):
            click.echo(f"{key:12} {_cell(m[key])}")
    click.echo(f"{'received':12} {when(m['received_at'])}")
    if documents:
        click.echo("\ndocuments")
        table([{**d, "created": when(d["created_at"])} for d in records(documents)],
              ["id", "type", "number", "idempotency_key"])
    if deliveries:
        click.echo("\ndeliveries")
        table([{**d, "next": when(d["next_attempt_at"]) if d["status"] != "delivered" else ""}
               for d in records(deliveries)],
              ["id", "target", "status", "attempts", "next", "last_error"])
    if mdns:
        click.echo("\nAS2 MDNs")
        table([{**r, "mic": {None: "", True: "match", False: "MISMATCH"}[r["mic_ok"]]} for r in records(mdns)],
              ["direction", "as2_message_id", "mode", "status", "disposition", "signed", "mic"])
    if acks:
        click.echo("\nacknowledgments expected")
        table([{**a, "due": when(a["due_at"])} for a in records(acks)],
              ["level", "interchange", "group_ref", "message_ref", "status", "due", "ack_message_id"])
    click.echo("\ntimeline")
    table([{**e, "at": when(e["at"]), "ms": "" if e["duration_ms"] is None else f"{e['duration_ms']:.0f}"}
           for e in records(events)], ["at", "step", "outcome", "ms", "detail"])


def _deliveries(obj: Context, statuses: Sequence[str], partner: str | None, target: str | None,
                limit: int, as_json: bool) -> None:
    rows = []
    for status in statuses:
        rows += records(obj.store.deliveries(status=status, partner=partner, target=target, limit=limit))
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        row["next"] = when(row["next_attempt_at"])
        row["last_error"] = (row.get("last_error") or "")[:80]
    table(rows, ["id", "partner", "target", "status", "attempts", "next", "last_error"])


@main.group()
def queue() -> None:
    """Deliveries waiting for their next attempt."""


@queue.command("list")
@click.option("--partner")
@click.option("--target")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def queue_list(obj: Context, partner: str | None, target: str | None, limit: int, as_json: bool) -> None:
    """List queued and retrying deliveries."""
    _deliveries(obj, [DeliveryStatus.QUEUED.value, DeliveryStatus.RETRYING.value], partner, target, limit, as_json)


@main.group()
def dlq() -> None:
    """The dead-letter queue: deliveries that failed for good."""


@dlq.command("list")
@click.option("--partner")
@click.option("--target")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def dlq_list(obj: Context, partner: str | None, target: str | None, limit: int, as_json: bool) -> None:
    """List dead deliveries with their last error."""
    _deliveries(obj, [DeliveryStatus.DEAD.value], partner, target, limit, as_json)


@dlq.command("retry")
@click.argument("delivery_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead delivery (filtered by --partner/--target).")
@click.option("--partner")
@click.option("--target")
@click.pass_obj
def dlq_retry(obj: Context, delivery_ids: tuple[str, ...], retry_all: bool, partner: str | None,
              target: str | None) -> None:
    """Put dead deliveries back in the queue (same idempotency key); a running gateway sends them."""
    ids = list(delivery_ids)
    if retry_all:
        ids += [d.id for d in obj.store.deliveries(status=DeliveryStatus.DEAD.value, partner=partner,
                                                   target=target, limit=1_000_000)]
    if not ids:
        fail("name delivery ids, or use --all")
    failed = 0
    with progress(ids, "requeueing") as bar:
        for delivery_id in bar:
            try:
                obj.store.retry_dead(delivery_id)
                if len(ids) == 1:
                    click.echo(f"requeued {delivery_id}")
            except GatewayError as exc:
                click.echo(f"error: {exc}", err=True)
                failed += 1
    if len(ids) > 1:
        click.echo(f"requeued {len(ids) - failed} of {len(ids)} dead deliveries")
    if failed:
        sys.exit(1)


@contextlib.contextmanager
def progress(items: list[str], label: str) -> Iterator[Iterable[str]]:
    """A progress bar on stderr for long operations (several items, a terminal); the items as they are otherwise."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield items
        return
    with click.progressbar(items, label=f"{label} {len(items)}", file=sys.stderr, show_pos=True) as bar:
        yield bar


@main.command()
@click.argument("message_ids", nargs=-1)
@click.option("--failed", is_flag=True, help="Every failed message (filtered by --partner/--since).")
@click.option("--partner")
@click.option("--since", help="With --failed: received since (ISO time or age: 15m, 2h, 7d).")
@click.pass_obj
def replay(obj: Context, message_ids: tuple[str, ...], failed: bool, partner: str | None, since: str | None) -> None:
    """Re-run stored messages from their raw bytes; deliveries keep their idempotency keys."""
    from .app import run_pipeline

    store = obj.store
    ids = list(message_ids)
    if failed:
        ids += [m.id for m in store.search_messages(status=MessageStatus.FAILED.value, partner=partner,
                                                    since=parse_time(since), limit=1_000_000)]
    if not ids:
        fail("name message ids, or use --failed")
    for message_id in ids:
        try:
            store.message(message_id)
        except GatewayError as exc:
            fail(str(exc))
    rejected: list[str] = []
    queued = 0
    with progress(ids, "replaying") as bar:
        for message_id in bar:
            store.event("replay", "requested", message_id=message_id, detail=f"by {os.environ.get('USER', 'cli')}")
            try:
                outcome = run_pipeline(store, obj.deployment, message_id, replay=True)
            except BlobError as exc:   # its raw bytes are damaged: nothing can be sent from them
                store.event("replay", "failed", message_id=message_id, detail=str(exc))
                rejected.append(f"replay of {message_id} refused: {exc}")
                continue
            if outcome is None:
                rejected.append(f"replay of {message_id} rejected: {store.message(message_id).error}")
                continue
            queued += len(outcome.documents)
            if len(ids) == 1:
                click.echo(f"replayed {message_id}: {len(outcome.documents)} documents queued "
                           f"({', '.join(d.idempotency_key for d in outcome.documents)})")
    if len(ids) > 1:
        click.echo(f"replayed {len(ids) - len(rejected)} of {len(ids)} messages: {queued} documents queued")
    if rejected:
        fail("\n".join(rejected), EXIT_INVALID_INPUT)


# Commands that live in their own modules (sending, certificates and partners, SFTP accounts).
from . import cli_admin, cli_log, cli_partners, cli_send, cli_sftp  # noqa: E402 - imported after `main` exists

cli_admin.register(main)
cli_log.register(main)        # log list (the search) / stats
cli_partners.register(main)   # partners add / show / test
cli_send.register(main)
cli_sftp.register(main)
from . import cli_mappings, cli_users  # noqa: E402
cli_mappings.register(main)   # mappings list / test
cli_users.register(main)      # users add / list / remove / passwd / role / disable / enable


if __name__ == "__main__":  # pragma: no cover
    main()
