"""Sealing: signing keys, numbering series, sealed invoices, idempotency keys, outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:14:00.863395
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_table('outbox',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('available_at', UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_available_at', ['status', 'available_at'], unique=False)

    op.create_table('signing_keys',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('backend', sa.String(length=16), nullable=False),
    sa.Column('public_jwk', sa.Text(), nullable=False),
    sa.Column('private_ref', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('not_before', UTCDateTime(), nullable=False),
    sa.Column('not_after', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_signing_keys_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_signing_keys'))
    )
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.create_index('ix_signing_keys_tenant_id_status', ['tenant_id', 'status'], unique=False)
        batch_op.create_index('uq_signing_keys_id', ['id'], unique=True)

    op.create_table('invoices',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('outlet_id', sa.String(length=40), nullable=False),
    sa.Column('series_id', sa.String(length=40), nullable=False),
    sa.Column('counter', sa.BigInteger(), nullable=False),
    sa.Column('fiscal_number', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=4), nullable=False),
    sa.Column('issued_at', UTCDateTime(), nullable=False),
    sa.Column('reference', sa.String(length=100), nullable=True),
    sa.Column('original', sa.String(length=64), nullable=True),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('seal_hash', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'outlet_id'], ['outlets.tenant_id', 'outlets.id'], name=op.f('fk_invoices_tenant_id_outlets')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_invoices'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_tenant_id_issued_at', ['tenant_id', 'issued_at'], unique=False)
        batch_op.create_index('ix_invoices_tenant_id_original', ['tenant_id', 'original'], unique=False)
        batch_op.create_index('uq_invoices_id', ['id'], unique=True)
        batch_op.create_index('uq_invoices_tenant_id_fiscal_number', ['tenant_id', 'fiscal_number'], unique=True)
        batch_op.create_index('uq_invoices_tenant_id_outlet_id_reference', ['tenant_id', 'outlet_id', 'reference'], unique=True)
        batch_op.create_index('uq_invoices_tenant_id_series_id_counter', ['tenant_id', 'series_id', 'counter'], unique=True)

    op.create_table('series',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('outlet_id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('counter', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'outlet_id'], ['outlets.tenant_id', 'outlets.id'], name=op.f('fk_series_tenant_id_outlets')),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_series'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index('uq_series_tenant_id_outlet_id_code', ['tenant_id', 'outlet_id', 'code'], unique=True)

    for table in ("idempotency_keys", "outbox", "signing_keys", "series"):
        rls.protect(table)
    rls.protect("invoices", append_only=True)
    rls.forbid_rewrites("invoices")



def downgrade() -> None:
    rls.allow_rewrites("invoices")
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index('uq_series_tenant_id_outlet_id_code')

    op.drop_table('series')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('uq_invoices_tenant_id_series_id_counter')
        batch_op.drop_index('uq_invoices_tenant_id_outlet_id_reference')
        batch_op.drop_index('uq_invoices_tenant_id_fiscal_number')
        batch_op.drop_index('uq_invoices_id')
        batch_op.drop_index('ix_invoices_tenant_id_original')
        batch_op.drop_index('ix_invoices_tenant_id_issued_at')

    op.drop_table('invoices')
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.drop_index('uq_signing_keys_id')
        batch_op.drop_index('ix_signing_keys_tenant_id_status')

    op.drop_table('signing_keys')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_available_at')

    op.drop_table('outbox')
    op.drop_table('idempotency_keys')
