"""``deepspace_lab.client``: the one way notebooks, widgets, dashboards and workflow notebooks
reach the Gateway — over HTTP only (DESIGN §2: a leaf over level 0, no database, no services).

- :class:`DeepSpaceClient` (sync) and :class:`AsyncDeepSpaceClient` (async) speak the
  OpenAI-compatible chat (``chat``, ``chat_stream``), the product stream (``stream_chat`` →
  :class:`ChatEvent` s, ``cancel``) and the product API (me, projects, keys, conversations,
  wallet, transactions, usage, limits, models, login, ``redeem_code``) and the Admin API's money
  area (``admin_models``, ``admin_set_price``, ``admin_wallets``, ``admin_credit``,
  ``admin_transactions``, ``admin_create_codes``… — :mod:`._money`).
- Configuration comes from the arguments or the environment (``DEEPSPACE_GATEWAY_URL``,
  ``DEEPSPACE_API_KEY`` or ``DEEPSPACE_TOKEN`` + ``DEEPSPACE_REFRESH_TOKEN``,
  ``DEEPSPACE_PROJECT``); a kernel started by a Jupyter server with the extension has them.
  Access tokens are renewed before they expire, once per process.
- :func:`workflow_output` hands a value back to the workflow run that executes the notebook.
- Errors are typed after the Gateway's stable codes (see :mod:`._errors`).
"""

from ._async import AsyncChatCompletionStream, AsyncDeepSpaceClient, AsyncProductStream
from ._base import ChatEvent, ChatResult
from ._config import ClientConfig, Credentials, gateway_root
from ._errors import (
    AuthenticationError,
    BudgetExceededError,
    ConflictError,
    ConnectionFailed,
    DeepSpaceClientError,
    InsufficientFundsError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    UpstreamError,
    error_from_body,
)
from ._outputs import OUTPUT_MIME, workflow_output
from ._sse import SSEDecoder, SSEEvent
from ._sync import ChatCompletionStream, DeepSpaceClient, ProductStream

__all__ = [
    "AsyncChatCompletionStream", "AsyncDeepSpaceClient", "AsyncProductStream", "AuthenticationError",
    "BudgetExceededError", "ChatCompletionStream", "ChatEvent", "ChatResult", "ClientConfig", "ConflictError",
    "ConnectionFailed",
    "Credentials", "DeepSpaceClient", "DeepSpaceClientError", "InsufficientFundsError", "InvalidRequestError",
    "NotFoundError", "OUTPUT_MIME", "PermissionDeniedError", "ProductStream", "RateLimitedError", "SSEDecoder",
    "SSEEvent", "ServiceUnavailableError", "UpstreamError", "error_from_body", "gateway_root", "workflow_output",
]
