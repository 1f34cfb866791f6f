"""Sign-in for the console (a bokeh auth provider): a login page whose form is checked against
the Gateway (login, then the Admin API), a signed, HTTP-only cookie that holds only the
console session's id, and logout. The tornado application reaches the provider — and so the
session store and the Gateway URL — as ``self.application.auth_provider``."""

from __future__ import annotations

import html
from typing import Any

import tornado.web
from bokeh.server.auth_provider import AuthProvider

from .i18n import Text, pick_language
from .session import AdminRefused, SessionStore, sign_in

COOKIE = "deepspace_admin"
COOKIE_DAYS = 1
LOGIN_URL = "/login"
LOGOUT_URL = "/logout"
STATUS = {"refused_not_admin": 403, "refused_rate_limited": 429, "refused_unreachable": 502}

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; }}
form {{ max-width: 360px; margin: 10vh auto; background: #fff; padding: 2em; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
label {{ display: block; margin-top: 1em; }} input {{ width: 100%; padding: .5em; box-sizing: border-box; }}
button {{ margin-top: 1.5em; padding: .6em 1.2em; }} .error {{ color: #b00020; margin-top: 1em; }}
.lang {{ float: right; font-size: .9em; }}
</style></head>
<body><form method="post" action="{action}">
<a class="lang" href="{action}?lang={other}">{other_name}</a>
<h2>{title}</h2><p>{intro}</p>
<label>{email_label}<input name="username" type="email" autocomplete="username" value="{email}" required></label>
<label>{password_label}<input name="password" type="password" autocomplete="current-password" required></label>
{error}
<input type="hidden" name="lang" value="{lang}">
<button type="submit">{login}</button>
</form></body></html>
"""


class AdminAuthProvider(AuthProvider):
    def __init__(self, *, store: SessionStore, gateway_url: str, lang: str | None = None) -> None:
        self.store, self.gateway_url, self.lang = store, gateway_url, lang
        super().__init__()

    def session_id(self, handler: tornado.web.RequestHandler) -> str | None:
        raw = handler.get_secure_cookie(COOKIE, max_age_days=COOKIE_DAYS)
        return raw.decode() if raw else None

    @property
    def get_user(self) -> Any:
        def get_user(handler: tornado.web.RequestHandler) -> str | None:
            sid = self.session_id(handler)
            return sid if self.store.get(sid) is not None else None

        return get_user

    @property
    def login_url(self) -> str:
        return LOGIN_URL

    @property
    def login_handler(self) -> type[tornado.web.RequestHandler]:
        return LoginHandler

    @property
    def logout_url(self) -> str:
        return LOGOUT_URL

    @property
    def logout_handler(self) -> type[tornado.web.RequestHandler]:
        return LogoutHandler


class ConsoleHandler(tornado.web.RequestHandler):
    """A page of the console server outside Panel: it reaches the sign-in provider."""

    @property
    def provider(self) -> AdminAuthProvider:
        provider: AdminAuthProvider = self.application.auth_provider  # type: ignore[attr-defined]
        return provider

    def lang(self) -> str:
        asked = self.get_argument("lang", None)
        return pick_language(asked or self.provider.lang, self.request.headers.get("Accept-Language"))


class LoginHandler(ConsoleHandler):
    def get(self) -> None:
        self.render_form(self.lang())

    def render_form(self, lang: str, *, email: str = "", reason: str | None = None) -> None:
        t = Text(lang)
        other = "zh" if lang == "en" else "en"
        error = (f'<p class="error" role="alert">{html.escape(t(reason, url=self.provider.gateway_url))}</p>'
                 if reason else "")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(PAGE.format(lang=lang, title=html.escape(t("title")), action=LOGIN_URL, other=other,
                               other_name="中文" if other == "zh" else "English", intro=html.escape(t("login_intro")),
                               email_label=html.escape(t("email")), password_label=html.escape(t("password")),
                               email=html.escape(email, quote=True), error=error, login=html.escape(t("login"))))

    async def post(self) -> None:
        email = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        lang = pick_language(self.get_body_argument("lang", None) or self.provider.lang,
                             self.request.headers.get("Accept-Language"))
        try:
            session = await sign_in(self.provider.gateway_url, email, password)
        except AdminRefused as refused:
            self.set_status(STATUS.get(refused.reason, 401))
            self.render_form(lang, email=email, reason=refused.reason)
            return
        old = self.provider.store.pop(self.provider.session_id(self))
        if old is not None:
            await old.close()
        sid = self.provider.store.add(session)
        self.set_secure_cookie(COOKIE, sid, expires_days=COOKIE_DAYS, httponly=True, samesite="Strict",
                               secure=self.request.protocol == "https", path="/")
        self.set_cookie("deepspace_admin_lang", lang, path="/", samesite="Strict")
        self.redirect("/")


class LogoutHandler(ConsoleHandler):
    async def get(self) -> None:
        session = self.provider.store.pop(self.provider.session_id(self))
        if session is not None:
            await session.close()
        self.clear_cookie(COOKIE, path="/")
        self.redirect(LOGIN_URL)
