"""The upstream (level 1): the OpenAI-compatible client and the SSE stream observer."""

from .client import UpstreamClient, UpstreamStreamCut, UpstreamStreamInterrupted
from .sse import SSE_DONE, StreamObserver, sse_event

__all__ = [
    "SSE_DONE", "StreamObserver", "UpstreamClient", "UpstreamStreamCut", "UpstreamStreamInterrupted", "sse_event",
]
