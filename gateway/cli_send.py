"""``gateway send``: queue a file for a partner (AS2, their SFTP server, or their outbox) and report the outcome.

The command only queues (one durable transaction); the running ``gateway serve`` sends it,
so a send survives this command being interrupted and is retried like any delivery.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from .compose import compose_documents
from .config_as2 import partner_target
from .edi.serialize import render
from .errors import GatewayError
from .model import Channel, DeliveryStatus

POLL_SECONDS = 0.5
FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)


def register(main: click.Group) -> None:
    """Add this module's commands to the `gateway` group."""
    main.add_command(send)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--partner", "partner_id", required=True, help="Partner id.")
@click.option("--channel", type=click.Choice(["as2", "sftp", "outbox"]), default=None,
              help="How to reach them [default: the first they have: as2, sftp (their server), outbox (ours)].")
@click.option("--document", "document_type", type=click.Choice(["order", "invoice", "ship_notice", "order_response"]),
              default=None, help="FILE is canonical JSON of this type (one document body, a list, or an envelope): "
                                 "map it with the partner's outbound mapping and send it as EDI.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the running gateway has delivered it (or given up).")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds to wait [default: the partner's HTTP timeout + as2.mdn_timeout + 30].")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def send(obj: Any, file: Path, partner_id: str, channel: str | None, document_type: str | None, wait: bool,
         timeout: float | None, as_json: bool) -> None:
    """Send FILE to a partner (queued; `gateway serve` delivers it and retries)."""
    from .cli import fail

    deployment = obj.deployment
    partner = deployment.partners.get(partner_id)
    if partner is None:
        fail(f"unknown partner {partner_id!r} (known: {', '.join(sorted(deployment.partners)) or 'none'})")
    channels = deployment.partner_channels(partner)
    if channel is not None:
        channels = [c for c in channels if c.startswith(channel + ":")]
    if not channels:
        fail(f"partner {partner_id} has no {channel or 'outbound'} channel: set [as2] url, [sftp_remote] "
             f"upload_dir or an [sftp] account in {partner.file}")
    if not partner.enabled:
        fail(f"partner {partner_id} is disabled in {partner.file}")
    raw = file.read_bytes()
    if not raw:
        fail(f"{file}: the file is empty")
    if document_type is not None:
        queued = _queue_documents(obj, partner, document_type, raw, file, channels[0])
        sys.exit(queue_and_report(obj, partner, raw, file.name, target=channels[0], wait=wait, timeout=timeout,
                                  as_json=as_json, queued=queued))
    sys.exit(queue_and_report(obj, partner, raw, file.name, target=channels[0], wait=wait, timeout=timeout,
                              as_json=as_json))


def _queue_documents(obj: Any, partner: Any, document_type: str, raw: bytes, file: Path, target: str) -> tuple:
    """Map canonical JSON to the partner's EDI and queue it with fresh control numbers: (message, delivery id)."""
    from .cli import fail

    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{file}: not JSON: {exc}")
    bodies = data if isinstance(data, list) else [data]
    bodies = [b.get("document") if isinstance(b, dict) and "document" in b else b for b in bodies]
    try:
        composed = compose_documents(obj.deployment, partner, document_type, bodies, datetime.now(timezone.utc))
        key = hashlib.sha256(b"doc\0" + raw).hexdigest()[:32]
        return obj.store.submit_interchange(
            partner=partner.id, target=target, format=composed.envelope.format, filename=f"{file.stem}.edi",
            build=lambda next_number: render(composed.envelope, composed.messages, next_number),
            document_type=document_type, idempotency_key=key, channel=Channel.CLI, standard=composed.standard,
            expect_ack_within=obj.deployment.expect_ack_seconds(partner), number=", ".join(composed.numbers)[:200])
    except GatewayError as exc:
        fail(f"{file}: {exc}")


def queue_and_report(obj: Any, partner: Any, raw: bytes, filename: str, *, target: str, wait: bool,
                     timeout: float | None, as_json: bool, queued: tuple | None = None) -> int:
    """Queue ``raw`` for a partner channel, optionally wait for the outcome, print it; returns the exit code."""
    from .cli import emit_json, fail

    deployment = obj.deployment
    partner_id = partner.id
    if queued is not None:
        message, delivery_id = queued
    else:
        try:
            message, delivery_id = obj.store.submit_outbound(raw, partner=partner_id, target=target, filename=filename)
        except GatewayError as exc:
            fail(str(exc))
    if not as_json:
        click.echo(f"queued {filename} for {partner_id} ({target}): message {message.id}, delivery {delivery_id}")
    if not wait:
        if as_json:
            emit_json({"message_id": message.id, "delivery_id": delivery_id, "status": "queued"})
        return 0
    if timeout is None:   # one attempt's worst case, and some slack for the queue
        timeout = (partner.as2.timeout + deployment.settings.as2.mdn_timeout if target == partner_target(partner_id)
                   else partner.sftp_remote.timeout if partner.sftp_remote is not None else 0) + 30
    delivery = _wait(obj.store, delivery_id, timeout)
    mdns = [r for r in obj.store.receipts_of(message.id) if r.direction == "received"]
    finished = delivery.status in FINISHED
    result = {"message_id": message.id, "delivery_id": delivery_id, "status": delivery.status.value,
              "attempts": delivery.attempts, "last_error": delivery.last_error,
              "mdn": mdns[-1].disposition if mdns else None, "mic_ok": mdns[-1].mic_ok if mdns else None,
              "finished": finished}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"status      {result['status']} after {delivery.attempts} attempt(s)")
        if result["mdn"] is not None:
            mic = {None: "", True: " (MIC matches)", False: " (MIC DOES NOT MATCH)"}[result["mic_ok"]]
            click.echo(f"MDN         {result['mdn']}{mic}")
        if delivery.last_error and delivery.status is not DeliveryStatus.DELIVERED:
            click.echo(f"last error  {delivery.last_error}")
    if not finished:
        click.echo(f"error: not finished within {timeout:g} s (status {delivery.status.value}); "
                   "is `gateway serve` running?", err=True)
    return 0 if delivery.status is DeliveryStatus.DELIVERED else 1


def _wait(store: Any, delivery_id: str, timeout: float) -> Any:
    """Poll the delivery until it is delivered or dead, or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        delivery = store.delivery(delivery_id)
        if delivery.status in FINISHED or time.monotonic() >= deadline:
            return delivery
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
