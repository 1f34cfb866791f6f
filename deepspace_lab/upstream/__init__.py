"""The upstream (level 1): the OpenAI-compatible client and the SSE stream observer."""

from .client import UpstreamClient, UpstreamStreamInterrupted
from .sse import SSE_DONE, StreamObserver, sse_event

__all__ = ["SSE_DONE", "StreamObserver", "UpstreamClient", "UpstreamStreamInterrupted", "sse_event"]
