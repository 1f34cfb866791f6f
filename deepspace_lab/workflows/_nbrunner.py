"""The child process of a ``notebook`` step: papermill runs here, in its own session, under the
supervisor (:mod:`.supervisor`) that owns the deadline and the cancel.

``python -m deepspace_lab.workflows._nbrunner --input NB --output NB --parameters JSON_FILE``

It writes one JSON event per line on its standard output — ``{"event": "cell", "index", "total"}``
as each cell starts, then ``{"event": "error", …}`` or ``{"event": "done"}`` — and nothing
else: before papermill starts, whatever else would reach file descriptor 1 (papermill, the
kernel, which inherits it) is sent to standard error instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO


def _event_stream() -> TextIO:
    events = os.fdopen(os.dup(1), "w", buffering=1)  # os.dup: not inherited by the kernel
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepspace_lab.workflows._nbrunner")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--parameters", required=True, help="a JSON file holding the parameters")
    parser.add_argument("--kernel", default=None)
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--cell-timeout-s", type=float, default=None)
    args = parser.parse_args(argv)
    events = _event_stream()

    def emit(**event: Any) -> None:
        events.write(json.dumps(event, default=str) + "\n")

    # jsonschema (under nbformat) imports rfc3987_syntax when it is installed, only for its "iri"
    # format check, and that import builds a grammar: 1-2 s of a step's start on this machine.
    # Notebook schemas use no such format; marking the module absent makes jsonschema skip it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.exceptions import PapermillExecutionError

    class ProgressEngine(NBClientEngine):  # type: ignore[misc]
        """papermill's own engine, reporting each cell as it starts (papermill's cell hook)."""

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            total, cell_start = len(nb_man.nb.cells), nb_man.cell_start

            def start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                emit(event="cell", index=cell_index, total=total)
                return cell_start(cell, cell_index, **kw)

            nb_man.cell_start = start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("deepspace", ProgressEngine)
    with open(args.parameters, encoding="utf-8") as fh:
        parameters = json.load(fh)
    try:
        papermill.execute_notebook(args.input, args.output, parameters=parameters, engine_name="deepspace",
                                   kernel_name=args.kernel, cwd=args.cwd, progress_bar=False,
                                   execution_timeout=args.cell_timeout_s)
    except PapermillExecutionError as exc:
        emit(event="error", cell_index=exc.cell_index, execution_count=exc.exec_count, ename=exc.ename,
             evalue=exc.evalue, traceback=list(exc.traceback))
        return 1
    except Exception as exc:  # a kernel that died or never started, an unreadable notebook
        emit(event="error", cell_index=None, execution_count=None, ename=type(exc).__name__, evalue=str(exc),
             traceback=[])
        return 1
    emit(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
