"""The ``verify`` step kind: assertions on earlier outputs, optionally an LLM judge.

Each assertion takes a ``value`` (usually a template such as ``{{ steps.plan.outputs.json }}``,
resolved by the engine), optionally a ``path`` into it (``items.0.name``), and one or more
comparisons: ``equals``, ``not_equals``, ``contains``, ``not_contains``, ``regex``, ``gt``,
``ge``, ``lt``, ``le``, ``min_length``, ``exists``. A ``judge`` assertion asks a model (through
the Gateway, like an ``llm`` step: run key, idempotency key, trace) whether ``value`` meets
``criteria``; it passes when the reply matches ``pass_if`` (default ``PASS``). Outputs:
``passed`` and ``results`` (one per assertion). Any failed assertion fails the step with
``verification_failed`` (not retried: the same outputs fail the same way).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .llm import complete
from .steps import StepContext, StepDefinitionError, StepFailed, StepKind, StepOutcome
from .templates import TemplateError, lookup

COMPARISONS: dict[str, Any] = {
    "equals": {}, "not_equals": {}, "contains": {}, "not_contains": {},
    "regex": {"type": "string"}, "gt": {"type": "number"}, "ge": {"type": "number"}, "lt": {"type": "number"},
    "le": {"type": "number"}, "min_length": {"type": "integer", "minimum": 0}, "exists": {"type": "boolean"},
}
JUDGE = {"type": "object", "additionalProperties": False, "required": ["model", "criteria"],
         "properties": {"model": {"type": "string", "minLength": 1}, "criteria": {"type": "string", "minLength": 1},
                        "pass_if": {"type": "string", "minLength": 1}}}
ASSERTION = {"type": "object", "additionalProperties": False, "required": ["value"],
             "properties": {"value": {}, "path": {"type": "string"}, "message": {"type": "string"},
                            "judge": JUDGE, **COMPARISONS}}
SCHEMA: dict[str, Any] = {"type": "object", "required": ["assert"],
                          "properties": {"assert": {"type": "array", "minItems": 1, "items": ASSERTION}}}


def check_verify(step: dict[str, Any]) -> None:
    for i, item in enumerate(step["assert"]):
        if not (set(item) & (set(COMPARISONS) | {"judge"})):
            raise StepDefinitionError("an assertion needs a comparison (equals, contains, regex, ...) or a judge",
                                      field=f"assert.{i}")
        if "regex" in item:
            try:
                re.compile(item["regex"])
            except re.error as exc:
                raise StepDefinitionError(f"not a regular expression: {exc}", field=f"assert.{i}.regex") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(op: str, value: Any, expected: Any, present: bool) -> bool:
    if op == "exists":
        return present is bool(expected)
    if not present:
        return False
    if op == "equals":
        return bool(value == expected)
    if op == "not_equals":
        return bool(value != expected)
    if op in ("contains", "not_contains"):
        inside = (expected in value) if isinstance(value, str | list | dict) else False
        return inside if op == "contains" else not inside
    if op == "regex":
        text = value if isinstance(value, str) else json.dumps(value)
        return re.search(expected, text) is not None
    if op == "min_length":
        return isinstance(value, str | list | dict) and len(value) >= int(expected)
    number = _number(value)
    if number is None:
        return False
    limit = float(expected)
    return {"gt": number > limit, "ge": number >= limit, "lt": number < limit, "le": number <= limit}[op]


async def _judge(ctx: StepContext, index: int, spec: dict[str, Any], value: Any) -> tuple[bool, str, int, int]:
    subject = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    prompt = (f"Does the text below meet this criterion?\nCriterion: {spec['criteria']}\n\nText:\n{subject}\n\n"
              "Answer PASS or FAIL on the first line, then one sentence why.")
    body, tokens, cost, _ = await complete(ctx, call_index=index, model=spec["model"],
                                           messages=[{"role": "user", "content": prompt}])
    reply = ((body.get("choices") or [{}])[0].get("message") or {}).get("content") or ""
    return re.search(spec.get("pass_if", "PASS"), reply) is not None, reply[:500], tokens, cost


async def run_verify(ctx: StepContext) -> StepOutcome:
    results: list[dict[str, Any]] = []
    tokens = cost = 0
    for i, item in enumerate(ctx.spec["assert"]):
        value, present = item.get("value"), True
        if "path" in item:
            try:
                value = lookup({"value": value}, "value." + item["path"])
            except TemplateError:
                value, present = None, False
        failed = [op for op in COMPARISONS if op in item and not _compare(op, value, item[op], present)]
        result: dict[str, Any] = {"index": i, "passed": not failed}
        if "judge" in item:
            ok, reply, used, paid = await _judge(ctx, i, item["judge"], value)
            tokens, cost = tokens + used, cost + paid
            result["judge"] = reply
            if not ok:
                failed.append("judge")
        if failed:
            shown = json.dumps(value, ensure_ascii=False, default=str)
            result.update(passed=False, failed=failed,
                          message=item.get("message") or f"assertion {i} failed ({', '.join(failed)}) on {shown[:200]}")
        results.append(result)
    passed = all(r["passed"] for r in results)
    if not passed:
        first = next(r for r in results if not r["passed"])
        raise StepFailed(first["message"], code="verification_failed", retryable=False,
                         detail={"results": results, "tokens": tokens, "cost_micros": cost})
    return StepOutcome(outputs={"passed": True, "results": results}, tokens=tokens, cost_micros=cost)


VERIFY = StepKind("verify", SCHEMA, run_verify, "Assertions on earlier outputs (equals, contains, regex, "
                  "comparisons, an LLM judge).", check=check_verify)
