"""The Worker (level 2): durable jobs on Huey, scheduled roll-ups, reconciliation and
retention, exports and statements.

Design overview
---------------
- **Queue**: Huey (:mod:`.queue`) on SQLite for one machine, Redis or PostgreSQL for many;
  it carries job ids only.
- **State**: our ``jobs`` table (:mod:`.service`) — kind, org, project, who started it,
  queued → running → done | failed, attempts, last error, progress, result, trace id — and
  ``job_events``, its log. A claim (one conditional UPDATE) decides who runs a job; a lease
  the worker renews lets the others take over a job whose worker died.
- **Worker** (:mod:`.worker`): ``deepspace-lab worker``; Huey threads hand jobs to one
  asyncio loop per process.
- **Kinds** (:mod:`.kinds`, :mod:`.exports`, :mod:`.statements`): what a job does, found
  through the entry-point group ``deepspace_lab.job_kinds`` (built-ins included); exports and
  statements write files (:mod:`deepspace_lab.files`) into storage.
- **Scheduled** (:mod:`.scheduled`): roll-ups (billing's tables, built with catch-up from a
  mark), reconciliation, retention (:mod:`.retention`).
"""

from .errors import JobNotFoundError, JobParamsError, UnknownJobKindError
from .kinds import ENTRY_POINT_GROUP, JobKind, job_kinds
from .queue import JobQueue, make_huey
from .service import JobPage, JobView, create_job, get_job, list_jobs
from .submit import submit_job

__all__ = ["ENTRY_POINT_GROUP", "JobKind", "JobNotFoundError", "JobPage", "JobParamsError", "JobQueue", "JobView",
           "UnknownJobKindError", "create_job", "get_job", "job_kinds", "list_jobs", "make_huey", "submit_job"]
