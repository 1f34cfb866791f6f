"""The error tree. Every error the core raises is a :class:`DeepSpaceError`.

Each error has a stable machine ``code`` (part of the public contract: clients and tests
match on it) and an ``http_status`` hint the HTTP layer uses; the core never raises tornado
errors. The server extension maps these to the wire in one place, in the OpenAI error shape.

    DeepSpaceError                     500  internal_error
    ├── InvalidRequest                 400  invalid_request
    ├── AuthError                      401  invalid_api_key
    ├── InsufficientFunds              402  insufficient_funds
    ├── PermissionDenied               403  permission_denied
    ├── NotFound                       404  not_found
    ├── MethodNotAllowed               405  method_not_allowed
    ├── Conflict                       409  conflict
    ├── Unprocessable                  422  unprocessable
    ├── RateLimited                    429  rate_limited
    ├── BudgetExceeded                 429  budget_exceeded
    ├── ServiceUnavailable             503  service_unavailable
    ├── UpstreamError                  502  upstream_error
    └── UpstreamTimeout                504  upstream_timeout

Messages are written for the caller: they never carry secrets, upstream keys, balances
of other tenants or internal detail.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DeepSpaceError(Exception):
    """Root of every error the core raises on purpose."""

    http_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    error_type: ClassVar[str] = "server_error"
    #: Whether a client retry can succeed (maps to ``x-should-retry`` on the wire).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.retry_after_s = retry_after_s
        #: Extra, non-secret fields that may be shown to the caller.
        self.detail = detail or {}

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error shape: ``{"error": {"message", "type", "param", "code"}}``."""
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        body.update(self.detail)
        return {"error": body}


class InvalidRequest(DeepSpaceError):
    http_status = 400
    default_code = "invalid_request"
    error_type = "invalid_request_error"


class AuthError(DeepSpaceError):
    http_status = 401
    default_code = "invalid_api_key"
    error_type = "authentication_error"


class InsufficientFunds(DeepSpaceError):
    http_status = 402
    default_code = "insufficient_funds"
    error_type = "insufficient_quota"


class PermissionDenied(DeepSpaceError):
    http_status = 403
    default_code = "permission_denied"
    error_type = "permission_error"


class NotFound(DeepSpaceError):
    http_status = 404
    default_code = "not_found"
    error_type = "invalid_request_error"


class MethodNotAllowed(DeepSpaceError):
    http_status = 405
    default_code = "method_not_allowed"
    error_type = "invalid_request_error"


class Conflict(DeepSpaceError):
    http_status = 409
    default_code = "conflict"
    error_type = "invalid_request_error"


class Unprocessable(DeepSpaceError):
    http_status = 422
    default_code = "unprocessable"
    error_type = "invalid_request_error"


class RateLimited(DeepSpaceError):
    http_status = 429
    default_code = "rate_limited"
    error_type = "rate_limit_error"
    retryable = True


class BudgetExceeded(DeepSpaceError):
    http_status = 429
    default_code = "budget_exceeded"
    error_type = "insufficient_quota"


class ServiceUnavailable(DeepSpaceError):
    http_status = 503
    default_code = "service_unavailable"
    error_type = "server_error"
    retryable = True


class UpstreamError(DeepSpaceError):
    http_status = 502
    default_code = "upstream_error"
    error_type = "upstream_error"
    retryable = True


class UpstreamTimeout(DeepSpaceError):
    http_status = 504
    default_code = "upstream_timeout"
    error_type = "upstream_error"
    retryable = True
