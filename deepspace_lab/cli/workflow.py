"""``deepspace-lab workflow``: validate, run (saving the file as the project's next version),
status, list, cancel, resume, fork, and the schema. Runs are started as a user (``--email``,
default the one ``init`` made) in a project of theirs; the operator's reads see every org."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..config import Settings
from ..errors import InvalidRequest, NotFound
from ..tracing import new_trace_id
from ._common import actor, emit

FINISHED = ("succeeded", "failed", "cancelled")


def _params(pairs: list[list[str]] | None) -> dict[str, Any]:
    return {key: value for key, value in (pairs or [])}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}", code="file_unreadable", param="FILE") from None


async def _starter(session: Any, email: str, project_id: str | None) -> tuple[str, str, str]:
    """(user id, org id, project id) a CLI run is started as."""
    from ..auth.models import OrgMember, Project, User

    user = (await session.execute(select(User).where(User.email == email.lower()))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {email!r}", code="user_not_found", param="email")
    orgs = [m.org_id for m in (await session.execute(select(OrgMember).where(
        OrgMember.user_id == user.id, OrgMember.role.in_(("member", "admin", "owner"))))).scalars()]
    query = select(Project).where(Project.org_id.in_(orgs))
    if project_id is not None:
        query = query.where(Project.id == project_id)
    project = (await session.execute(query.order_by(Project.created_at))).scalars().first()
    if project is None:
        raise NotFound(f"{email} may run nothing in {'project ' + project_id if project_id else 'any project'}",
                       code="project_not_found", param="project")
    return user.id, project.org_id, project.id


def _line(run: dict[str, Any]) -> str:
    steps = "  ".join(f"{s['step_id']}:{s['state']}" for s in run.get("steps", []))
    error = f"  error: {run['error_code']}: {run['error']}" if run.get("error") else ""
    return f"{run['id']}  {run['name']}  {run['state']}  cost {run['cost_micros']} µ  {steps}{error}"


def cmd_workflow(args: argparse.Namespace, settings: Settings) -> int:
    from ..db import make_async_engine, make_sessionmaker
    from ..jobs import JobQueue
    from ..workflows import engine as wf
    from ..workflows import service
    from ..workflows.definitions import parse_definition, workflow_schema

    if args.workflow_cmd == "schema":
        print(json.dumps(workflow_schema(), indent=2))
        return 0
    if args.workflow_cmd == "validate":
        fmt, definition = parse_definition(_read(args.file), filename=args.file)
        emit(args, {"valid": True, "format": fmt, "definition": definition},
             f"{args.file}: valid {fmt} workflow {definition['name']!r}, {len(definition['steps'])} step(s)")
        return 0

    async def get(engine: Any, run_id: str) -> dict[str, Any]:
        async with engine.connect() as conn:
            run = await wf.load_run(conn, run_id)
            return service.run_dict(run, await wf.load_steps(conn, run_id))

    async def work() -> Any:
        engine = make_async_engine(settings.database_url)
        queue = JobQueue(settings)
        try:
            if args.workflow_cmd == "run":
                source = _read(args.file)
                async with make_sessionmaker(engine)() as session:
                    user_id, org_id, project_id = await _starter(session, args.email, args.project)
                    workflow, version = await service.save_workflow(
                        session, org_id=org_id, project_id=project_id, source=source, filename=args.file,
                        created_by=actor())
                    await session.commit()
                run = await wf.start_run(engine, queue, settings, org_id=org_id, project_id=project_id,
                                         user_id=user_id, definition=version["definition"], inputs=_params(args.param),
                                         trace_id=new_trace_id(), created_by=actor(), workflow_id=workflow["id"],
                                         version_id=version["id"], budget_micros=args.budget_micros)
                return await get(engine, run["id"])
            if args.workflow_cmd == "list":
                async with engine.connect() as conn:
                    if args.org:
                        return (await service.list_runs(conn, org_id=args.org, state=args.state,
                                                        limit=args.limit))[0]
                    from ..workflows.engine import R

                    query = select(R).order_by(R.c.created_at.desc()).limit(args.limit)
                    if args.state:
                        query = query.where(R.c.state == args.state)
                    return [service.run_dict(dict(r._mapping)) for r in (await conn.execute(query)).all()]
            run = await get(engine, args.run_id)
            async with engine.connect() as conn:
                org_id = (await wf.load_run(conn, args.run_id))["org_id"]
            if args.workflow_cmd == "cancel":
                await wf.cancel_run(engine, queue, settings, org_id=org_id, run_id=args.run_id)
            elif args.workflow_cmd == "resume":
                await wf.resume_run(engine, queue, settings, org_id=org_id, run_id=args.run_id)
            elif args.workflow_cmd == "fork":
                async with engine.connect() as conn:
                    user_id = (await wf.load_run(conn, args.run_id))["user_id"]
                forked = await wf.fork_run(engine, queue, settings, org_id=org_id, run_id=args.run_id,
                                           from_step=args.from_step, inputs=_params(args.param),
                                           trace_id=new_trace_id(), user_id=user_id, created_by=actor())
                return await get(engine, forked["id"])
            else:
                return run
            return await get(engine, args.run_id)
        finally:
            queue.close()
            await engine.dispose()

    result = asyncio.run(work())
    if args.workflow_cmd == "list":
        emit(args, result, "\n".join(_line(r) for r in result) or "no runs")
        return 0
    waited = getattr(args, "wait", False)
    if waited and result["state"] not in FINISHED:
        result = _wait(settings, result["id"], quiet=args.json, get=get)
    emit(args, result, _line(result))
    return 1 if waited and result["state"] != "succeeded" else 0


def _wait(settings: Settings, run_id: str, *, quiet: bool, get: Any) -> dict[str, Any]:
    """Poll the run until it ends, printing each change (not under --json)."""
    from ..db import make_async_engine

    async def watch() -> dict[str, Any]:
        engine = make_async_engine(settings.database_url)
        shown = ""
        try:
            while True:
                run: dict[str, Any] = await get(engine, run_id)
                line = _line(run)
                if line != shown and not quiet:
                    print(line, file=sys.stderr)
                    shown = line
                if run["state"] in FINISHED:
                    return run
                await asyncio.sleep(0.25)
        finally:
            await engine.dispose()

    return asyncio.run(watch())


def register(sub: Any) -> None:
    p = sub.add_parser("workflow", help="workflows: validate, run, status, list, cancel, resume, fork, schema")
    wsub = p.add_subparsers(dest="workflow_cmd", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=cmd_workflow)

    q = wsub.add_parser("validate", help="check a definition (YAML or JSON) against the schema")
    q.add_argument("file")
    common(q)
    q = wsub.add_parser("run", help="save FILE as the project's next version and start a run")
    q.add_argument("file")
    q.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"), help="an input of the run")
    q.add_argument("--wait", action="store_true", help="wait for the run to end (exit 1 unless it succeeded)")
    q.add_argument("--email", default="admin@localhost", help="the user the run is started as")
    q.add_argument("--project", help="project id (default: the user's first)")
    q.add_argument("--budget-micros", type=int, help="stop before the run's cost passes this")
    common(q)
    for name, text in (("status", "a run and its steps"), ("cancel", "cancel a running run"),
                       ("resume", "resume a run from its last finished steps")):
        q = wsub.add_parser(name, help=text)
        q.add_argument("run_id", metavar="RUN")
        if name in ("status", "resume"):
            q.add_argument("--wait", action="store_true", help="wait for the run to end")
        common(q)
    q = wsub.add_parser("fork", help="a new run from a step with edited inputs (earlier steps reused)")
    q.add_argument("run_id", metavar="RUN")
    q.add_argument("--from", dest="from_step", required=True, metavar="STEP")
    q.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"))
    q.add_argument("--wait", action="store_true")
    common(q)
    q = wsub.add_parser("list", help="runs, newest first")
    q.add_argument("--org", help="only this org")
    q.add_argument("--state", choices=("running", "cancelling", "succeeded", "failed", "cancelled"))
    q.add_argument("--limit", type=int, default=20)
    common(q)
    q = wsub.add_parser("schema", help="print the JSON Schema of workflow definitions")
    q.set_defaults(func=cmd_workflow)
