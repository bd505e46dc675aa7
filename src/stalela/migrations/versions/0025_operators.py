"""Operator accounts, their console sessions, and the platform audit log (control-plane tables).

None of them is tenant-owned: no tenant_id, no row-level security, only the app role's grants. The
platform audit log is append-only like the tenants' one (no UPDATE or DELETE grant, and a trigger).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from stalela.db import rls
from stalela.db.base import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_users",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("oidc_issuer", sa.String(500), nullable=True),
        sa.Column("oidc_subject", sa.String(255), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_users")),
    )
    op.create_index("uq_operator_users_email", "operator_users", ["email"], unique=True)
    op.create_index("uq_operator_users_oidc", "operator_users", ["oidc_issuer", "oidc_subject"], unique=True)
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("operator_id", sa.String(40), sa.ForeignKey("operator_users.id",
                                                              name="fk_operator_sessions_operator_id_operator_users"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_sessions")),
    )
    op.create_index("uq_operator_sessions_token_hash", "operator_sessions", ["token_hash"], unique=True)
    op.create_index("ix_operator_sessions_operator_id", "operator_sessions", ["operator_id"])
    op.create_table(
        "platform_audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(120), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_platform_audit_log")),
    )
    rls.grant("operator_users", "SELECT, INSERT, UPDATE")
    rls.grant("operator_sessions", "SELECT, INSERT, UPDATE")
    rls.grant("platform_audit_log", "SELECT, INSERT")
    rls.forbid_rewrites("platform_audit_log")


def downgrade() -> None:
    rls.allow_rewrites("platform_audit_log")
    op.drop_table("platform_audit_log")
    op.drop_table("operator_sessions")
    op.drop_table("operator_users")
