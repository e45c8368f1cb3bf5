"""Structured logging setup: JSON or console lines, every line bound to partner/message ids where known."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "console") -> None:
    """Route structlog and stdlib logging to stderr in one format."""
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.ExtraAdder(),   # stdlib lines' extra={"partner": ..., "message_id": ...}
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter (inotify events, alembic steps, SSH channel traffic) is noise at info level.
    for name in ("watchdog", "alembic", "asyncio", "asyncssh"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # A malformed request is the client's fault, answered 400 and in our access log: aiohttp's own
    # traceback for it (echoing the bad line) would let anyone flood the log.
    logging.getLogger("aiohttp.server").addFilter(_not_a_bad_request)


def _not_a_bad_request(record: logging.LogRecord) -> bool:
    from aiohttp.http_exceptions import HttpProcessingError

    return not (record.exc_info and isinstance(record.exc_info[1], HttpProcessingError))
