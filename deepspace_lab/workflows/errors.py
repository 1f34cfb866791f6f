"""Errors of workflows (definitions, runs)."""

from __future__ import annotations

from typing import Any

from ..errors import Conflict, InvalidRequest, NotFound, RateLimited


class WorkflowDefinitionError(InvalidRequest):
    """A definition is invalid. ``param`` names the field (``steps[1].prompt``); ``detail`` carries
    ``line`` (1-based, in the text as written, when known) and every problem found (``errors``)."""

    default_code = "invalid_workflow"

    def __init__(self, message: str, *, field: str | None, line: int | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        where = f" (line {line})" if line else ""
        super().__init__(f"{field + ': ' if field else ''}{message}{where}", param=field,
                         detail={"line": line, "errors": errors or [{"field": field, "line": line,
                                                                     "message": message}]})
        self.field = field
        self.line = line


class WorkflowNotFoundError(NotFound):
    default_code = "workflow_not_found"


class WorkflowRunNotFoundError(NotFound):
    default_code = "workflow_run_not_found"


class WorkflowRunStateError(Conflict):
    default_code = "workflow_run_state"


class WorkflowLimitError(RateLimited):
    default_code = "workflow_limit"
