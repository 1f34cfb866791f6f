"""Steps plug in through the registry; the core order is fixed and cannot be configured away."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest

from deepspace_lab.config import ConfigError
from deepspace_lab.pipeline import CORE_STEPS, Pipeline, RequestContext, discover_steps
from deepspace_lab.pipeline.context import Next
from deepspace_lab.pipeline.registry import CHAT_STEPS_AFTER, CHAT_STEPS_BEFORE, DOOR_STEPS

from ..helpers import Gateway

CALLS: list[str] = []


class TagStep:
    """A third-party step: records the order it ran in and marks the audit detail."""

    name: ClassVar[str] = "tag"

    def __init__(self, services: object) -> None:
        self.services = services

    async def __call__(self, ctx: RequestContext, call_next: Next) -> None:
        assert ctx.principal is not None and ctx.model is not None  # runs after auth and validate
        CALLS.append("tag:before")
        ctx.detail["tagged"] = True
        await call_next(ctx)
        CALLS.append(f"tag:after:{ctx.upstream_response_id is not None}")


def test_builtin_steps_register_through_the_entry_point_group() -> None:
    assert CORE_STEPS <= discover_steps().keys()


def test_core_order_is_door_then_validate_then_extensions_then_the_call() -> None:
    assert DOOR_STEPS == ("audit", "ip_rules", "auth")  # IP rules at the door, before the credential
    assert CHAT_STEPS_BEFORE == ("validate", "idempotency", "conversation", "rate_limit", "budget_hold", "policy")
    assert CHAT_STEPS_AFTER[-1] == "upstream"


@pytest.mark.parametrize("name", sorted(CORE_STEPS))
def test_a_core_step_cannot_be_configured(gateway: Gateway, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Pipeline(gateway.runtime.services, extensions=[name])
    assert caught.value.code == "core_step_not_configurable"


def test_an_unknown_step_is_a_config_error(gateway: Gateway) -> None:
    with pytest.raises(ConfigError) as caught:
        Pipeline(gateway.runtime.services, extensions=["no-such-step"])
    assert caught.value.code == "unknown_pipeline_step"


def test_an_extension_step_runs_inside_the_core_steps(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = dict(discover_steps(), tag=TagStep)
    pipeline = Pipeline(gateway.runtime.services, extensions=["tag"], registry=registry)
    names = pipeline.chat_step_names
    assert names[:9] == ("audit", "ip_rules", "auth", "validate", "idempotency", "conversation", "rate_limit",
                         "budget_hold", "policy")
    assert names[-2:] == ("usage_capture", "upstream")
    assert names.index("tag") == len(DOOR_STEPS + CHAT_STEPS_BEFORE)
    monkeypatch.setattr(gateway.runtime, "_pipeline", pipeline)
    CALLS.clear()
    response = httpx.post(gateway.base_url + "/chat/completions",
                          headers={"Authorization": f"Bearer {gateway.tenant.api_key}"},
                          json={"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert CALLS == ["tag:before", "tag:after:True"]
    (row,) = gateway.audit_rows(trace_id=response.headers["X-Trace-Id"])
    detail = row["detail"]
    assert detail["tagged"] is True


def test_an_extension_step_never_sees_an_unauthenticated_request(gateway: Gateway,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    registry = dict(discover_steps(), tag=TagStep)
    monkeypatch.setattr(gateway.runtime, "_pipeline",
                        Pipeline(gateway.runtime.services, extensions=["tag"], registry=registry))
    CALLS.clear()
    response = httpx.post(gateway.base_url + "/chat/completions",
                          json={"model": "deepspace-simulated-chat", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 401 and CALLS == []
