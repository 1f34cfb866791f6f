"""The app shell against a real gateway: the header names who is signed in and their scope,
labels the simulated upstream, the navigation has the spec's pages in both languages, the
roles & permissions matrix is the Admin API's, and pages without their routes say so."""

from __future__ import annotations

from deepspace_lab.dashboards import AdminShell, sign_in
from deepspace_lab.dashboards.i18n import TEXT
from deepspace_lab.dashboards.pages import PAGES
from deepspace_lab.dashboards.pages.users import UsersPage

from ..admin.conftest import AdminWorld
from ..identity.conftest import PASSWORD
from .conftest import run

NAV_EN = ["Dashboard", "Users", "Models", "Billing", "Audit", "Risk & Policy", "System"]
NAV_ZH = ["仪表盘", "用户", "模型", "计费", "审计", "风控与策略", "系统"]


def test_the_shell_for_an_org_admin_in_both_languages(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        session = await sign_in(w.gw.url, w.a.people["admin"].email, PASSWORD)
        try:
            shell = AdminShell(session.client, session.identity, lang="en")
            await shell.load()
            assert list(shell.nav.options) == NAV_EN and shell.nav.value == "dashboard"
            who = shell.header.objects[0].object
            assert w.a.people["admin"].email in who and "org admin: org org a only" in who
            (banner,) = shell.banner.objects
            assert "SIMULATED upstream" in banner.object  # the test gateway runs the simulator
            shell.nav.value = "users"
            users = shell.current
            assert isinstance(users, UsersPage)
            await users.load()
            frame = users.matrix_table.value
            assert list(frame.columns) == ["Action", "viewer", "member", "admin", "owner", "Key scope", "Note"]
            row = frame[frame["Action"] == "org_admin.read"].iloc[0]
            assert (row["member"], row["admin"], row["owner"]) == ("", "✓", "✓")
            assert row["Note"] == "platform admins; org admins on their own org"
            assert frame[frame["Action"] == "keys.manage"].iloc[0]["admin"] == "✓"
            shell.lang_switch.value = "zh"
            assert list(shell.nav.options) == NAV_ZH and shell.nav.value == "users"  # same page, new words
            assert "组织管理员：仅组织 org a" in shell.header.objects[0].object
            users = shell.current
            await users.load()
            assert list(users.matrix_table.value.columns)[0] == "操作"
        finally:
            await session.close()

    run(scenario)


def test_a_platform_admin_is_named_as_such_in_chinese_with_every_page(admin_world: AdminWorld) -> None:
    w = admin_world

    async def scenario() -> None:
        session = await sign_in(w.gw.url, w.platform.email, PASSWORD)
        try:
            shell = AdminShell(session.client, session.identity, lang="zh")
            assert "平台管理员：全部组织" in shell.header.objects[0].object
            assert list(shell.nav.options) == NAV_ZH and list(shell.nav.options.values()) == [p.key for p in PAGES]
            for page in shell.pages.values():  # every page, a platform admin's with every part, renders in zh
                assert page.text.lang == "zh"
                page.body().get_root()
        finally:
            await session.close()

    run(scenario)


def test_every_text_exists_in_both_languages() -> None:
    assert set(TEXT["en"]) == set(TEXT["zh"])
    assert [p.key for p in PAGES] == ["dashboard", "users", "models", "billing", "audit", "risk", "system"]
