"""Structured logging (structlog): JSON lines in production, pretty output on a terminal.

Nothing is configured at import; the CLI calls :func:`configure_logging` once at start-up, and an
embedding application may call it or configure structlog itself.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


def configure_logging(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """Route auditlog's structured events to stderr.

    ``json=None`` chooses JSON lines unless stderr is a terminal.
    """
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
