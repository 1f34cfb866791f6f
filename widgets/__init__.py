"""The notebook side (DESIGN §8): the researcher's workbench as ipywidgets, and the
``%%deepspace`` magic (``%load_ext deepspace_lab.widgets``).

Layers, as the spec's React rules map onto widgets: stores (:mod:`.stores`, traitlets) hold
state; components (:mod:`.components`) are pure display; controllers (:mod:`.controllers`)
hold all I/O through :mod:`deepspace_lab.client` — the only way out of a kernel. The workflow
widget (:func:`workflows`) is built the same way (:mod:`.workflow_controller`, :mod:`.workflow_view`).
"""

from .controllers import AccountController, BillingController, ChatController, ChatStreamController
from .i18n import Text
from .magic import DeepSpaceMagics, load_ipython_extension
from .stores import BillingStore, ChatStore, MessageModel, UserStore, WorkflowStore
from .views import BillingView, ChatView, ProfileView, ProjectsView, Workbench
from .workflow_controller import WorkflowController
from .workflow_view import WorkflowPanel, WorkflowView


def workbench(**kwargs: object) -> Workbench:
    """A :class:`Workbench` connected with the kernel's environment, loading itself."""
    return Workbench(**kwargs).start()  # type: ignore[arg-type]


def workflows(**kwargs: object) -> WorkflowPanel:
    """A :class:`WorkflowPanel` (definitions, runs, their steps, log, outputs and artifacts)
    connected with the kernel's environment, loading itself."""
    return WorkflowPanel(**kwargs).start()  # type: ignore[arg-type]


__all__ = [
    "AccountController", "BillingController", "BillingStore", "BillingView", "ChatController", "ChatStore",
    "ChatStreamController", "ChatView", "DeepSpaceMagics", "MessageModel", "ProfileView", "ProjectsView", "Text",
    "UserStore", "Workbench", "WorkflowController", "WorkflowPanel", "WorkflowStore", "WorkflowView",
    "load_ipython_extension", "workbench", "workflows",
]
