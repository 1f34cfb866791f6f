"""Errors of files and artifacts."""

from __future__ import annotations

from ..errors import DeepSpaceError, InvalidRequest, NotFound


class FileNotFoundInOrgError(NotFound):
    default_code = "file_not_found"


class FileTooLargeError(DeepSpaceError):
    http_status = 413
    default_code = "file_too_large"
    error_type = "invalid_request_error"


class UnsupportedContentTypeError(DeepSpaceError):
    http_status = 415
    default_code = "unsupported_content_type"
    error_type = "invalid_request_error"


class InvalidFileNameError(InvalidRequest):
    default_code = "invalid_file_name"
