"""The pipeline (level 2): every model call passes through the same onion of steps.

A step wraps the rest (``await call_next(ctx)``), so "before" and "after" work — audit on
every path, later hold-then-capture-or-release — is one ``try/finally`` in one place.
No database transaction is held across the upstream call: each step opens its own short one.
"""

from .chat import ChatRequest, parse_chat_request
from .context import PipelineServices, RequestContext, ResponseSink
from .registry import CORE_STEPS, ENTRY_POINT_GROUP, Pipeline, Step, discover_steps

__all__ = [
    "CORE_STEPS", "ENTRY_POINT_GROUP", "ChatRequest", "Pipeline", "PipelineServices", "RequestContext",
    "ResponseSink", "Step", "discover_steps", "parse_chat_request",
]
