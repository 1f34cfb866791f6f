"""Core commands: init, migrate, doctor, lab, gateway, simulator (``models`` is in :mod:`.money`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

from ..config import Settings
from ._common import actor, emit


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from ..bootstrap import init_deployment

    result = asyncio.run(init_deployment(
        settings, email=args.email, password=args.password, org_name=args.org, project_name=args.project,
        actor=actor()))
    if not result.created:
        emit(args, result.to_dict(),
              f"Already initialised: admin {result.email}, org {result.org_id}, project {result.project_id}.\n"
              "Nothing was changed. (The API key was shown when init first ran; make another with "
              "`deepspace-lab keys create`.)")
        return 0
    lines = [
        "Initialised DeepSpace Lab.",
        f"  admin email   {result.email}",
        f"  org           {result.org_id}",
        f"  project       {result.project_id}",
        f"  API key       {result.api_key}",
    ]
    if result.password:
        lines.append(f"  password      {result.password}")
    lines.append("The key and password are shown only now: store them somewhere safe.")
    if settings.uses_simulator:
        lines.append("The upstream is the built-in SIMULATED model (no real AI); set "
                     "DEEPSPACE_UPSTREAM_BASE_URL for a real one.")
    emit(args, result.to_dict(), "\n".join(lines))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from ..db.migrate import upgrade

    before, after = upgrade(settings.database_url)
    emit(args, {"before": before, "after": after, "changed": before != after},
          f"Migrated {before or 'empty'} -> {after}." if before != after else f"Already at {after}; nothing to do.")
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from ..doctor import run_checks

    checks = asyncio.run(run_checks(settings))
    lines = []
    for check in checks:
        mark = "ok " if check.ok else "BAD"
        lines.append(f"[{mark}] {check.name}: {check.message}" + (f"\n      fix: {check.fix}" if check.fix else ""))
    ok = all(c.ok for c in checks)
    emit(args, {"ok": ok, "checks": [c.to_dict() for c in checks]}, "\n".join(lines))
    return 0 if ok else 1


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from ..server_extension.standalone import serve_gateway

    if args.upstream_base_url:
        settings = settings.replace(upstream_base_url=args.upstream_base_url)
    asyncio.run(serve_gateway(settings, host=args.host, port=args.port))
    return 0


def cmd_simulator(args: argparse.Namespace, settings: Settings) -> int:
    from ..server_extension.simulator import serve_simulator

    print(f"SIMULATED OpenAI-compatible upstream on http://{args.host}:{args.port}/v1 (no real model)",
          file=sys.stderr)
    try:
        asyncio.run(serve_simulator(host=args.host, port=args.port, token_latency_ms=args.token_latency_ms))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_lab(args: argparse.Namespace, settings: Settings) -> int:
    from ..bootstrap import init_deployment

    result = asyncio.run(init_deployment(settings, email=args.email, password=args.password, actor=actor()))
    if result.created:
        print(f"First run: admin {result.email}" + (f", password {result.password}" if result.password else "")
              + f"\nAPI key (shown once): {result.api_key}\n"
              f"OpenAI base URL: http://127.0.0.1:{args.port}/deepspace/v1")
    from jupyterlab.labapp import LabApp

    # window.jupyterapp lets the workbench's "Insert code" add a cell; a wheel install also sets it
    # in jupyter-config/labconfig/ for a plain `jupyter lab` (an editable install places no such file)
    argv = [f"--port={args.port}", "--ServerApp.jpserver_extensions={'deepspace_lab.server_extension': True}",
            "--LabApp.expose_app_in_browser=True", *args.jupyter_args]
    if args.no_browser:
        argv.append("--no-browser")
    # DESIGN §12.9: the embedded default runs a Worker too (a child process on the same
    # settings), so scheduled roll-ups and exports work with no extra setup.
    # Its workflow steps call this JupyterLab's Gateway unless a Gateway URL is set for them.
    env = {**os.environ, "DEEPSPACE_WORKFLOW_GATEWAY_URL": settings.workflow_gateway_url
           or f"http://127.0.0.1:{args.port}"}
    worker = None if args.no_worker else subprocess.Popen(
        [sys.executable, "-m", "deepspace_lab.cli", "worker"], stdin=subprocess.DEVNULL, env=env)
    try:
        LabApp.launch_instance(argv=argv)
    finally:
        if worker is not None:
            stop_child(worker)
    return 0


def stop_child(proc: subprocess.Popen[bytes], *, timeout_s: float = 15) -> None:
    """SIGINT (a worker finishes the jobs in hand), then SIGKILL if it does not stop in time
    (its jobs then run again elsewhere once their lease lapses)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def register(sub: Any) -> None:
    """Add the core commands to the ``deepspace-lab`` subparsers."""

    p = sub.add_parser("init", help="migrate and create the first admin, org, project, wallet and API key")
    p.add_argument("--email", default="admin@localhost")
    p.add_argument("--password", help="the admin's password (default: generated and shown once)")
    p.add_argument("--org", default="Default org")
    p.add_argument("--project", default="Default project")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("migrate", help="bring the database schema to this version (safe to run concurrently)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("doctor", help="check config, database, migrations, prices, Redis, upstream, storage, worker")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("lab", help="init if needed, then start JupyterLab with the DeepSpace Gateway")
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--email", default="admin@localhost")
    p.add_argument("--password")
    p.add_argument("--no-worker", action="store_true", help="do not start a Worker beside JupyterLab")
    p.add_argument("jupyter_args", nargs="*", help="passed on to JupyterLab (e.g. --ServerApp.token=...)")
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser("gateway", help="run the Gateway without Jupyter (for several processes behind a balancer)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8800)
    p.add_argument("--upstream-base-url", help="overrides DEEPSPACE_UPSTREAM_BASE_URL")
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("simulator", help="run the SIMULATED OpenAI-compatible upstream on its own")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8900)
    p.add_argument("--token-latency-ms", type=float, default=0.0)
    p.set_defaults(func=cmd_simulator)
