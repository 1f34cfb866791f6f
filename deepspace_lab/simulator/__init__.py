"""The simulated upstream: a deterministic stand-in for an OpenAI-compatible model.

It is the Gateway's embedded default upstream (DESIGN §3) and the tool tests use to make an
upstream misbehave. It is a real HTTP server (``deepspace_lab.server_extension.simulator``)
speaking the OpenAI protocol, SSE included; this package is its plain-Python core. There is
no AI in it, and it says so everywhere it shows: model ids contain ``simulated``, every reply
starts with the token ``[simulated]``, and every response carries
``X-DeepSpace-Simulated: true``.

Routes: ``GET /v1/models`` and ``POST /v1/chat/completions`` (``stream``,
``stream_options.include_usage``, ``max_tokens`` / ``max_completion_tokens``).

Replies are deterministic: the same model and messages give the same words (taken from a
fixed vocabulary through sha256 of the messages). Completion ids are unique per call.
Tokens are the stream pieces (``"[simulated]"``, then one ``" word"`` each); prompt tokens
are :func:`count_tokens` (words and punctuation marks) summed over the messages' text.

Directives
----------
Tests steer a request with directives in the text of the **last user message**, written
``[sim:key=value]`` or ``[sim:flag]`` (several allowed), or with ``X-Sim-<Key>`` request
headers (``X-Sim-Delay-Ms: 200``; ``-`` reads as ``_``, case-insensitive), which win over the
message. Unknown keys are ignored; a malformed value of a known key is a 400 with code
``invalid_directive``.

==========================  ================================================================
directive                   effect
==========================  ================================================================
``error=<status>``          answer HTTP ``<status>`` (400-599) with an OpenAI-shaped error
                            body, no completion (code ``rate_limit_exceeded`` for 429,
                            ``simulated_<status>`` otherwise)
``delay_ms=<n>``            wait ``n`` ms before sending the response headers (applies
                            before ``error``); for testing client and gateway timeouts
``token_latency_ms=<n>``    wait ``n`` ms before each streamed token (overrides the server's
                            default ``token_latency_ms``)
``fail_after=<n>``          stream: send the role chunk and ``n`` content tokens (at most the
                            whole reply), then close the TCP connection abruptly, without
                            finish chunk or ``[DONE]``; non-stream: close without a response
``tokens=<n>``              reply length in tokens including ``[simulated]`` (default 24);
                            ``max_tokens`` below it cuts the reply with finish ``length``
``no_usage``                omit ``usage`` from the JSON body and the stream's usage chunk
                            (``no_usage=0`` turns it back off, e.g. from a header)
``finish=<reason>``         report ``<reason>`` as ``finish_reason`` (e.g. ``content_filter``)
``code``                    end the reply with a fixed fenced Python block (one token per
                            line, quotes, backslashes and ``</script>`` in it), inside the
                            ``tokens`` length; for "insert code" in the workbench
``params``                  begin the reply with the request's sampling parameters as
                            ``name=value`` words (``temperature``, ``top_p``, ``max_tokens``,
                            ``seed``, the penalties: those it set), inside the ``tokens``
                            length; so a test sees what reached the model
==========================  ================================================================

Example: ``"Summarise this [sim:tokens=5] [sim:fail_after=2]"`` streams ``[simulated]`` and
one word, then drops the connection.
"""

from deepspace_lab.simulator.engine import (
    SIMULATED_MARKER,
    SIMULATED_MODELS,
    Directives,
    Reply,
    completion_body,
    count_tokens,
    error_body,
    find_model,
    new_completion_id,
    parse_directives,
    plan_reply,
    simulated_error_body,
    stream_chunks,
)

__all__ = [
    "SIMULATED_MARKER",
    "SIMULATED_MODELS",
    "Directives",
    "Reply",
    "completion_body",
    "count_tokens",
    "error_body",
    "find_model",
    "new_completion_id",
    "parse_directives",
    "plan_reply",
    "simulated_error_body",
    "stream_chunks",
]
