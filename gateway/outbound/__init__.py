"""Delivery connectors: one module per target type, registered in ``CONNECTORS`` by one line each.

A connector class has:

- ``check_options(options, home, resolve_secret) -> Iterable[(key, problem)]`` (classmethod):
  validates the target's table from gateway.toml without side effects;
- ``__init__(target, home)`` and ``async send(job: DeliveryJob) -> int | None`` (the HTTP
  status or None) raising ``RetryableDeliveryError`` / ``PermanentDeliveryError``;
- ``async close()``.

Connectors never import the store or the pipeline: they get a ``DeliveryJob`` and report.
"""

from __future__ import annotations

from .file import FileConnector
from .rest import RestConnector
from .soap import SoapConnector

CONNECTORS = {
    "file": FileConnector,
    "rest": RestConnector,
    "soap": SoapConnector,
}
