"""The hot path on PostgreSQL: hold, capture and release as one statement each.

Each statement is a chain of data-modifying CTEs that all succeed or all fail:

- hold: the conditional wallet UPDATE (``balance + overdraft >= amount``) feeds the INSERTs
  of the hold and its entry; no wallet row → nothing is inserted; a duplicate ref → the
  UNIQUE index aborts the whole statement.
- capture / release: the hold moves ``open → captured|released`` only if it is open (and,
  for a capture, its lease has not lapsed), which a concurrent resolver cannot both pass;
  the wallet then takes the hold out of ``frozen``. A capture above the hold that the
  balance plus overdraft cannot cover breaks ``ck_wallets_within_overdraft``, which aborts
  the statement: the CHECK is the condition here, because a CTE cannot undo a sibling CTE.

A refused statement is never the last word: PostgreSQL evaluates a CHECK on the row computed
from the statement's snapshot before it re-reads a row that a concurrent transaction (a
top-up) has just changed, so a capture or release racing a top-up can be refused wrongly.
The ledger then decides with the step-by-step path (:mod:`._generic`), whose every
statement reads the newest rows.

Locks are always taken hold row first, then wallet row (the generic path does the same),
then budget counters, so operations never deadlock one another. ``bench/ledger/*.sql`` runs
these statements verbatim under pgbench.

The ``*_WITH_USAGE`` variants are the pipeline's: the hold writes the request's pending usage
row, and the capture or release completes it, in the same statement as the ledger entry — a
usage row and its ledger entries never disagree. A pipeline hold is refused here when a budget
applies to the request's org, project or key; the ledger then takes the budget path, one
transaction that reserves on every budget or on none (:mod:`.budgets`).
"""

from __future__ import annotations

from ._types import ENTRY_COLUMNS

RETURNING_ENTRY = "RETURNING " + ", ".join(ENTRY_COLUMNS)

#: The pending usage row a pipeline hold writes in the same statement (``u_*`` parameters).
_USAGE_PENDING = """, u AS (
    INSERT INTO usage_records (request_id, trace_id, org_id, project_id, user_id, api_key_id, model, prompt_tokens,
                               completion_tokens, delivered_tokens, cost_micros, measured, status, held_micros,
                               stream, price_id, created_at)
    SELECT %(u_request_id)s::varchar, %(u_trace_id)s::varchar, %(org_id)s::varchar, %(u_project_id)s::varchar,
           %(u_user_id)s::varchar, %(u_api_key_id)s::varchar, %(u_model)s::varchar, 0, 0, 0, 0, 'pending', 'pending',
           %(amount)s::bigint, %(u_stream)s::boolean, %(price_id)s::bigint, %(now)s::timestamptz
      FROM h
 RETURNING id
)"""

#: A hold never takes this path when a budget applies to its org, project or key (``b_*``
#: parameters, None when absent): the budget check runs in a transaction (:mod:`.budgets`).
_NO_BUDGET = """
       AND NOT EXISTS (SELECT 1 FROM budgets
                        WHERE (scope = 'org' AND scope_id = %(b_org)s::varchar)
                           OR (scope = 'project' AND scope_id = %(b_project)s::varchar)
                           OR (scope = 'key' AND scope_id = %(b_key)s::varchar))"""


def _place_hold(*, usage: bool) -> str:
    return f"""
WITH w AS (
    UPDATE wallets
       SET balance_micros = balance_micros - %(amount)s::bigint,
           frozen_micros = frozen_micros + %(amount)s::bigint
     WHERE org_id = %(org_id)s::varchar AND balance_micros + overdraft_limit_micros >= %(amount)s::bigint\
{_NO_BUDGET if usage else ""}
 RETURNING id, balance_micros, frozen_micros
), h AS (
    INSERT INTO holds (id, org_id, wallet_id, ref, amount_micros, state, captured_micros, refunded_micros,
                       price_id, lease_expires_at, trace_id, request_id, created_at)
    SELECT %(hold_id)s::varchar, %(org_id)s::varchar, w.id, %(ref)s::varchar, %(amount)s::bigint, 'open', 0, 0,
           %(price_id)s::bigint, %(lease_expires_at)s::timestamptz, %(trace_id)s::varchar,
           %(request_id)s::varchar, %(now)s::timestamptz
      FROM w
 RETURNING id
){_USAGE_PENDING if usage else ""}
INSERT INTO transactions (org_id, wallet_id, hold_id, type, ref, amount_micros, balance_after_micros,
                          frozen_after_micros, trace_id, request_id, created_at)
SELECT %(org_id)s::varchar, w.id, h.id, 'hold', %(ref)s::varchar, %(amount)s::bigint, w.balance_micros,
       w.frozen_micros, %(trace_id)s::varchar, %(request_id)s::varchar, %(now)s::timestamptz
  FROM w, h
{RETURNING_ENTRY}
"""


PLACE_HOLD = _place_hold(usage=False)
#: The pipeline's hold: also its pending usage row; refused when a budget applies.
PLACE_HOLD_WITH_USAGE = _place_hold(usage=True)

#: The budget counters the hold reserved on (if any) give back the hold and count what was spent.
def _settle_budgets(spent: str) -> str:
    return f""", b AS (
    UPDATE budget_counters
       SET reserved_micros = budget_counters.reserved_micros - h.amount_micros,
           spent_micros = budget_counters.spent_micros + {spent}
      FROM h, hold_budget_counters l
     WHERE l.hold_id = h.id AND budget_counters.id = l.counter_id
 RETURNING budget_counters.id
)"""


#: The pipeline completes the hold's usage row in the same statement (``u_*`` parameters).
def _settle_usage(status: str, cost: str) -> str:
    return f""", u AS (
    UPDATE usage_records
       SET status = '{status}', measured = %(u_measured)s::varchar, prompt_tokens = %(u_prompt_tokens)s::integer,
           completion_tokens = %(u_completion_tokens)s::integer, delivered_tokens = %(u_delivered_tokens)s::integer,
           cost_micros = {cost}, finish_reason = %(u_finish_reason)s::varchar,
           upstream_response_id = %(u_upstream_response_id)s::varchar, error_code = %(u_error_code)s::varchar,
           settled_at = %(now)s::timestamptz
      FROM h
     WHERE usage_records.request_id = h.request_id AND usage_records.status = 'pending'
 RETURNING usage_records.id
)"""


def _capture_hold(*, usage: bool) -> str:
    return f"""
WITH h AS (
    UPDATE holds
       SET state = 'captured', captured_micros = %(amount)s::bigint, resolved_at = %(now)s::timestamptz
     WHERE ref = %(ref)s::varchar AND state = 'open' AND lease_expires_at > %(now)s::timestamptz
 RETURNING id, org_id, wallet_id, amount_micros, trace_id, request_id
), w AS (
    UPDATE wallets
       SET balance_micros = wallets.balance_micros + h.amount_micros - %(amount)s::bigint,
           frozen_micros = wallets.frozen_micros - h.amount_micros
      FROM h
     WHERE wallets.id = h.wallet_id
 RETURNING wallets.id, wallets.balance_micros, wallets.frozen_micros
){_settle_budgets("%(amount)s::bigint")}{_settle_usage("captured", "%(amount)s::bigint") if usage else ""}
INSERT INTO transactions (org_id, wallet_id, hold_id, type, ref, amount_micros, balance_after_micros,
                          frozen_after_micros, trace_id, request_id, created_at)
SELECT h.org_id, w.id, h.id, 'capture', %(ref)s::varchar, %(amount)s::bigint, w.balance_micros, w.frozen_micros,
       COALESCE(%(trace_id)s::varchar, h.trace_id), COALESCE(%(request_id)s::varchar, h.request_id),
       %(now)s::timestamptz
  FROM h, w
{RETURNING_ENTRY}
"""


def _release_hold(*, usage: bool) -> str:
    return f"""
WITH h AS (
    UPDATE holds
       SET state = 'released', resolved_at = %(now)s::timestamptz
     WHERE ref = %(ref)s::varchar AND state = 'open'
 RETURNING id, org_id, wallet_id, amount_micros, trace_id, request_id
), w AS (
    UPDATE wallets
       SET balance_micros = wallets.balance_micros + h.amount_micros,
           frozen_micros = wallets.frozen_micros - h.amount_micros
      FROM h
     WHERE wallets.id = h.wallet_id
 RETURNING wallets.id, wallets.balance_micros, wallets.frozen_micros
){_settle_budgets("0")}{_settle_usage("released", "0") if usage else ""}
INSERT INTO transactions (org_id, wallet_id, hold_id, type, ref, amount_micros, balance_after_micros,
                          frozen_after_micros, reason, trace_id, request_id, created_at)
SELECT h.org_id, w.id, h.id, 'release', %(ref)s::varchar, h.amount_micros, w.balance_micros, w.frozen_micros,
       %(reason)s::varchar, COALESCE(%(trace_id)s::varchar, h.trace_id),
       COALESCE(%(request_id)s::varchar, h.request_id), %(now)s::timestamptz
  FROM h, w
{RETURNING_ENTRY}
"""


CAPTURE_HOLD = _capture_hold(usage=False)
RELEASE_HOLD = _release_hold(usage=False)
#: The pipeline's capture and release: also complete the request's usage row.
CAPTURE_HOLD_WITH_USAGE = _capture_hold(usage=True)
RELEASE_HOLD_WITH_USAGE = _release_hold(usage=True)
