"""Risk & Policy and System in a real headless Chromium: a platform admin adds an IP deny rule on
the Risk page and a request from that address is refused at once; then adds a webhook on the
System page (its secret shown once), presses "Send test event", and the local receiver gets a
delivery signed with that secret while the delivery log shows it succeeded; the request log is
exported and its file downloaded through the console's link; after a switch to Chinese the
permissions matrix shows its rows. Screenshots are kept under the test's tmp dir
(the path is printed)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from deepspace_lab.webhooks.deliveries import verify_signature

from ..admin.conftest import AdminWorld, admin_world  # noqa: F401  (the fixture)
from ..cli.conftest import Processes, spawn  # noqa: F401  (the fixture)
from ..dashboards.test_server import start_admin
from ..helpers import Gateway
from ..identity.conftest import PASSWORD
from ..jobs.conftest import worker_factory  # noqa: F401  (the fixture)
from ..webhooks.receiver import Receiver, gateway_with_worker, receiver  # noqa: F401  (the fixture)
from .conftest import console_login, needs_chromium

pytestmark = pytest.mark.slow
DENIED = "203.0.113.7"


@pytest.fixture
def gateway(gateway_factory: Callable[..., Gateway], worker_factory: Callable[..., Any]) -> Gateway:  # noqa: F811
    """The gateway believes X-Forwarded-For from 127.0.0.1 (so a test request can come "from" another
    address while the console's own requests stay 127.0.0.1's), with a Worker beside it."""
    return gateway_with_worker(gateway_factory, worker_factory, trusted_proxies="127.0.0.1")


@needs_chromium
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_ip_deny_rule_refuses_and_a_webhook_test_arrives_signed_and_logged(
        admin_world: AdminWorld, spawn: Processes, tmp_path: Path, browser_page: Any,  # noqa: F811
        shots: Path, receiver: Receiver) -> None:  # noqa: F811
    from playwright.sync_api import expect

    w = admin_world
    member = {"Authorization": f"Bearer {w.a.people['member'].key}"}

    def me(address: str) -> httpx.Response:
        return httpx.get(w.gw.url + "/deepspace/api/me", headers={**member, "X-Forwarded-For": address})

    assert me(DENIED).status_code == 200
    _proc, url = start_admin(spawn, w.gw.url, tmp_path / "data", "--lang=en")
    page = browser_page
    console_login(page, url, w.platform.email, PASSWORD)
    expect(page.get_by_text(f"Signed in as {w.platform.email}", exact=False)).to_be_visible(timeout=60_000)
    nav = page.locator(".ds-nav")

    nav.get_by_role("button", name="Risk & Policy", exact=True).click()
    page.get_by_placeholder("203.0.113.0/24").fill(DENIED)  # kind ip_rule, scope global, action deny
    page.get_by_role("button", name="Set a policy", exact=True).click()
    expect(page.get_by_text("Saved", exact=True).first).to_be_visible(timeout=60_000)
    expect(page.locator(".tabulator-cell").filter(has_text=f"{DENIED}/32").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "1-risk-ip-deny.png"), full_page=True)
    refused = me(DENIED)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ip_denied"
    assert me("198.51.100.1").status_code == 200  # any other address still gets in

    nav.get_by_role("button", name="System", exact=True).click()
    page.get_by_text("Webhooks", exact=True).first.click()
    page.get_by_placeholder("https://…").fill(receiver.url)
    page.get_by_role("button", name="Add a webhook", exact=True).click()
    secret_box = page.locator(".ds-secret")
    expect(secret_box).to_contain_text("whsec_", timeout=30_000)
    found = re.search(r"whsec_[A-Za-z0-9_\-]+", secret_box.locator("code").first.inner_text())
    assert found is not None
    page.screenshot(path=str(shots / "2-webhook-secret-once.png"), full_page=True)
    page.get_by_role("button", name="Send test event", exact=True).click()
    [got] = receiver.wait_for(1, timeout_s=60)
    assert verify_signature(found.group(0), body=got.body, timestamp=got.headers["x-deepspace-timestamp"],
                            signature_header=got.headers["x-deepspace-signature"])
    assert json.loads(got.body)["type"] == "ping"
    expect(page.locator(".ds-delivery-status")).to_contain_text("succeeded", timeout=30_000)
    expect(page.get_by_text(got.headers["x-deepspace-delivery"], exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "3-webhook-delivery-log.png"), full_page=True)

    # the request log exports through the Worker; its link downloads the file through the console
    nav.get_by_role("button", name="Audit", exact=True).click()
    page.get_by_text("Request log", exact=True).click()
    page.get_by_role("button", name="Export", exact=True).click()
    link = page.locator("a.ds-download")
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download(timeout=30_000) as downloading:
        link.click()
    exported = Path(downloading.value.path()).read_text()
    assert exported.startswith("id,org_id,created_at,") and "ip_denied" in exported  # the refused request
    assert downloading.value.suggested_filename.endswith(".csv")

    # the permissions matrix after switching to Chinese has its rows, not its header alone
    page.locator(".ds-lang").get_by_role("button", name="中文").click()
    nav.get_by_role("button", name="用户", exact=True).click()
    expect(page.locator(".ds-permissions").get_by_text("org_admin.write", exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "4-permissions-zh.png"), full_page=True)
