"""The client's error tree, mirroring the Gateway's error codes (``deepspace_lab.errors``).

    DeepSpaceClientError                 any failure; ``.code``, ``.status``, ``.retry_after``
    ├── ConnectionFailed                 no HTTP answer (status None, code ``connection_error``)
    ├── InvalidRequestError              400
    ├── AuthenticationError              401
    ├── InsufficientFundsError           402  insufficient_funds
    ├── PermissionDeniedError            403
    ├── NotFoundError                    404
    ├── ConflictError                    409
    ├── RateLimitedError                 429  rate_limited (and the upstream's upstream_rate_limited)
    ├── BudgetExceededError              429  budget_exceeded
    ├── ServiceUnavailableError          503
    └── UpstreamError                    502 / 504 and every ``upstream_*`` code

A stream that fails after it started raises the same classes from its ``error`` event.
"""

from __future__ import annotations

from typing import Any


class DeepSpaceClientError(Exception):
    """A Gateway refusal or failure, with the server's stable ``code`` and message."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 retry_after: float | None = None, param: str | None = None,
                 request_id: str | None = None, trace_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        #: seconds the server asked us to wait (``Retry-After``), if it said
        self.retry_after = retry_after
        self.param = param
        self.request_id = request_id
        self.trace_id = trace_id

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class ConnectionFailed(DeepSpaceClientError):
    """The Gateway could not be reached."""


class InvalidRequestError(DeepSpaceClientError):
    pass


class AuthenticationError(DeepSpaceClientError):
    pass


class InsufficientFundsError(DeepSpaceClientError):
    pass


class PermissionDeniedError(DeepSpaceClientError):
    pass


class NotFoundError(DeepSpaceClientError):
    pass


class ConflictError(DeepSpaceClientError):
    pass


class RateLimitedError(DeepSpaceClientError):
    pass


class BudgetExceededError(DeepSpaceClientError):
    pass


class ServiceUnavailableError(DeepSpaceClientError):
    pass


class UpstreamError(DeepSpaceClientError):
    pass


_BY_CODE: dict[str, type[DeepSpaceClientError]] = {
    "insufficient_funds": InsufficientFundsError,
    "budget_exceeded": BudgetExceededError,
    "rate_limited": RateLimitedError,
    "upstream_rate_limited": RateLimitedError,
    "login_rate_limited": RateLimitedError,
}
_BY_STATUS: dict[int, type[DeepSpaceClientError]] = {
    400: InvalidRequestError, 401: AuthenticationError, 402: InsufficientFundsError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 422: InvalidRequestError, 429: RateLimitedError,
    502: UpstreamError, 503: ServiceUnavailableError, 504: UpstreamError,
}


def error_from_body(body: Any, *, status: int | None, retry_after: float | None = None,
                    request_id: str | None = None, trace_id: str | None = None) -> DeepSpaceClientError:
    """The typed error for an OpenAI-shaped error body (``{"error": {...}}``) and status."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or (f"http_{status}" if status else "error"))
    message = str(error.get("message") or f"the Gateway answered HTTP {status}")
    cls = _BY_CODE.get(code)
    if cls is None and code.startswith("upstream_") and code != "upstream_quota_exhausted":
        cls = UpstreamError
    if cls is None:
        cls = _BY_STATUS.get(status or 0, DeepSpaceClientError)
    param = error.get("param") if isinstance(error.get("param"), str) else None
    return cls(message, code=code, status=status, retry_after=retry_after, param=param,
               request_id=request_id, trace_id=trace_id)
