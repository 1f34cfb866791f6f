"""``deepspace-lab admin``: the admin console (Panel) as its own process, talking to a Gateway
over HTTP. It holds no database or upstream secret, only its cookie secret."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import Settings

#: where ``deepspace-lab lab`` serves the embedded Gateway by default
EMBEDDED_GATEWAY_URL = "http://127.0.0.1:8888"


def gateway_for(args: argparse.Namespace, settings: Settings) -> str:
    """``--gateway``, else the Gateway the config names (``DEEPSPACE_GATEWAY_URL``), else the
    embedded default's."""
    return str(args.gateway or settings.gateway_url or EMBEDDED_GATEWAY_URL)


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from ..dashboards.app import cookie_secret, serve_admin

    gateway = gateway_for(args, settings)
    secret = cookie_secret(settings.data_dir)
    print(f"DeepSpace Lab admin console on http://{args.host}:{args.port}/ (Gateway: {gateway})", file=sys.stderr,
          flush=True)
    serve_admin(gateway_url=gateway, port=args.port, address=args.host, secret=secret, lang=args.lang,
                allow_origins=tuple(args.allow_websocket_origin or ()))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("admin", help="serve the admin console (Panel) for platform and org admins")
    p.add_argument("--port", type=int, default=8890)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--gateway", help=f"the Gateway's URL (default: DEEPSPACE_GATEWAY_URL, else {EMBEDDED_GATEWAY_URL})")
    p.add_argument("--lang", choices=("en", "zh"), help="UI language (default: the browser's)")
    p.add_argument("--allow-websocket-origin", action="append", metavar="HOST:PORT",
                   help="another host:port browsers reach the console at (e.g. behind a proxy)")
    p.set_defaults(func=cmd_admin)
