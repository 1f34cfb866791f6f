"""How a notebook run as a workflow step hands values back to the run.

``workflow_output(name, value)`` displays ``{"name": …, "value": …}`` under its own MIME type.
The display lands in the executed notebook's cell outputs (what papermill saves), and the
``notebook`` step kind reads every such output back after the run: no side files, no extra
package (scrapbook does the same with its own MIME type but is unmaintained), and the outputs
stay visible in the stored notebook. A later call with the same name wins. Outside a kernel
the display is printed and ignored.
"""

from __future__ import annotations

import json
from typing import Any

OUTPUT_MIME = "application/vnd.deepspace.workflow-output+json"
MAX_NAME = 100


def workflow_output(name: str, value: Any) -> None:
    """Record ``value`` (anything JSON can encode) as the step output ``name``; ValueError for
    an empty or long name or a value JSON cannot encode."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValueError(f"an output name is 1-{MAX_NAME} characters, got {name!r}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"output {name!r} is not JSON-encodable: {exc}") from None
    from IPython.display import display  # only in a kernel; the client stays importable without it

    display({OUTPUT_MIME: {"name": name, "value": value},
             "text/plain": f"workflow output {name!r}"}, raw=True)
