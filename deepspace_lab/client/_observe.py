"""The Admin API's observability calls — usage records and the request log across orgs, trace
lookup, the overview, exports of any org's rows, the Prometheus metrics — shared by the sync
and the async client.

:class:`ObserveCalls` is a mixin over the client's ``_send`` (as :class:`~._money.MoneyCalls`):
on :class:`DeepSpaceClient` each method returns the answer, on :class:`AsyncDeepSpaceClient` an
awaitable of it. Lists are keyset paged: pass ``next_cursor`` back as ``cursor``.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._base import Call

ADMIN = "/deepspace/admin/api"
R = TypeVar("R")


class ObserveCalls(Generic[R]):
    def _send(self, call: Call) -> R:  # provided by the client
        raise NotImplementedError

    def admin_usage(self, **filters: Any) -> R:
        """Usage records across orgs; filters: org_id, project_id, user_id, api_key_id, model, status,
        measured, since, until, limit, cursor."""
        return self._send(Call("GET", ADMIN + "/usage", params=filters))

    def admin_audit(self, **filters: Any) -> R:
        """Audit rows; filters: org_id, user_id, api_key_id, model, status_code, error_code, kind, path
        (a prefix), client_ip, since, until, limit, cursor."""
        return self._send(Call("GET", ADMIN + "/audit", params=filters))

    def admin_trace(self, trace_id: str) -> R:
        """Everything that carried ``trace_id``, oldest first (``items``, each typed)."""
        return self._send(Call("GET", f"{ADMIN}/traces/{trace_id}"))

    def admin_overview(self, **params: Any) -> R:
        """Trends, top spenders and anomaly numbers; params: org_id, since, until, days, top,
        low_balance_micros."""
        return self._send(Call("GET", ADMIN + "/overview", params=params))

    def admin_export(self, dataset: str, *, format: str | None = None, org_id: str | None = None,
                     project_id: str | None = None, since: str | None = None, until: str | None = None) -> R:
        """Queue an export (usage, transactions or audit) of one org or (no ``org_id``) all: the job."""
        body = {k: v for k, v in (("dataset", dataset), ("format", format), ("org_id", org_id),
                                  ("project_id", project_id), ("since", since), ("until", until)) if v is not None}
        return self._send(Call("POST", ADMIN + "/exports", json=body))

    def admin_statement(self, month: str, *, org_id: str | None = None) -> R:
        """Queue an org's monthly statement (``YYYY-MM``; an org admin's own org by default): the
        job, in the admin's own org (poll ``job(id)``); its ``result["files"]`` when done."""
        body = {"month": month, **({"org_id": org_id} if org_id is not None else {})}
        return self._send(Call("POST", ADMIN + "/statements", json=body))

    def admin_export_job(self, job_id: str) -> R:
        """An admin export job; when done its ``result`` has the file's ``download_path``."""
        return self._send(Call("GET", f"{ADMIN}/exports/{job_id}"))

    def admin_metrics(self) -> R:
        """The Prometheus text of the gateway process that answered."""
        return self._send(Call("GET", ADMIN + "/metrics"))
