"""``gateway log list`` (the transmission search, same filters as the dashboard) and ``gateway stats`` (the overview)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from .errors import GatewayError
from .model import Channel, MessageStatus

if TYPE_CHECKING:
    from .cli import Context
    from .store.stats import Overview

# gateway.cli imports this module to register it, so its helpers are imported when called.

LIST_COLUMNS = ["id", "received", "partner", "channel", "filename", "status", "standard", "error"]
_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Chart buckets `stats` picks from when not told: the first giving at most 48 rows.
_AUTO_BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)


def register(main: click.Group) -> None:
    """Add ``stats`` to `gateway` and (re)place ``list`` in the ``gateway log`` group."""
    log = main.commands["log"]
    assert isinstance(log, click.Group)
    log.add_command(log_list)
    main.add_command(stats)


@click.command("list")
@click.option("--partner", help="Partner id.")
@click.option("--direction", type=click.Choice(["inbound", "outbound"]),
              help="inbound: inbox, as2, sftp, poll; outbound: api, cli.")
@click.option("--channel", type=click.Choice([c.value for c in Channel]))
@click.option("--type", "document_type", help="Document type, e.g. order.")
@click.option("--status", type=click.Choice([s.value for s in MessageStatus]))
@click.option("--since", help="ISO time or age (15m, 2h, 7d).")
@click.option("--until", help="ISO time or age.")
@click.option("--message-id", "as2_message_id", help="AS2 Message-ID of an MDN sent or received for it.")
@click.option("--interchange", help="Interchange control number, as stored.")
@click.option("--number", "document_number", help="Document number, e.g. a PO number.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000))
@click.option("--before", "before_id", metavar="MESSAGE_ID", help="Next page: the last id of the previous one.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def log_list(obj: Context, partner: str | None, direction: str | None, channel: str | None,
             document_type: str | None, status: str | None, since: str | None, until: str | None,
             as2_message_id: str | None, interchange: str | None, document_number: str | None, limit: int,
             before_id: str | None, as_json: bool) -> None:
    """List messages, newest first, matching every filter given."""
    from .cli import emit_json, fail, parse_time, records, table, when

    try:
        found = obj.store.search_transmissions(
            partner=partner, direction=direction, channel=channel, document_type=document_type, status=status,
            since=parse_time(since), until=parse_time(until), as2_message_id=as2_message_id,
            interchange=interchange, document_number=document_number, limit=limit, before_id=before_id)
    except GatewayError as exc:
        fail(str(exc))
    rows = records(found)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        row["received"] = when(row["received_at"])
        row["error"] = (row.get("error") or "")[:80]
    table(rows, LIST_COLUMNS)
    if len(rows) == limit:
        click.echo(f"(more: add --before {rows[-1]['id']})")


def parse_span(value: str) -> float:
    """``90s``, ``15m``, ``1h``, ``1d`` as seconds (click.BadParameter otherwise)."""
    match = _SPAN.fullmatch(value.strip())
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{value!r} is not a duration such as 15m, 1h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


@click.command()
@click.option("--since", default="24h", show_default=True, help="Window start: ISO time or age (15m, 2h, 7d).")
@click.option("--until", help="Window end: ISO time or age (default: now).")
@click.option("--bucket", help="Traffic row width, e.g. 15m, 1h (default: at most 48 rows).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(obj: Context, since: str, until: str | None, bucket: str | None, as_json: bool) -> None:
    """The overview: traffic, success rate per partner and document type, P95 latency, queues, overdue acks."""
    from .cli import emit_json, fail, parse_time

    start = parse_time(since)
    end = parse_time(until) if until else time.time()
    if start is None or start >= end:
        raise click.BadParameter("--since must be before --until")
    width = parse_span(bucket) if bucket else next(
        (b for b in _AUTO_BUCKETS if (end - start) / b <= 48), _AUTO_BUCKETS[-1])
    try:
        overview = obj.store.overview(since=start, until=end, bucket_seconds=width)
    except GatewayError as exc:
        fail(str(exc))
    if as_json:
        emit_json(overview_json(overview))
        return
    print_overview(overview)


def overview_json(overview: Overview) -> dict[str, Any]:
    """The overview as plain data, success rates included (properties are not dataclass fields)."""
    data = asdict(overview)
    for row, item in zip(data["outcomes"], overview.outcomes):
        row["success_rate"] = item.success_rate
    for row, item in zip(data["partners"], overview.partners):
        row["success_rate"] = item.success_rate
    return data


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def print_overview(overview: Overview) -> None:
    """The overview as plain tables: partners, document types, queues, then traffic per bucket."""
    from .cli import table, when

    click.echo(f"overview {when(overview.since)} .. {when(overview.until)} UTC\n\npartners")
    table([{"partner": p.partner or "(unknown)", "messages": p.messages, "failed": p.failed,
            "documents": p.documents, "dead": p.dead_documents, "success": _rate(p.success_rate),
            "delivered": p.delivered, "p95": _seconds(p.p95_latency), "overdue_acks": p.overdue_acks,
            "last_activity": when(p.last_activity)} for p in overview.partners],
          ["partner", "messages", "failed", "documents", "dead", "success", "delivered", "p95", "overdue_acks",
           "last_activity"])
    click.echo("\ndocument types")
    table([{"partner": o.partner or "(unknown)", "type": o.document_type or "(rejected)",
            "processed": o.processed, "failed": o.failed, "success": _rate(o.success_rate)}
           for o in overview.outcomes], ["partner", "type", "processed", "failed", "success"])
    click.echo("\nqueues")
    table([asdict(q) for q in overview.queues], ["partner", "target", "queued", "retrying", "dead"])
    click.echo("\ntraffic")
    per_bucket: dict[float, list[int]] = {start: [0, 0] for start in overview.bucket_starts}
    channels: dict[float, dict[str, int]] = {}
    for point in overview.traffic:
        counts = per_bucket.setdefault(point.start, [0, 0])
        counts[0] += point.messages
        counts[1] += point.failed
        by_channel = channels.setdefault(point.start, {})
        by_channel[point.channel] = by_channel.get(point.channel, 0) + point.messages
    peak = max((n for n, _ in per_bucket.values()), default=0) or 1
    table([{"from": when(start), "messages": n, "failed": f,
            "channels": " ".join(f"{c}={k}" for c, k in sorted(channels.get(start, {}).items())),
            "": "#" * round(30 * n / peak)} for start, (n, f) in sorted(per_bucket.items())],
          ["from", "messages", "failed", "channels", ""])
