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
so operations never deadlock one another. ``bench/ledger/*.sql`` runs these statements
verbatim under pgbench.
"""

from __future__ import annotations

from ._types import ENTRY_COLUMNS

RETURNING_ENTRY = "RETURNING " + ", ".join(ENTRY_COLUMNS)

PLACE_HOLD = f"""
WITH w AS (
    UPDATE wallets
       SET balance_micros = balance_micros - %(amount)s::bigint,
           frozen_micros = frozen_micros + %(amount)s::bigint
     WHERE org_id = %(org_id)s::varchar AND balance_micros + overdraft_limit_micros >= %(amount)s::bigint
 RETURNING id, balance_micros, frozen_micros
), h AS (
    INSERT INTO holds (id, org_id, wallet_id, ref, amount_micros, state, captured_micros, refunded_micros,
                       price_id, lease_expires_at, trace_id, request_id, created_at)
    SELECT %(hold_id)s::varchar, %(org_id)s::varchar, w.id, %(ref)s::varchar, %(amount)s::bigint, 'open', 0, 0,
           %(price_id)s::bigint, %(lease_expires_at)s::timestamptz, %(trace_id)s::varchar,
           %(request_id)s::varchar, %(now)s::timestamptz
      FROM w
 RETURNING id
)
INSERT INTO transactions (org_id, wallet_id, hold_id, type, ref, amount_micros, balance_after_micros,
                          frozen_after_micros, trace_id, request_id, created_at)
SELECT %(org_id)s::varchar, w.id, h.id, 'hold', %(ref)s::varchar, %(amount)s::bigint, w.balance_micros,
       w.frozen_micros, %(trace_id)s::varchar, %(request_id)s::varchar, %(now)s::timestamptz
  FROM w, h
{RETURNING_ENTRY}
"""

CAPTURE_HOLD = f"""
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
)
INSERT INTO transactions (org_id, wallet_id, hold_id, type, ref, amount_micros, balance_after_micros,
                          frozen_after_micros, trace_id, request_id, created_at)
SELECT h.org_id, w.id, h.id, 'capture', %(ref)s::varchar, %(amount)s::bigint, w.balance_micros, w.frozen_micros,
       COALESCE(%(trace_id)s::varchar, h.trace_id), COALESCE(%(request_id)s::varchar, h.request_id),
       %(now)s::timestamptz
  FROM h, w
{RETURNING_ENTRY}
"""

RELEASE_HOLD = f"""
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
)
INSERT INTO transactions (org_id, wallet_id, hold_id, type, ref, amount_micros, balance_after_micros,
                          frozen_after_micros, reason, trace_id, request_id, created_at)
SELECT h.org_id, w.id, h.id, 'release', %(ref)s::varchar, h.amount_micros, w.balance_micros, w.frozen_micros,
       %(reason)s::varchar, COALESCE(%(trace_id)s::varchar, h.trace_id),
       COALESCE(%(request_id)s::varchar, h.request_id), %(now)s::timestamptz
  FROM h, w
{RETURNING_ENTRY}
"""
