"""the ledger: hold amounts, refund pointers, free prices, and invariants in the database

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

What the database now enforces by itself:
- CHECKs: no negative amounts, ``frozen >= 0``, ``balance + overdraft_limit >= 0``,
  refunds of a hold within its capture, known entry types and hold states;
- one terminal entry (capture or release) per hold: a partial unique index;
- ``transactions`` is append-only: triggers refuse UPDATE, DELETE (and TRUNCATE on
  PostgreSQL). A later migration that rebuilds ``transactions`` on SQLite (batch mode copies
  the table) must create the two SQLite triggers again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TERMINAL = "type IN ('capture', 'release')"
ENTRY_TYPES = "type IN ('credit', 'debit', 'hold', 'capture', 'release', 'refund')"
HOLD_STATES = "state IN ('open', 'captured', 'released', 'expired')"
APPEND_ONLY_MESSAGE = "transactions is append-only: correct an entry with a new entry"

PG_TRIGGERS = (
    f"""CREATE FUNCTION deepspace_transactions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'restrict_violation';
    END $$""",
    "CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions "
    "FOR EACH ROW EXECUTE FUNCTION deepspace_transactions_append_only()",
    "CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions "
    "FOR EACH STATEMENT EXECUTE FUNCTION deepspace_transactions_append_only()",
)
SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER transactions_no_{verb.lower()} BEFORE {verb} ON transactions "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    for verb in ("UPDATE", "DELETE")
)


def _where(clause: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(clause), "sqlite_where": sa.text(clause)}


def upgrade() -> None:
    with op.batch_alter_table('prices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('free', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.create_check_constraint(op.f('ck_prices_rates_not_negative'),
                                         'input_micros_per_mtok >= 0 AND output_micros_per_mtok >= 0')

    with op.batch_alter_table('wallets', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_wallets_frozen_not_negative'), 'frozen_micros >= 0')
        batch_op.create_check_constraint(op.f('ck_wallets_overdraft_not_negative'), 'overdraft_limit_micros >= 0')
        batch_op.create_check_constraint(op.f('ck_wallets_within_overdraft'),
                                         'balance_micros + overdraft_limit_micros >= 0')

    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('captured_micros', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('refunded_micros', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.drop_index(batch_op.f('ix_holds_state'))
        batch_op.create_index('ix_holds_open_lease_expires_at', ['lease_expires_at'], unique=False,
                              **_where("state = 'open'"))
        batch_op.create_check_constraint(op.f('ck_holds_amount_not_negative'), 'amount_micros >= 0')
        batch_op.create_check_constraint(op.f('ck_holds_known_state'), HOLD_STATES)
        batch_op.create_check_constraint(op.f('ck_holds_captured_not_negative'), 'captured_micros >= 0')
        batch_op.create_check_constraint(op.f('ck_holds_refunds_within_capture'),
                                         'refunded_micros >= 0 AND refunded_micros <= captured_micros')

    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('refund_of', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('balance_after_micros', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('frozen_after_micros', sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_transactions_hold_id_holds'), 'holds', ['hold_id'], ['id'])
        batch_op.create_foreign_key(op.f('fk_transactions_refund_of_transactions'), 'transactions',
                                    ['refund_of'], ['id'])
        batch_op.drop_index(batch_op.f('ix_transactions_org_id'))
        batch_op.drop_index(batch_op.f('ix_transactions_wallet_id'))
        batch_op.create_index('ix_transactions_org_id_id', ['org_id', 'id'], unique=False)
        batch_op.create_index('uq_transactions_terminal_hold_id', ['hold_id'], unique=True, **_where(TERMINAL))
        batch_op.create_check_constraint(op.f('ck_transactions_amount_not_negative'), 'amount_micros >= 0')
        batch_op.create_check_constraint(op.f('ck_transactions_known_type'), ENTRY_TYPES)

    for statement in PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER transactions_no_truncate ON transactions")
        op.execute("DROP TRIGGER transactions_append_only ON transactions")
        op.execute("DROP FUNCTION deepspace_transactions_append_only()")
    else:
        op.execute("DROP TRIGGER transactions_no_update")
        op.execute("DROP TRIGGER transactions_no_delete")

    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_transactions_known_type'), type_='check')
        batch_op.drop_constraint(op.f('ck_transactions_amount_not_negative'), type_='check')
        batch_op.drop_index('uq_transactions_terminal_hold_id')
        batch_op.drop_index('ix_transactions_org_id_id')
        batch_op.create_index(batch_op.f('ix_transactions_wallet_id'), ['wallet_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactions_org_id'), ['org_id'], unique=False)
        batch_op.drop_constraint(op.f('fk_transactions_refund_of_transactions'), type_='foreignkey')
        batch_op.drop_constraint(op.f('fk_transactions_hold_id_holds'), type_='foreignkey')
        batch_op.drop_column('frozen_after_micros')
        batch_op.drop_column('balance_after_micros')
        batch_op.drop_column('refund_of')
        batch_op.drop_column('hold_id')

    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_holds_refunds_within_capture'), type_='check')
        batch_op.drop_constraint(op.f('ck_holds_captured_not_negative'), type_='check')
        batch_op.drop_constraint(op.f('ck_holds_known_state'), type_='check')
        batch_op.drop_constraint(op.f('ck_holds_amount_not_negative'), type_='check')
        batch_op.drop_index('ix_holds_open_lease_expires_at')
        batch_op.create_index(batch_op.f('ix_holds_state'), ['state'], unique=False)
        batch_op.drop_column('refunded_micros')
        batch_op.drop_column('captured_micros')

    with op.batch_alter_table('wallets', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_wallets_within_overdraft'), type_='check')
        batch_op.drop_constraint(op.f('ck_wallets_overdraft_not_negative'), type_='check')
        batch_op.drop_constraint(op.f('ck_wallets_frozen_not_negative'), type_='check')

    with op.batch_alter_table('prices', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_prices_rates_not_negative'), type_='check')
        batch_op.drop_column('free')
