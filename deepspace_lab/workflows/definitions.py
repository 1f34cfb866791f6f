"""Workflow definitions: YAML or JSON text → a validated definition, and the published schema.

The schema (:func:`workflow_schema`) is built from the engine's common step fields
(:data:`COMMON_STEP_FIELDS`) and each registered kind's ``schema`` (:mod:`.steps`); it is served
at ``GET /deepspace/api/workflows/schema`` and written to ``docs/workflow.schema.json``.
:func:`parse_definition` reports the first problem as a :class:`WorkflowDefinitionError` naming
the field (``steps[1].prompt``) and its line in the text as written, with every problem found
in ``detail.errors``. After the schema it checks what a schema cannot: unique step ids,
``depends_on`` naming earlier-defined steps without a cycle, template references to declared
inputs and to steps the step depends on (directly or not), and each kind's own ``check``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import yaml

from .errors import WorkflowDefinitionError
from .steps import StepDefinitionError, step_kinds
from .templates import references

STEP_ID = "^[A-Za-z][A-Za-z0-9_]{0,63}$"
SCHEMA_ID = "https://deepspace-lab.dev/schemas/workflow.schema.json"

RETRY = {
    "type": "object", "additionalProperties": False,
    "description": "Attempts of a step and the wait between them (backoff_s × backoff_factor^(attempt-1), at "
                   "most max_backoff_s); `codes` lists the error codes worth another attempt (default: any "
                   "retryable failure).",
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
        "backoff_s": {"type": "number", "minimum": 0, "maximum": 3600},
        "backoff_factor": {"type": "number", "minimum": 1, "maximum": 10},
        "max_backoff_s": {"type": "number", "minimum": 0, "maximum": 3600},
        "codes": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True},
    },
}
ON_FAILURE = {
    "description": "When the step has failed for good: `fail` the run (default), `continue` (the step counts as "
                   "finished with no outputs), or `{fallback: {...}}` (the step succeeds with these outputs).",
    "oneOf": [{"enum": ["fail", "continue"]},
              {"type": "object", "additionalProperties": False, "required": ["fallback"],
               "properties": {"fallback": {"type": "object"}}}],
}
#: The fields every step has, whatever its kind (the engine's).
COMMON_STEP_FIELDS: dict[str, Any] = {
    "id": {"type": "string", "pattern": STEP_ID, "description": "unique in the workflow; templates name it"},
    "kind": {"type": "string", "description": "a registered step kind"},
    "description": {"type": "string"},
    "depends_on": {"type": "array", "items": {"type": "string", "pattern": STEP_ID}, "uniqueItems": True},
    "inputs": {"type": "object", "description": "named values, templates allowed: the step's `ctx.inputs`"},
    "retry": RETRY,
    "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
    "on_failure": ON_FAILURE,
}
INPUT = {"type": "object", "additionalProperties": False, "properties": {
    "type": {"enum": ["string", "number", "integer", "boolean", "object", "array"]},
    "default": {}, "description": {"type": "string"}}}


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a workflow definition, every registered kind included."""
    kinds = step_kinds()
    rules = []
    for name, kind in sorted(kinds.items()):
        own = kind.schema.get("properties", {})
        rules.append({"if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                      "then": {"properties": {**COMMON_STEP_FIELDS, **own},
                               "required": sorted({"id", "kind", *kind.schema.get("required", [])}),
                               "additionalProperties": False, "description": kind.description}})
    step = {"type": "object", "required": ["id", "kind"],
            "properties": {**COMMON_STEP_FIELDS, "kind": {"enum": sorted(kinds)}}, "allOf": rules}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
        "title": "DeepSpace Lab workflow", "type": "object", "additionalProperties": False,
        "required": ["name", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.\\- ]{0,199}$"},
            "description": {"type": "string"},
            "inputs": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                       "additionalProperties": INPUT},
            "budget_micros": {"type": "integer", "minimum": 0,
                              "description": "a run stops before its cost passes this (micro-credits)"},
            "steps": {"type": "array", "minItems": 1, "maxItems": 200, "items": step},
        },
    }


# -- text → data, with the line of every field ---------------------------------------------------
Path = tuple[str | int, ...]


def _lines(node: yaml.Node, path: Path, out: dict[Path, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            out[child] = key.start_mark.line + 1
            _lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), out)


def detect_format(text: str, filename: str | None = None) -> str:
    if filename is not None and filename.lower().endswith(".json"):
        return "json"
    if filename is not None and filename.lower().endswith((".yaml", ".yml")):
        return "yaml"
    return "json" if text.lstrip().startswith("{") else "yaml"


def load_text(text: str, fmt: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML or JSON; returns the data and the line of each path."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkflowDefinitionError(f"not valid JSON: {exc.msg}", field=None, line=exc.lineno) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise WorkflowDefinitionError(f"not valid YAML: {problem}", field=None,
                                          line=mark.line + 1 if mark is not None else None) from None
    lines: dict[Path, int] = {}
    try:  # JSON is YAML too: the same composer finds the lines of both
        node = yaml.compose(text)
        if node is not None:
            _lines(node, (), lines)
    except yaml.YAMLError:
        pass
    return data, lines


def field_name(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# -- validation ----------------------------------------------------------------------------------
def _schema_problems(data: Any) -> list[tuple[Path, str]]:
    validator = jsonschema.Draft202012Validator(workflow_schema())
    found: list[tuple[Path, str]] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path))):
        path: Path = tuple(error.absolute_path)
        message = error.message
        if error.validator == "required":
            missing = message.split("'")[1] if "'" in message else ""
            path, message = (*path, missing), "is required"
        elif error.validator == "additionalProperties":
            extra = [p for p in error.instance if p not in error.schema.get("properties", {})]
            if extra:
                path, message = (*path, extra[0]), "is not a field here"
        elif error.validator in ("if", "allOf"):
            continue  # the `then` branch's own errors say what is wrong
        if (path, message) not in found:
            found.append((path, message))
    return found


def _graph_problems(steps: list[dict[str, Any]], inputs: dict[str, Any] | None) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step["id"] in index:
            problems.append(((("steps", i, "id")), f"`{step['id']}` is already the id of steps[{index[step['id']]}]"))
        index.setdefault(step["id"], i)
    for i, step in enumerate(steps):
        for j, dep in enumerate(step.get("depends_on", [])):
            if dep == step["id"]:
                problems.append((("steps", i, "depends_on", j), "a step cannot depend on itself"))
            elif dep not in index:
                problems.append((("steps", i, "depends_on", j), f"no step `{dep}`"))
    if problems:
        return problems
    upstream = ancestors(steps)
    for i, step in enumerate(steps):
        if step["id"] in upstream[step["id"]]:
            problems.append((("steps", i, "depends_on"), "depends_on makes a cycle"))
    for i, step in enumerate(steps):
        for key, value in step.items():
            if key in ("id", "kind", "depends_on"):
                continue
            for ref in references(value):
                parts = ref.split(".")
                if parts[0] == "inputs" and len(parts) > 1:
                    if inputs is not None and parts[1] not in inputs:
                        problems.append((("steps", i, key), f"`{{{{ {ref} }}}}`: no input `{parts[1]}` is declared"))
                elif parts[0] == "steps" and len(parts) > 3 and parts[2] == "outputs":
                    if parts[1] not in index:
                        problems.append((("steps", i, key), f"`{{{{ {ref} }}}}`: no step `{parts[1]}`"))
                    elif parts[1] not in upstream[step["id"]]:
                        problems.append((("steps", i, key), f"`{{{{ {ref} }}}}`: add `{parts[1]}` to depends_on "
                                                            "(a step reads only the outputs of steps it depends on)"))
                else:
                    problems.append((("steps", i, key), f"`{{{{ {ref} }}}}` is not `inputs.<name>` or "
                                                        "`steps.<id>.outputs.<key>`"))
    return problems


def ancestors(steps: list[dict[str, Any]]) -> dict[str, set[str]]:
    """For each step id, every step it depends on directly or not (a cycle shows as itself)."""
    direct = {s["id"]: set(s.get("depends_on", [])) for s in steps}
    found: dict[str, set[str]] = {}
    for sid in direct:
        seen: set[str] = set()
        todo = list(direct[sid])
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(direct.get(dep, ()))
        found[sid] = seen
    return found


def validate_definition(data: Any, lines: dict[Path, int] | None = None) -> dict[str, Any]:
    """The definition, checked; :class:`WorkflowDefinitionError` with the first problem (and all)."""
    lines = lines or {}
    problems = _schema_problems(data)
    if not problems:
        problems = _graph_problems(data["steps"], data.get("inputs"))
    if not problems:
        kinds = step_kinds()
        for i, step in enumerate(data["steps"]):
            try:
                kinds[step["kind"]].check(step)
            except StepDefinitionError as exc:
                problems.append((("steps", i, *(int(p) if p.isdigit() else p for p in exc.field.split("."))),
                                 str(exc)))
    if problems:
        def line_of(path: Path) -> int | None:
            while path:
                if path in lines:
                    return lines[path]
                path = path[:-1]
            return lines.get(())

        errors = [{"field": field_name(p) or None, "line": line_of(p), "message": m} for p, m in problems]
        path, message = problems[0]
        raise WorkflowDefinitionError(message, field=field_name(path) or None, line=line_of(path), errors=errors)
    return dict(data)


def parse_definition(text: str, *, fmt: str | None = None, filename: str | None = None) -> tuple[str, dict[str, Any]]:
    """(format, validated definition) of a YAML or JSON text."""
    kind = fmt or detect_format(text, filename)
    if kind not in ("yaml", "json"):
        raise WorkflowDefinitionError("format must be yaml or json", field="format")
    data, lines = load_text(text, kind)
    if not isinstance(data, dict):
        raise WorkflowDefinitionError("a workflow is a mapping with `name` and `steps`", field=None, line=1)
    return kind, validate_definition(data, lines)


def check_inputs(definition: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A run's inputs: the given ones over the declared defaults; every declared input must have a
    value, and only declared ones are taken when the definition declares any."""
    declared: dict[str, Any] | None = definition.get("inputs")
    if declared is None:
        return dict(given)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise WorkflowDefinitionError(f"unknown input `{unknown[0]}`; declared: {sorted(declared)}",
                                      field=f"inputs.{unknown[0]}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = _coerce(name, given[name], (spec or {}).get("type"))
        elif "default" in (spec or {}):
            values[name] = spec["default"]
        else:
            raise WorkflowDefinitionError(f"input `{name}` has no value and no default", field=f"inputs.{name}")
    return values


def _coerce(name: str, value: Any, kind: str | None) -> Any:
    """A value given on a command line (a string) as the declared type."""
    if kind is None or not isinstance(value, str) or kind == "string":
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        raise WorkflowDefinitionError(f"input `{name}` must be {kind}", field=f"inputs.{name}") from None
    ok = {"number": (int, float), "integer": (int,), "boolean": (bool,), "object": (dict,), "array": (list,)}[kind]
    if not isinstance(parsed, ok) or (kind != "boolean" and isinstance(parsed, bool)):
        raise WorkflowDefinitionError(f"input `{name}` must be {kind}", field=f"inputs.{name}")
    return parsed
