"""GET /deepspace/api/usage and ``list_usage``: the caller's org's usage records only, newest
first, filtered by project, key, model and time, paged by cursor; bad filters are 400s."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, Table
from sqlalchemy.orm import Session

from deepspace_lab.auth.models import Project
from deepspace_lab.billing import list_usage, parse_time
from deepspace_lab.billing.models import UsageRecord
from deepspace_lab.db import make_sync_engine
from deepspace_lab.errors import InvalidRequest

from ..helpers import Gateway, make_tenant
from .conftest import Ledger

USAGE = "/deepspace/api/usage"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
MakeUsage = Callable[..., UsageRecord]


def get(gw: Gateway, key: str, **params: Any) -> httpx.Response:
    return httpx.get(gw.url + USAGE, params=params, headers={"Authorization": f"Bearer {key}"})


def records(gw: Gateway, key: str, **params: Any) -> list[dict[str, Any]]:
    response = get(gw, key, **params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def add_usage(db: Engine, *, org_id: str, project_id: str | None = None, api_key_id: str | None = None,
              model: str = "m-small", created_at: datetime = T0, cost_micros: int = 10,
              **more: Any) -> UsageRecord:
    """One usage record written straight through the ORM, as the pipeline would."""
    row = UsageRecord(request_id=f"req_{secrets.token_hex(8)}", trace_id=secrets.token_hex(16), org_id=org_id,
                      project_id=project_id, api_key_id=api_key_id, model=model, prompt_tokens=5,
                      completion_tokens=7, delivered_tokens=7, cost_micros=cost_micros, measured="upstream",
                      created_at=created_at, **more)
    with Session(db, expire_on_commit=False) as session:
        session.add(row)
        session.commit()
    return row


def add_project(db: Engine, org_id: str, name: str) -> str:
    with Session(db) as session:
        project = Project(id=f"prj_{secrets.token_hex(12)}", org_id=org_id, name=name)
        session.add(project)
        session.commit()
        return project.id


@pytest.fixture
def _ledger_invariants_hold_after_each_test() -> None:
    """Overrides the billing-wide check: these tests write usage rows straight into the table,
    with no hold behind them, to read them back; the ledger is not what they exercise."""


@pytest.fixture
def usage_db(db_url: str) -> Iterator[Engine]:
    engine = make_sync_engine(db_url)
    yield engine
    engine.dispose()


def test_the_usage_records_are_the_callers_orgs_newest_first(
    gateway_factory: Callable[..., Gateway]
) -> None:
    gw = gateway_factory()
    mine, theirs = gw.tenant, make_tenant(gw.settings, email="b@example.org")
    for minutes in (0, 1, 2):
        add_usage(gw.db, org_id=mine.org_id, project_id=mine.project_id, api_key_id=mine.api_key_id,
                  created_at=T0 + timedelta(minutes=minutes), cost_micros=100 + minutes)
    add_usage(gw.db, org_id=theirs.org_id, project_id=theirs.project_id, cost_micros=999)

    response = get(gw, mine.api_key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["cost_micros"] for r in body["data"]] == [102, 101, 100]
    assert (body["object"], body["has_more"], body["next_cursor"]) == ("list", False, None)
    first = body["data"][0]
    assert first["object"] == "usage_record" and first["org_id"] == mine.org_id
    assert first["api_key_id"] == mine.api_key_id and first["measured"] == "upstream"
    assert datetime.fromisoformat(first["created_at"]) == T0 + timedelta(minutes=2)
    assert [r["cost_micros"] for r in records(gw, theirs.api_key)] == [999]

    (row,) = gw.audit_rows(trace_id=response.headers["X-Trace-Id"])
    assert (row["kind"], row["org_id"], row["status_code"]) == ("api.usage.list", mine.org_id, 200)


def test_filters_by_project_key_model_and_time(gateway: Gateway) -> None:
    me = gateway.tenant
    other_project = add_project(gateway.db, me.org_id, "other")
    foreign = make_tenant(gateway.settings, email="f@example.org")
    rows = {
        "a": add_usage(gateway.db, org_id=me.org_id, project_id=me.project_id, api_key_id=me.api_key_id,
                       model="m-small", created_at=T0),
        "b": add_usage(gateway.db, org_id=me.org_id, project_id=me.project_id, api_key_id="key_other",
                       model="m-large", created_at=T0 + timedelta(hours=1)),
        "c": add_usage(gateway.db, org_id=me.org_id, project_id=other_project, api_key_id=me.api_key_id,
                       model="m-large", created_at=T0 + timedelta(hours=2)),
        "d": add_usage(gateway.db, org_id=me.org_id, project_id=None, model="m-small",
                       created_at=T0 + timedelta(days=1)),
        "x": add_usage(gateway.db, org_id=foreign.org_id, project_id=foreign.project_id,
                       api_key_id=me.api_key_id, model="m-small", created_at=T0),
    }
    names = {row.request_id: name for name, row in rows.items()}

    def found(**params: Any) -> str:
        return "".join(names[r["request_id"]] for r in records(gateway, me.api_key, **params))

    assert found() == "dcba"
    assert found(project_id=me.project_id) == "ba"
    assert found(project_id=other_project) == "c"
    assert found(project_id=foreign.project_id) == ""  # another org's project opens nothing
    assert found(api_key_id=me.api_key_id) == "ca"  # the same key id on another org's row stays hidden
    assert found(model="m-large") == "cb"
    assert found(model="m-small", project_id=me.project_id) == "a"
    assert found(model="m-none") == ""
    # since inclusive, until exclusive; offsets are honoured; no offset means UTC
    assert found(since=(T0 + timedelta(hours=1)).isoformat()) == "dcb"
    assert found(until=(T0 + timedelta(hours=2)).isoformat()) == "ba"
    assert found(since="2026-11-01T13:00:00Z", until="2026-11-01T14:00:00Z") == "b"
    assert found(since="2026-11-01T15:00:00+02:00", until="2026-11-01T16:00:00+02:00") == "b"
    assert found(since="2026-11-01T13:00:00", until="2026-11-01T13:00:00") == ""
    assert found(since="2026-11-02") == "d"


def test_pages_by_cursor_newest_first_through_equal_times(gateway: Gateway) -> None:
    me = gateway.tenant
    stamps = [T0, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0 + timedelta(seconds=1),
              T0 + timedelta(seconds=2), T0 + timedelta(seconds=3)]
    made = [add_usage(gateway.db, org_id=me.org_id, model="m-small" if i % 2 else "m-large", created_at=stamp)
            for i, stamp in enumerate(stamps)]
    expected = [r.request_id for r in reversed(made)]

    def walk(**params: Any) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            response = get(gateway, me.api_key, limit=3, **params, **({"cursor": cursor} if cursor else {}))
            body = response.json()
            pages.append([r["request_id"] for r in body["data"]])
            cursor = body["next_cursor"]
            assert body["has_more"] == (cursor is not None)
            if cursor is None:
                return pages

    assert walk() == [expected[0:3], expected[3:6], expected[6:]]
    model_of = {r.request_id: r.model for r in made}
    assert sum(walk(model="m-small"), []) == [rid for rid in expected if model_of[rid] == "m-small"]

    other = make_tenant(gateway.settings, email="other@example.org")
    cursor = get(gateway, me.api_key, limit=3).json()["next_cursor"]
    assert cursor and records(gateway, other.api_key, cursor=cursor) == []  # a cursor opens nothing


BAD_FILTERS: list[tuple[dict[str, Any], str, str]] = [
    ({"limit": 0}, "invalid_limit", "limit"),
    ({"limit": 201}, "invalid_limit", "limit"),
    ({"limit": "ten"}, "invalid_limit", "limit"),
    ({"limit": "²"}, "invalid_limit", "limit"),
    ({"cursor": "not-a-cursor"}, "invalid_cursor", "cursor"),
    ({"cursor": "dTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "invalid_cursor", "cursor"),  # u + 20 nines: past BIGINT
    ({"cursor": "dDE"}, "invalid_cursor", "cursor"),  # a ledger cursor (t1) is not a usage cursor
    ({"project_id": "prj-with-dash"}, "invalid_id", "project_id"),
    ({"project_id": ""}, "invalid_id", "project_id"),
    ({"api_key_id": "k" * 41}, "invalid_id", "api_key_id"),
    ({"model": ""}, "invalid_model", "model"),
    ({"model": "m\tx"}, "invalid_model", "model"),
    ({"model": "m" * 201}, "invalid_model", "model"),
    ({"since": "yesterday"}, "invalid_time", "since"),
    ({"since": "2026-02-30T00:00:00Z"}, "invalid_time", "since"),
    ({"until": "1700000000"}, "invalid_time", "until"),
    ({"until": "0001-01-01T00:00:00+01:00"}, "invalid_time", "until"),
    ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "invalid_time_range", "until"),
]


def test_bad_filters_are_400_with_a_stable_code_and_the_param(gateway: Gateway) -> None:
    for params, code, param in BAD_FILTERS:
        response = get(gateway, gateway.tenant.api_key, **params)
        assert response.status_code == 400, (params, response.text)
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, param), params
        assert response.headers["x-should-retry"] == "false"


def test_a_filter_given_twice_is_refused_not_silently_the_last(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + USAGE, params=[("model", "m-small"), ("model", "m-large")],
                         headers={"Authorization": f"Bearer {gateway.tenant.api_key}"})
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("repeated_parameter", "model")


def test_a_plus_lost_in_the_query_string_is_explained(gateway: Gateway) -> None:
    raw = httpx.get(gateway.url + USAGE + "?since=2026-11-01T08:00:00+02:00",
                    headers={"Authorization": f"Bearer {gateway.tenant.api_key}"})
    assert raw.status_code == 400 and "%2B" in raw.json()["error"]["message"]


def test_usage_needs_billing_read_and_a_credential(gateway: Gateway) -> None:
    no_chat_scope = make_tenant(gateway.settings, email="k@example.org", scopes=("knowledge",))
    refused = get(gateway, no_chat_scope.api_key)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "permission_denied"
    assert refused.json()["error"]["action"] == "billing.read"
    assert httpx.get(gateway.url + USAGE).status_code == 401
    assert get(gateway, "dsk_not_a_real_key").status_code == 401


def test_a_record_shows_every_column_of_the_table(usage_db: Engine, ledger: Ledger) -> None:
    """What keeps the route tolerant: columns the pipeline adds appear with no change here."""
    org_id = ledger.run(ledger.new_org())
    add_usage(usage_db, org_id=org_id, finish_reason="stop", upstream_response_id="chatcmpl-1")
    page = ledger.do(list_usage, org_id=org_id)
    (record,) = page.records
    table = UsageRecord.__table__
    assert isinstance(table, Table) and set(record) == set(table.c.keys())
    assert (record["finish_reason"], record["upstream_response_id"], page.next_cursor) == ("stop", "chatcmpl-1", None)


def test_the_service_refuses_naive_times_and_bad_limits(ledger: Ledger) -> None:
    org_id = ledger.run(ledger.new_org())
    for kwargs, code in (({"since": datetime(2026, 11, 1)}, "invalid_time"), ({"limit": 0}, "invalid_limit"),
                         ({"limit": True}, "invalid_limit"), ({"model": "m\x00"}, "invalid_model"),
                         ({"until": T0, "since": T0 + timedelta(1)}, "invalid_time_range")):
        with pytest.raises(InvalidRequest) as caught:
            ledger.do(list_usage, org_id=org_id, **kwargs)
        assert caught.value.code == code, kwargs


@pytest.mark.parametrize(("text", "moment"), [
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T08:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ("2026-11-01T08:00:00z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ("2026-11-01T08:00:00.250+02:00", datetime(2026, 11, 1, 6, 0, 0, 250_000, tzinfo=UTC)),
    ("2026-11-01 08:00:00-05:30", datetime(2026, 11, 1, 13, 30, tzinfo=UTC)),
])
def test_parse_time_reads_iso_8601_as_utc(text: str, moment: datetime) -> None:
    parsed = parse_time(text, param="since")
    assert parsed == moment and parsed.tzinfo == UTC
