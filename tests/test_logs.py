"""Log lines carry the trace and request id of the request they belong to."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from deepspace_lab.logs import JsonFormatter, TraceFilter, configure_logging
from deepspace_lab.tracing import current_request_id, current_trace_id, make_traceparent, trace_id_from_traceparent


def test_json_log_lines_carry_the_current_trace() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("deepspace_lab.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token_t, token_r = current_trace_id.set("ab" * 16), current_request_id.set("req_1")
        logger.info("relayed %d chunks", 3, extra={"model": "m"})
        current_trace_id.reset(token_t)
        current_request_id.reset(token_r)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "relayed 3 chunks" and line["trace_id"] == "ab" * 16
    assert line["request_id"] == "req_1" and line["model"] == "m" and line["level"] == "INFO"


def test_log_lines_go_to_stderr_as_it_is_when_they_are_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler follows sys.stderr: a stream swapped in after configuration gets the lines,
    and one closed meanwhile (a finished capture) is never written to."""
    ours = logging.getLogger("deepspace_lab")
    saved = list(ours.handlers), ours.level, ours.propagate
    before = io.StringIO()
    monkeypatch.setattr(sys, "stderr", before)
    try:
        configure_logging(level="INFO")
        before.close()
        after = io.StringIO()
        monkeypatch.setattr(sys, "stderr", after)
        errors: list[str] = []
        monkeypatch.setattr(logging.Handler, "handleError", lambda self, record: errors.append(record.getMessage()))
        logging.getLogger("deepspace_lab.test_logs").warning("written after the swap")
    finally:  # the other tests keep pytest's handlers
        ours.handlers[:], ours.level, ours.propagate = saved
    assert "written after the swap" in after.getvalue() and errors == []


def test_traceparent_round_trip_and_rejects() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from_traceparent(make_traceparent(trace)) == trace
    for bad in ("", "garbage", f"ff-{trace}-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01",
                f"00-{trace}-{'0' * 16}-01", f"00-{trace.upper()[:-1]}-00f067aa0ba902b7-01"):
        assert trace_id_from_traceparent(bad) is None, bad
