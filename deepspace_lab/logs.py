"""Structured logging: every record carries the current trace and request id."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from .tracing import current_request_id, current_trace_id

_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "trace_id"):
            record.trace_id = current_trace_id.get() or "-"
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s] %(message)s"


def configure_logging(*, level: str = "INFO", fmt: str = "text") -> None:
    """Install one handler on the ``deepspace_lab`` logger (idempotent)."""
    logger = logging.getLogger("deepspace_lab")
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_deepspace", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._deepspace = True  # type: ignore[attr-defined]
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logger.addHandler(handler)
