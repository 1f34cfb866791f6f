"""The workbench's Profile tab links the admin console (``DEEPSPACE_ADMIN_URL``) for admins."""

from __future__ import annotations

from typing import Any

import pytest

from deepspace_lab.widgets import ProfileView, Text, UserStore

URL = "http://127.0.0.1:8890/"


def me(role: str, *, platform: bool = False) -> dict[str, Any]:
    return {"user": {"email": "a@example.org", "is_platform_admin": platform}, "role": role, "org_id": "org_1"}


def test_admins_see_the_admin_console_link_others_do_not() -> None:
    store = UserStore()
    view = ProfileView(store, None, text=Text("en"), admin_url=URL)  # type: ignore[arg-type]
    assert view.admin_link.value == ""  # nobody signed in
    for who, shown in ((me("member"), False), (me("viewer", platform=True), True), (me("admin"), True),
                       (me("owner"), True)):
        store.me = who
        assert (URL in view.admin_link.value) is shown, who
    assert 'target="_blank"' in view.admin_link.value and "Admin console" in view.admin_link.value


def test_the_link_comes_from_the_environment_and_is_absent_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSPACE_ADMIN_URL", URL)
    store = UserStore()
    view = ProfileView(store, None, text=Text("zh"))  # type: ignore[arg-type]
    store.me = me("owner")
    assert URL in view.admin_link.value and "管理后台" in view.admin_link.value
    monkeypatch.delenv("DEEPSPACE_ADMIN_URL")
    view = ProfileView(UserStore(), None, text=Text("en"))  # type: ignore[arg-type]
    view.user.me = me("owner")
    assert view.admin_link.value == ""
