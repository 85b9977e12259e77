"""Sending domains: DMARC aggregate reports and their records (joined to tenants and
egress IPs), and the latest authentication findings of each tenant domain.

Hand-written operations that build exactly the ``dmarc_reports``, ``dmarc_records`` and
``auth_findings`` tables of ``poolwarden.adapters.schema.metadata`` (a test compares the
migrated database with the metadata).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dmarc_reports",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("key", sa.String(1100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("org_name", sa.String(1024), nullable=False),
        sa.Column("report_id", sa.String(1024), nullable=False),
        sa.Column("policy_domain", sa.String(255), nullable=False),
        sa.Column("policy_p", sa.String(32), nullable=False),
        sa.Column("begin", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dmarc_reports"),
        sa.UniqueConstraint("key", name="uq_dmarc_reports_key"),
    )
    op.create_index("ix_dmarc_reports_received_at", "dmarc_reports", ["received_at"])
    op.create_table(
        "dmarc_records",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("begin", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("disposition", sa.String(32), nullable=False),
        sa.Column("dkim", sa.String(32), nullable=False),
        sa.Column("spf", sa.String(32), nullable=False),
        sa.Column("header_from", sa.String(255), nullable=False),
        sa.Column("envelope_from", sa.String(255), nullable=True),
        sa.Column("envelope_to", sa.String(255), nullable=True),
        sa.Column("auth", sa.JSON(), nullable=False),
        sa.Column("ours", sa.Boolean(), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("route", sa.String(255), nullable=True),
        sa.Column("note", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dmarc_records"),
    )
    op.create_index("ix_dmarc_records_tenant_end", "dmarc_records", ["tenant", "end"])
    op.create_index("ix_dmarc_records_header_from", "dmarc_records", ["header_from"])
    op.create_index("ix_dmarc_records_report_id", "dmarc_records", ["report_id"])
    op.create_table(
        "auth_findings",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("check", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("route", sa.String(255), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_findings"),
    )
    op.create_index("ix_auth_findings_tenant", "auth_findings", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_auth_findings_tenant", table_name="auth_findings")
    op.drop_table("auth_findings")
    op.drop_index("ix_dmarc_records_report_id", table_name="dmarc_records")
    op.drop_index("ix_dmarc_records_header_from", table_name="dmarc_records")
    op.drop_index("ix_dmarc_records_tenant_end", table_name="dmarc_records")
    op.drop_table("dmarc_records")
    op.drop_index("ix_dmarc_reports_received_at", table_name="dmarc_reports")
    op.drop_table("dmarc_reports")
