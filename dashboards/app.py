"""The console as its own process: a Panel server on its own tornado loop, talking to the
Gateway only through :mod:`deepspace_lab.client`, holding no database or upstream secret —
only its cookie secret (DESIGN §12.1)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn
from tornado.ioloop import IOLoop
from tornado.web import decode_signed_value

from .auth import COOKIE, COOKIE_DAYS, LOGOUT_URL, AdminAuthProvider
from .downloads import download_patterns
from .i18n import pick_language
from .session import SessionStore
from .shell import AdminShell

COOKIE_SECRET_ENV = "DEEPSPACE_ADMIN_COOKIE_SECRET"
COOKIE_SECRET_FILE = "admin_cookie_secret"


def cookie_secret(data_dir: Path, environ: Any = None) -> str:
    """``DEEPSPACE_ADMIN_COOKIE_SECRET``, else a secret generated once into the data dir (0600)."""
    env = os.environ if environ is None else environ
    if env.get(COOKIE_SECRET_ENV):
        return str(env[COOKIE_SECRET_ENV])
    path = data_dir / COOKIE_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


def app_factory(store: SessionStore, *, secret: str, lang: str | None) -> Callable[[], Any]:
    """The function Panel calls for each browser session: the shell of the admin signed in
    with this session's cookie (the auth provider has already refused anyone else)."""

    def make() -> Any:
        pn.extension("tabulator")  # pages add Tabulators after the first render: load its JS up front
        raw = pn.state.cookies.get(COOKIE)
        value = decode_signed_value(secret, COOKIE, raw, max_age_days=COOKIE_DAYS) if raw else None
        session = store.get(value.decode() if value else None)
        if session is None:
            return pn.pane.HTML(f'<a href="{LOGOUT_URL}">Sign in again</a>')
        chosen = pn.state.cookies.get("deepspace_admin_lang") or lang
        shell = AdminShell(session.client, session.identity,
                           lang=pick_language(chosen, str(pn.state.headers.get("Accept-Language") or "")),
                           logout_url=LOGOUT_URL)
        pn.state.onload(shell.load)
        return shell

    return make


def make_server(*, gateway_url: str, port: int, address: str = "127.0.0.1", secret: str,
                lang: str | None = None, allow_origins: tuple[str, ...] = (), loop: IOLoop | None = None) -> Any:
    """A bokeh/Panel server (not started) serving the console at ``/``."""
    store = SessionStore()
    origins = [f"127.0.0.1:{port}", f"localhost:{port}", *allow_origins]
    if address not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
        origins.append(f"{address}:{port}")
    return pn.io.server.get_server({"/": app_factory(store, secret=secret, lang=lang)}, port=port, address=address,
                                   websocket_origin=origins, loop=loop or IOLoop.current(), start=False,
                                   title="DeepSpace Lab admin", cookie_secret=secret,
                                   extra_patterns=download_patterns(),
                                   auth_provider=AdminAuthProvider(store=store, gateway_url=gateway_url, lang=lang))


def serve_admin(*, gateway_url: str, port: int, address: str, secret: str, lang: str | None = None,
                allow_origins: tuple[str, ...] = ()) -> None:
    """Run the console until interrupted (its own IOLoop in this process)."""
    loop = IOLoop()
    loop.make_current()
    server = make_server(gateway_url=gateway_url, port=port, address=address, secret=secret, lang=lang,
                         allow_origins=allow_origins, loop=loop)
    server.start()
    try:
        loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
