"""``deepspace-lab``: the operator's command line (the composition root).

Commands call the same services as the HTTP layer; audit actor ``cli:<os user>``. Each area
registers its commands from its own module (:data:`COMMAND_MODULES`); the outer packages
(server extension, JupyterLab) are imported lazily, only by the commands that serve.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..config import Settings
from ..errors import DeepSpaceError
from ..logs import configure_logging
from . import _core, admin, billing, identity, money, observe, policy, webhooks, worker, workflow

#: Modules with a ``register(subparsers)`` function, in help order.
COMMAND_MODULES = (_core, identity, billing, policy, worker, money, observe, workflow, webhooks, admin)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepspace-lab", description="DeepSpace Lab: research workbench and Gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Only `lab` passes unknown options on (to JupyterLab, e.g. --ServerApp.token=...).
        if args.command != "lab":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.jupyter_args = [*args.jupyter_args, *(extra[1:] if extra[0] == "--" else extra)]
    try:
        settings = Settings.from_env()
        configure_logging(level=settings.log_level, fmt=settings.log_format)
        return int(args.func(args, settings))
    except DeepSpaceError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_dict(), indent=2))
        else:
            print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
