"""The ``notebook`` step kind: papermill runs a notebook as one step of a workflow run.

Step fields (:data:`SCHEMA`):

- ``notebook`` — the ``.ipynb`` to run: a path on the machine that checks and runs the step,
  absolute or relative to the working directory of that process (the CLI and the worker are
  started from the project folder; an engine that loads a definition from a file may make the
  path absolute against the file's folder first). The kernel runs in the notebook's folder.
- ``parameters`` — values for the notebook's ``parameters`` cell (templated by the engine).
  ``check`` refuses a name the cell does not declare (papermill would only warn), and a
  missing required one: a name declared with a type and no value (``plan: str``). A literal
  whose parameter is annotated ``int``/``float``/``str``/``bool``/``list``/``dict`` must have
  that type.
- ``kernel`` — a kernelspec name (default: the notebook's own).
- ``cell_timeout_s`` — papermill's per-cell limit. The whole step's limit is the engine's
  ``timeout_s`` (``ctx.deadline``), enforced here by the supervisor.
- ``outputs`` — names the notebook must record; a run that leaves one out fails
  (``notebook_output_missing``). Without it, whatever the notebook recorded is the output.

Outputs come back through :func:`deepspace_lab.client.workflow_output` (a display with its own
MIME type in the executed notebook, read back after the run): nothing but the notebook itself
carries them, so they survive in the stored artifact and need no side channel.

Injection: the kernel's environment is an allow-list of the worker's (PATH, HOME, locale,
Python and Jupyter paths: never a database or Redis URL, an upstream key or the secret key —
DESIGN §12.1) plus ``DEEPSPACE_GATEWAY_URL``, ``DEEPSPACE_API_KEY`` (the run-scoped key) and
``DEEPSPACE_TRACE_ID``, which :mod:`deepspace_lab.client` reads with no code in the notebook,
and ``DEEPSPACE_IDEMPOTENCY_PREFIX``: the client numbers the notebook's chat calls
``ctx.idempotency_key(0)``, ``(1)``, … so a retried attempt that makes the same calls in the same
order replays them instead of paying again (DESIGN §12.8).
They are environment, not papermill parameters, because papermill writes parameters into the
output notebook, which is stored.

Progress: one ``ctx.progress`` per cell as it starts (papermill's cell hook, in the child).
The executed notebook is stored with ``ctx.save_artifact`` whatever the outcome (after a kill,
as far as papermill had saved it: papermill saves after each cell).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import nbformat

from ..client import OUTPUT_MIME
from .steps import StepContext, StepDefinitionError, StepFailed, StepKind, StepOutcome
from .supervisor import Supervised, supervise

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["notebook"],
    "properties": {
        "notebook": {"type": "string", "pattern": r"\.ipynb$",
                     "description": "path of the notebook: absolute, or relative to the working directory"},
        "parameters": {"type": "object", "description": "values for the notebook's parameters cell"},
        "kernel": {"type": "string", "description": "kernelspec name (default: the notebook's)"},
        "cell_timeout_s": {"type": "number", "exclusiveMinimum": 0, "description": "papermill's per-cell limit"},
        "outputs": {"type": "array", "items": {"type": "string"},
                    "description": "output names the notebook must record with workflow_output()"},
    },
}

#: What a kernel may keep of the worker's environment (plus ``LC_*``); everything else is dropped.
ENV_ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "SHELL", "TERM",
    "PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
    "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR", "SYSTEMROOT",
})
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "list": (list,), "dict": (dict,)}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRACEBACK_LINES = 12
TRACEBACK_CHARS = 3000
#: the most a step's outputs may weigh as JSON (they are kept with the run; files go to artifacts)
MAX_OUTPUTS_BYTES = 1024 * 1024
IPYNB = "application/x-ipynb+json"


def notebook_path(step: dict[str, Any]) -> Path:
    raw = step.get("notebook")
    if not isinstance(raw, str) or not raw.strip().endswith(".ipynb"):
        raise StepDefinitionError("`notebook` is the path of an .ipynb file", field="notebook")
    path = Path(raw.strip()).expanduser().absolute()
    if not path.is_file():
        raise StepDefinitionError(f"no notebook at {path}", field="notebook")
    return path


def _parameters_cell(nb: Any) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return str(cell.source)
    return None


def declared_parameters(path: Path) -> tuple[dict[str, str], set[str]]:
    """The notebook's parameters (name → inferred type name) and the required ones (declared
    with a type and no value). papermill's ``inspect_notebook`` does not see the latter."""
    import papermill

    try:
        nb = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
        inspected = papermill.inspect_notebook(str(path))
    except Exception as exc:  # not JSON, not a notebook
        raise StepDefinitionError(f"{path} cannot be read as a notebook: {exc}", field="notebook") from None
    declared = {name: str(info.get("inferred_type_name") or "None") for name, info in inspected.items()}
    required: set[str] = set()
    language = nb.metadata.get("kernelspec", {}).get("language") or nb.metadata.get("language_info", {}).get("name")
    if language not in (None, "python"):  # other languages: what papermill saw is all there is
        return declared, required
    try:
        tree = ast.parse(_parameters_cell(nb) or "")
    except SyntaxError:  # IPython syntax (a magic): only what papermill saw
        return declared, required
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and node.value is None and isinstance(node.target, ast.Name):
            required.add(node.target.id)
            declared.setdefault(node.target.id, ast.unparse(node.annotation))
    return declared, required


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def check(step: dict[str, Any]) -> None:
    """Refuse, before the run is queued, what papermill would only find out (or only warn of)."""
    path = notebook_path(step)
    params = step.get("parameters", {})
    if not isinstance(params, dict):
        raise StepDefinitionError("`parameters` is a mapping of name to value", field="parameters")
    declared, required = declared_parameters(path)
    for name in params:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none (no cell tagged `parameters`)"
            raise StepDefinitionError(f"unknown parameter {name!r}: {path.name} declares {known}",
                                      field=f"parameters.{name}")
    for name in sorted(required - set(params)):
        raise StepDefinitionError(f"parameter {name!r} is required by {path.name} (declared with no value)",
                                  field=f"parameters.{name}")
    for name, value in params.items():
        expected = _TYPES.get(declared[name])
        if expected and not _templated(value) and value is not None and (
                not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)):
            raise StepDefinitionError(f"parameter {name!r} is a {declared[name]} in {path.name}, got {value!r}",
                                      field=f"parameters.{name}")
    kernel = step.get("kernel")
    if kernel is not None:
        from jupyter_client.kernelspec import KernelSpecManager

        if not isinstance(kernel, str) or kernel not in KernelSpecManager().find_kernel_specs():
            raise StepDefinitionError(f"no kernel named {kernel!r} on this machine", field="kernel")


def kernel_env(base: Mapping[str, str], *, gateway_url: str, api_key: str, trace_id: str,
               idempotency_prefix: str) -> dict[str, str]:
    """The environment papermill and its kernel get: ``base`` cut to :data:`ENV_ALLOWED`, plus
    what :mod:`deepspace_lab.client` reads to reach the Gateway as the run."""
    env = {k: v for k, v in base.items() if k in ENV_ALLOWED or k.startswith("LC_")}
    env.update(DEEPSPACE_GATEWAY_URL=gateway_url, DEEPSPACE_API_KEY=api_key, DEEPSPACE_TRACE_ID=trace_id,
               DEEPSPACE_IDEMPOTENCY_PREFIX=idempotency_prefix, PYTHONUNBUFFERED="1")
    return env


def read_outputs(nb: Any) -> dict[str, Any]:
    """Every ``workflow_output`` of an executed notebook, in order (a later name wins)."""
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            payload = output.get("data", {}).get(OUTPUT_MIME)
            if isinstance(payload, dict) and isinstance(payload.get("name"), str):
                found[payload["name"]] = payload.get("value")
    return found


def short_traceback(lines: list[str]) -> str:
    text = _ANSI.sub("", "\n".join(lines))
    tail = "\n".join(text.splitlines()[-TRACEBACK_LINES:])
    return tail[-TRACEBACK_CHARS:]


def _error_detail(result: Supervised) -> dict[str, Any]:
    error = next((e for e in reversed(result.events) if e.get("event") == "error"), None)
    if error is None:
        return {"ename": "RunnerExited", "evalue": f"papermill exited with code {result.returncode}",
                "stderr": _ANSI.sub("", result.stderr_tail)[-TRACEBACK_CHARS:]}
    return {"cell_index": error.get("cell_index"), "execution_count": error.get("execution_count"),
            "ename": error.get("ename"), "evalue": error.get("evalue"),
            "traceback": short_traceback([str(line) for line in error.get("traceback") or []])}


def _deadline(ctx: StepContext) -> Callable[[], float | None]:
    """``ctx.deadline`` as it is at each look (the engine may move it), else the step's own
    ``timeout_s`` from now."""
    timeout_s = ctx.spec.get("timeout_s")
    fallback = time.monotonic() + float(timeout_s) if isinstance(timeout_s, (int, float)) else None
    return lambda: ctx.deadline if ctx.deadline is not None else fallback


async def run(ctx: StepContext) -> StepOutcome:
    """One attempt: papermill in a supervised child; the executed notebook stored as an artifact."""
    spec = ctx.spec
    try:  # in a thread: the first papermill import and the notebook read block (the worker's loop is shared)
        await asyncio.to_thread(check, spec)
    except StepDefinitionError as exc:
        raise StepFailed(str(exc), code="invalid_step", detail={"field": exc.field}, retryable=False) from None
    source = notebook_path(spec)
    with tempfile.TemporaryDirectory(prefix="deepspace-notebook-") as tmp:
        work = Path(tmp)
        output = work / "output.ipynb"
        (work / "parameters.json").write_text(json.dumps(spec.get("parameters") or {}), encoding="utf-8")
        argv = [sys.executable, "-m", "deepspace_lab.workflows._nbrunner", "--input", str(source),
                "--output", str(output), "--parameters", str(work / "parameters.json"), "--cwd", str(source.parent)]
        if spec.get("kernel"):
            argv += ["--kernel", str(spec["kernel"])]
        if spec.get("cell_timeout_s"):
            argv += ["--cell-timeout-s", str(spec["cell_timeout_s"])]

        async def on_event(event: dict[str, Any]) -> None:
            if event.get("event") == "cell" and isinstance(event.get("index"), int) and event.get("total"):
                index, total = event["index"], int(event["total"])
                await ctx.progress(f"cell {index + 1} of {total}", index / total)

        # the client numbers the notebook's chat calls <prefix>:0, :1, … = ctx.idempotency_key(i)
        env = kernel_env(os.environ, gateway_url=ctx.gateway_url, api_key=ctx.api_key, trace_id=ctx.trace_id,
                         idempotency_prefix=ctx.idempotency_key(0).rpartition(":")[0])
        result = await supervise(argv, env=env, cwd=tmp, stderr_path=work / "papermill.log",
                                 deadline=_deadline(ctx), cancelled=ctx.cancelled, on_event=on_event)
        data = output.read_bytes() if output.is_file() else None
        artifacts = []
        if data is not None:
            name = f"{source.stem}.{ctx.step_id}.{ctx.attempt}.ipynb"
            artifacts.append(await ctx.save_artifact(name, data, IPYNB))
    executed = await asyncio.to_thread(_parse_notebook, data) if data is not None else None
    return _outcome(ctx, source, result, executed, artifacts)


def _parse_notebook(data: bytes) -> Any:
    try:
        return nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except Exception:  # cut short mid-write by a kill: the artifact is stored as it is
        return None


def _outcome(ctx: StepContext, source: Path, result: Supervised, executed: Any,
             artifacts: list[str]) -> StepOutcome:
    where = {"notebook": str(source), "artifact": artifacts[0] if artifacts else None}
    if result.status == "timed_out":
        raise StepFailed(f"{source.name} did not finish in time; its kernel was stopped", code="timed_out",
                         detail=where, retryable=True)
    if result.status == "cancelled":
        raise StepFailed(f"{source.name} was cancelled; its kernel was stopped", code="cancelled",
                         detail=where, retryable=False)
    if result.returncode != 0 or executed is None:
        detail = {**where, **_error_detail(result)}
        cell = f"cell {detail['cell_index']}: " if detail.get("cell_index") is not None else ""
        # a cell's own error repeats on a retry; a kernel that died or never started may not
        retryable = detail.get("cell_index") is None
        raise StepFailed(f"{source.name} failed: {cell}{detail['ename']}: {detail['evalue']}",
                         code="notebook_failed", detail=detail, retryable=retryable)
    outputs = read_outputs(executed)
    missing = [name for name in ctx.spec.get("outputs") or [] if name not in outputs]
    if missing:
        raise StepFailed(f"{source.name} recorded no output {missing[0]!r} (deepspace_lab.client.workflow_output)",
                         code="notebook_output_missing", detail={**where, "missing": missing}, retryable=False)
    size = len(json.dumps(outputs).encode())
    if size > MAX_OUTPUTS_BYTES:
        raise StepFailed(f"{source.name} recorded {size} bytes of outputs; the limit is {MAX_OUTPUTS_BYTES} "
                         "(store large results as files)", code="notebook_outputs_too_large",
                         detail={**where, "size_bytes": size}, retryable=False)
    return StepOutcome(outputs=outputs, artifacts=artifacts)


NOTEBOOK = StepKind(name="notebook", schema=SCHEMA, run=run, check=check,
                    description="Run a notebook with papermill (parameters in, workflow_output() values out)")
