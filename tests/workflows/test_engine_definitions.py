"""Definitions: YAML and JSON, the published schema, errors that name the field and the line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from deepspace_lab.workflows.definitions import check_inputs, parse_definition, workflow_schema
from deepspace_lab.workflows.errors import WorkflowDefinitionError
from deepspace_lab.workflows.templates import TemplateError, render

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
name: demo
inputs:
  topic: {type: string, default: stars}
steps:
  - id: plan
    kind: llm
    model: m
    prompt: "Plan {{ inputs.topic }}"
  - id: check
    kind: verify
    depends_on: [plan]
    assert:
      - value: "{{ steps.plan.outputs.text }}"
        contains: x
"""


def error_of(text: str, **kwargs: str) -> WorkflowDefinitionError:
    with pytest.raises(WorkflowDefinitionError) as caught:
        parse_definition(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_good_definition_parses_from_yaml_and_json_alike() -> None:
    fmt, definition = parse_definition(GOOD)
    assert fmt == "yaml" and [s["id"] for s in definition["steps"]] == ["plan", "check"]
    fmt, again = parse_definition(json.dumps(definition, indent=2))
    assert fmt == "json" and again == definition


@pytest.mark.parametrize(("text", "field", "line", "words"), [
    (GOOD.replace("    prompt: \"Plan {{ inputs.topic }}\"\n", ""), "steps[0].prompt", 5, "is required"),
    (GOOD.replace("    model: m\n", "    model: m\n    temprature: 1\n"), "steps[0].temprature", 8, "not a field"),
    (GOOD.replace("kind: verify", "kind: nope"), "steps[1].kind", 10, "is not one of"),
    (GOOD.replace("depends_on: [plan]", "depends_on: [plan, ghost]"), "steps[1].depends_on[1]", 11, "no step `ghost`"),
    (GOOD.replace("    depends_on: [plan]\n", ""), "steps[1].assert", 11, "add `plan` to depends_on"),
    (GOOD.replace("inputs.topic", "inputs.subject"), "steps[0].prompt", 8, "no input `subject`"),
    (GOOD.replace("        contains: x\n", ""), "steps[1].assert[0]", 13, "needs a comparison"),
    (GOOD.replace("id: check", "id: plan"), "steps[1].id", 9, "already the id"),
    (GOOD.replace("timeout_s", "x") + "    timeout_s: -1\n", "steps[1].timeout_s", 15, "less than or equal"),
])
def test_an_invalid_definition_names_the_field_and_the_line(text: str, field: str, line: int, words: str) -> None:
    error = error_of(text)
    assert (error.field, error.line) == (field, line), error.message
    assert words in error.message and f"line {line}" in error.message
    assert error.code == "invalid_workflow" and error.to_dict()["error"]["line"] == line


def test_a_cycle_and_bad_syntax_are_reported_with_their_line() -> None:
    cyclic = GOOD.replace("    prompt: \"Plan", "    depends_on: [check]\n    prompt: \"Plan")
    assert "cycle" in error_of(cyclic).message
    broken = error_of("name: x\nsteps:\n  - id: [unclosed\n")
    assert broken.field is None and broken.line == 4 and "YAML" in broken.message
    bad_json = error_of('{"name": "x",\n "steps": [}', fmt="json")
    assert bad_json.line == 2 and "JSON" in bad_json.message


def test_the_published_schema_is_valid_and_in_docs() -> None:
    schema = workflow_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads((ROOT / "docs" / "workflow.schema.json").read_text()) == schema, \
        "regenerate: deepspace-lab workflow schema > docs/workflow.schema.json"
    assert {"llm", "verify"} <= set(schema["properties"]["steps"]["items"]["properties"]["kind"]["enum"])


def test_inputs_take_defaults_coerce_command_line_values_and_refuse_unknown_ones() -> None:
    _, definition = parse_definition(GOOD.replace("topic: {type: string, default: stars}",
                                                  "topic: {type: string, default: stars}\n  n: {type: integer}"))
    assert check_inputs(definition, {"n": "3"}) == {"topic": "stars", "n": 3}
    with pytest.raises(WorkflowDefinitionError, match="must be integer"):
        check_inputs(definition, {"n": "three"})
    with pytest.raises(WorkflowDefinitionError, match="unknown input `m`"):
        check_inputs(definition, {"n": 1, "m": 2})
    with pytest.raises(WorkflowDefinitionError, match="no value"):
        check_inputs(definition, {})


def test_templates_keep_whole_values_and_write_parts_into_text() -> None:
    scope = {"inputs": {"n": 3}, "steps": {"a": {"outputs": {"items": [{"name": "x"}]}}}}
    assert render("{{ inputs.n }}", scope) == 3
    assert render("n={{ inputs.n }} first={{ steps.a.outputs.items.0.name }}", scope) == "n=3 first=x"
    assert render({"k": ["{{ steps.a.outputs.items }}"]}, scope) == {"k": [[{"name": "x"}]]}
    with pytest.raises(TemplateError):
        render("{{ steps.a.outputs.missing }}", scope)
