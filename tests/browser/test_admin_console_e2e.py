"""The admin console in a real headless Chromium (Debian's, driven by Playwright): a member is
refused at the login page; a platform admin signs in, sees the shell (who, scope, the simulated
upstream, the seven pages), the roles & permissions matrix and the wallets; switching to Chinese changes
the labels; logout ends the session. Screenshots are kept under the test's tmp dir (the path
is printed); ``docs/admin.png`` is one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..admin.conftest import AdminWorld, admin_world  # noqa: F401  (the fixture)
from ..cli.conftest import Processes, spawn  # noqa: F401  (the fixture)
from ..dashboards.test_server import start_admin
from ..identity.conftest import PASSWORD
from .conftest import console_login, needs_chromium

pytestmark = pytest.mark.slow


@needs_chromium
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_admin_console_login_shell_permissions_and_chinese(admin_world: AdminWorld,  # noqa: F811
                                                           spawn: Processes, tmp_path: Path,  # noqa: F811
                                                           browser_page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    w = admin_world
    _proc, url = start_admin(spawn, w.gw.url, tmp_path / "data", "--lang=en")
    page = browser_page
    console_login(page, url, w.a.people["member"].email, PASSWORD)
    expect(page.get_by_role("alert")).to_contain_text("for platform admins and org admins only")
    page.screenshot(path=str(shots / "1-member-refused.png"))

    page.fill("input[name=username]", w.platform.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_text(f"Signed in as {w.platform.email}", exact=False)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("platform admin: every org", exact=False)).to_be_visible()
    expect(page.get_by_text("SIMULATED upstream", exact=False)).to_be_visible(timeout=30_000)
    nav = page.locator(".ds-nav")
    for label in ("Dashboard", "Users", "Models", "Billing", "Audit", "Risk & Policy", "System"):
        expect(nav.get_by_role("button", name=label, exact=True)).to_be_visible()
    expect(page.locator(".ds-figures")).to_contain_text("Requests", timeout=30_000)  # the Dashboard
    nav.get_by_role("button", name="Users", exact=True).click()
    expect(page.get_by_text("Roles & permissions", exact=True)).to_be_visible(timeout=30_000)
    matrix = page.locator(".ds-permissions")
    expect(matrix.get_by_text("org_admin.write", exact=True)).to_be_visible(timeout=30_000)
    expect(matrix.get_by_text("platform admins only", exact=True).first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "2-permissions-en.png"), full_page=True)
    nav.get_by_role("button", name="Billing", exact=True).click()  # wallets, paged through the Admin API
    expect(page.get_by_text("org a", exact=True).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("1,000,000", exact=True).first).to_be_visible()
    page.screenshot(path=str(shots / "3-billing-en.png"), full_page=True)

    page.locator(".ds-lang").get_by_role("button", name="中文").click()
    expect(page.get_by_text("交易记录", exact=True)).to_be_visible(timeout=30_000)
    expect(nav.get_by_role("button", name="风控与策略", exact=True)).to_be_visible()
    expect(page.get_by_text("平台管理员：全部组织", exact=False)).to_be_visible()
    nav.get_by_role("button", name="用户", exact=True).click()
    expect(page.get_by_text("角色与权限", exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "4-permissions-zh.png"), full_page=True)

    page.get_by_text("退出", exact=True).click()
    expect(page.locator("input[name=password]")).to_be_visible(timeout=30_000)
    page.goto(url + "/")  # the session is gone: back to the login page
    expect(page.locator("input[name=password]")).to_be_visible(timeout=30_000)
