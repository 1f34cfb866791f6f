"""The admin console (DESIGN §9): a Panel app served as its own process
(``deepspace-lab admin``) that reads the Admin API only, through :mod:`deepspace_lab.client`.

- :mod:`.app`: the server, its cookie secret and the per-session app factory;
- :mod:`.auth` and :mod:`.session`: sign-in against the Gateway, tokens kept server-side;
- :mod:`.shell`: header (who, scope, simulated upstream, language), navigation, pages;
- :mod:`.pages`: one class per page of the spec's navigation;
- components the pages build on: :class:`.table.PagedTable` (keyset paging on the server),
  :class:`.forms.ApiForm` (errors by the API's codes), :class:`.progress.JobProgress`
  (a Worker job's progress), :mod:`.charts` (bokeh figures from aggregates).
"""

from .charts import aggregate_frame, bar_chart, line_chart
from .forms import ApiForm
from .i18n import Text, pick_language
from .progress import JobProgress
from .session import AdminRefused, AdminSession, Identity, SessionStore, sign_in
from .shell import AdminShell
from .table import PagedTable

__all__ = ["AdminRefused", "AdminSession", "AdminShell", "ApiForm", "Identity", "JobProgress", "PagedTable",
           "SessionStore", "Text", "aggregate_frame", "bar_chart", "line_chart", "pick_language", "sign_in"]
