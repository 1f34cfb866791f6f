"""What admins type, read exactly: credits as decimal text into integer micro-credits (never
through a float), whole numbers, trace ids. A value that does not read is refused here with a
stable code under its field (the same :class:`InvalidRequestError` an API refusal is), before
anything is sent."""

from __future__ import annotations

import re
from decimal import Decimal

from deepspace_lab.client import InvalidRequestError

MICROS = 1_000_000
TRACE_ID = re.compile(r"[A-Za-z0-9_\-]{1,32}")
AMOUNT = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,6})?")


def parse_credits(raw: object, *, param: str) -> int:
    """``"1.5"`` → ``1500000`` micro-credits, exactly (a decimal, never a float); commas and spaces
    are ignored; at most 12 digits and 6 decimals. Raises ``invalid_amount`` naming ``param``."""
    text = str(raw or "").replace(",", "").replace(" ", "")
    if not AMOUNT.fullmatch(text):
        raise InvalidRequestError(f"{raw!r} is not an amount in credits (at most 6 decimals)", code="invalid_amount",
                                  param=param)
    return int(Decimal(text) * MICROS)


def parse_count(raw: object, *, param: str) -> int:
    """A whole number typed as text; raises ``invalid_number`` naming ``param``."""
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequestError(f"{raw!r} is not a whole number", code="invalid_number", param=param)
    return int(text)


def check_trace_id(raw: object) -> str:
    """A trace id as the Gateway writes it (letters, digits, - and _; 1-32); ``invalid_trace_id``."""
    text = str(raw or "").strip()
    if not TRACE_ID.fullmatch(text):
        raise InvalidRequestError("a trace id is 1-32 letters, digits, - or _", code="invalid_trace_id",
                                  param="trace_id")
    return text
