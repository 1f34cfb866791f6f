"""Storage on a local folder and on a real S3-compatible server; files through the product API
on S3 (both databases), exports written there by a worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from deepspace_lab.storage import Storage

from ..helpers import Gateway, make_tenant


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return Storage(str(tmp_path / "store") if request.param == "local" else request.getfixturevalue("s3_url"))


def test_put_get_copy_and_delete(storage: Storage, tmp_path: Path) -> None:
    storage.put("files/org_a/p/f1", b"hello")
    assert storage.get("files/org_a/p/f1") == b"hello" and storage.exists("files/org_a/p/f1")
    local = tmp_path / "big.bin"
    local.write_bytes(b"x" * 100_000)
    storage.put_file("files/org_a/p/f2", str(local))
    assert storage.size("files/org_a/p/f2") == 100_000
    storage.delete("files/org_a/p/f1")
    storage.delete("files/org_a/p/f1")  # twice is fine
    assert not storage.exists("files/org_a/p/f1")
    with pytest.raises(FileNotFoundError):
        storage.get("files/org_a/p/f1")


def test_keys_cannot_climb_out_of_the_root(storage: Storage) -> None:
    for key in ("../etc/passwd", "a/../../b", "/abs", "a//b", ""):
        with pytest.raises(ValueError):
            storage.put(key, b"x")


def test_the_url_query_never_shows_in_its_repr(s3_url: str) -> None:
    assert "endpoint_url" not in repr(Storage(s3_url))


def test_files_on_s3_through_the_api(s3_url: str, gateway_factory: Callable[..., Gateway],
                                     worker_factory: Callable[..., Any]) -> None:
    gw = gateway_factory(storage_url=s3_url, worker_backend="sqlite", storage_max_file_bytes=1000,
                         storage_content_types="text/*,application/json")
    tenant = make_tenant(gw.settings, email="s3@example.org", scopes=("chat", "workflows"))
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    api = gw.url + "/deepspace/api"
    up = httpx.post(api + "/files", params={"name": "notes.md"}, content=b"# hi\n",
                    headers={**headers, "Content-Type": "text/markdown; charset=utf-8"})
    assert up.status_code == 201, up.text
    file = up.json()
    assert file["content_type"] == "text/markdown" and file["size_bytes"] == 5 and file["kind"] == "upload"
    got = httpx.get(api + f"/files/{file['id']}/content", headers=headers)
    assert got.content == b"# hi\n" and got.headers["Content-Type"].startswith("text/markdown")
    assert [f["id"] for f in httpx.get(api + "/files", headers=headers).json()["data"]] == [file["id"]]

    too_big = httpx.post(api + "/files", params={"name": "big.txt"}, content=b"x" * 1001,
                         headers={**headers, "Content-Type": "text/plain"})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "file_too_large"
    wrong = httpx.post(api + "/files", params={"name": "x.exe"}, content=b"MZ",
                       headers={**headers, "Content-Type": "application/x-msdownload"})
    assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "unsupported_content_type"
    bad_name = httpx.post(api + "/files", params={"name": "../x"}, content=b"x",
                          headers={**headers, "Content-Type": "text/plain"})
    assert bad_name.status_code == 400 and bad_name.json()["error"]["code"] == "invalid_file_name"

    worker_factory(gw.settings)
    job = httpx.post(api + "/exports", headers=headers, json={"dataset": "transactions", "format": "csv"}).json()
    deadline = time.monotonic() + 30
    while job["state"] != "done":
        assert job["state"] != "failed" and time.monotonic() < deadline, job
        time.sleep(0.05)
        job = httpx.get(api + f"/jobs/{job['id']}", headers=headers).json()
    csv_text = httpx.get(api + f"/files/{job['result']['file_id']}/content", headers=headers).text
    assert csv_text.splitlines()[0].startswith("id,created_at,type") and len(csv_text.splitlines()) == 2

    assert httpx.delete(api + f"/files/{file['id']}", headers=headers).status_code == 204
    assert httpx.get(api + f"/files/{file['id']}/content", headers=headers).status_code == 404
    assert not Storage(s3_url).exists(f"files/{tenant.org_id}/{tenant.project_id}/{file['id']}")


def test_a_download_larger_than_one_piece_arrives_whole(gateway_factory: Callable[..., Gateway]) -> None:
    import os

    gw = gateway_factory(storage_max_file_bytes=4 << 20)
    tenant = make_tenant(gw.settings, email="big@example.org", scopes=("workflows",))
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    data = os.urandom((2 << 20) + 12345)  # more than two 1 MiB pieces
    up = httpx.post(gw.url + "/deepspace/api/files", params={"name": "blob.bin"}, content=data,
                    headers={**headers, "Content-Type": "application/octet-stream"}, timeout=30)
    assert up.status_code == 201, up.text
    got = httpx.get(gw.url + f"/deepspace/api/files/{up.json()['id']}/content", headers=headers, timeout=30)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-Length"] == str(len(data))


def test_an_endpoint_named_by_aws_endpoint_url(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MinIO or another S3-compatible server named by ``AWS_ENDPOINT_URL`` instead of the URL."""
    bucket_url, endpoint = s3_url.split("?endpoint_url=")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    Storage(bucket_url).put("files/org_a/p/env", b"via the environment")
    assert Storage(s3_url).get("files/org_a/p/env") == b"via the environment"
