"""Errors of the Worker's jobs."""

from __future__ import annotations

from ..errors import InvalidRequest, NotFound


class JobNotFoundError(NotFound):
    default_code = "job_not_found"


class UnknownJobKindError(InvalidRequest):
    default_code = "unknown_job_kind"


class JobParamsError(InvalidRequest):
    default_code = "invalid_job_params"
