"""The store's tables, declared once as SQLAlchemy Core metadata.

The one description of the schema that the SQL store queries and that the
Alembic migrations must build exactly (a test compares them). Declares
tables only: no engine, no connection, no queries.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from poolwarden.core.reputation import COUNT_FIELDS

# Constraint and index names are spelled out so that SQLite and PostgreSQL
# agree, and so a migration can name what it alters.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One outcome event, stored once by its idempotency key. Read by key and by id range
# only: no other index, each one costs every insert of the log ingest.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String, nullable=False),
    Column("time", Float, nullable=False),
    Column("day", Integer, nullable=False),
    Column("kind", String, nullable=False),
    Column("tenant", String, nullable=False),
    Column("provider", String, nullable=False),
    Column("ip", String, nullable=True),
    Column("sending_domain", String, nullable=True),
    Column("recipient_domain", String, nullable=True),
    Column("reason", String(1024), nullable=False),
    UniqueConstraint("key", name="uq_events_key"),
)

# Day counters per (day, scope, scope id, provider or "*"): the Ledger's buckets. The key
# starts with the day, so it serves ``day >= ?`` itself: no second index to update with
# every new bucket (on a WITHOUT ROWID table an index on day would repeat the whole key).
# On SQLite the rows live in the primary-key b-tree itself (WITHOUT ROWID): one b-tree to
# update per upserted bucket instead of a rowid table plus its key index.
counters = Table(
    "counters",
    metadata,
    Column("scope", String, nullable=False),
    Column("scope_id", String, nullable=False),
    Column("provider", String, nullable=False),
    Column("day", Integer, nullable=False),
    *(Column(name, Integer, nullable=False, server_default=text("0"))
      for name in COUNT_FIELDS),
    PrimaryKeyConstraint("day", "scope", "scope_id", "provider", name="pk_counters"),
    sqlite_with_rowid=False,
)

# The current tier of each tenant and any operator pin on it.
tenant_state = Table(
    "tenant_state",
    metadata,
    Column("tenant", String, primary_key=True),
    Column("tier", String, nullable=False),
    Column("since", Float, nullable=False),
    Column("pinned", Boolean, nullable=False, server_default=false()),
    Column("pinned_by", String, nullable=True),
    Column("pinned_why", Text, nullable=True),
)

# Every tier move ever made, with the numbers and thresholds behind it.
tier_moves = Table(
    "tier_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String, nullable=False),
    Column("at", Float, nullable=False),
    Column("before", String, nullable=False),
    Column("after", String, nullable=False),
    Column("rule", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String, nullable=False),
    Column("source", String, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("thresholds", JSON, nullable=False),
    Column("pinned", Boolean, nullable=False, server_default=false()),
    Index("ix_tier_moves_tenant_id", "tenant", "id"),
)

# Every routing decision an agent applied, bound to the Postfix queue id once
# the message is queued: joins delivery outcomes to the route that was chosen.
decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("node", String, nullable=False),
    Column("instance", String, nullable=False),
    Column("tenant", String, nullable=True),
    Column("recipient", String(1024), nullable=False),
    Column("action", String, nullable=False),
    Column("ip", String, nullable=True),
    Column("pool", String, nullable=True),
    Column("rule", String, nullable=False),
    Column("snapshot_version", Integer, nullable=False),
    Column("queue_id", String, nullable=True),
    Index("ix_decisions_node_instance", "node", "instance"),
    Index("ix_decisions_queue_id", "queue_id"),
    Index("ix_decisions_tenant_id", "tenant", "id"),
)

# Where the follower of each configured log path stands: the file (fingerprint of
# its first bytes, inode, device), the offset read up to and where re-reading must
# start to rebuild open messages. Written in the same transaction as the events
# read from those bytes (docs/testing.md A4, I1-I8); see ``ports.Checkpoint``.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("source", String(1024), nullable=False),
    Column("fingerprint", String(255), nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("device", BigInteger, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("resume_offset", BigInteger, nullable=False),
    Column("resume_fingerprint", String(255), nullable=True),
    Column("mtime", Float, nullable=False),
    Column("year", Integer, nullable=True),
    Column("month", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("source", name="pk_checkpoints"),
)

# Every feedback message received (bounce, complaint, auto-reply...), one row per
# recipient it names, trusted or not: untrusted and rejected mail is kept and
# counted (docs/testing.md B5) but never becomes an event.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("kind", String(255), nullable=False),
    Column("trusted", Boolean, nullable=False),
    Column("reason", String(1024), nullable=False),
    Column("tenant", String(255), nullable=True),
    Column("ip", String(255), nullable=True),
    Column("recipient", String(1024), nullable=True),
    Column("message_ref", String(255), nullable=True),
    Column("message_id", String(1024), nullable=True),
    Column("bounce_reason", String(255), nullable=True),
    Column("bounce_class", String(255), nullable=True),
    Column("dsn_status", String(255), nullable=True),
    Column("feedback_type", String(255), nullable=True),
    Column("source", String(1024), nullable=False),
    Column("raw_size", Integer, nullable=False),
    UniqueConstraint("key", name="uq_feedback_key"),
    Index("ix_feedback_trusted_id", "trusted", "id"),
    Index("ix_feedback_message_ref", "message_ref"),
)

# Every reaction-rule activation: the rule, its scope (provider × IP or
# provider × tenant), when it started, ends and ramps back, the numbers and the log
# lines that triggered it. Stored once by key; its id feeds the change marker.
reaction_activations = Table(
    "reaction_activations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(1024), nullable=False),
    Column("rule", String(255), nullable=False),
    Column("action", String(32), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("provider", String(255), nullable=False),
    Column("ip", String(255), nullable=True),
    Column("tenant", String(255), nullable=True),
    Column("started_at", Float, nullable=False),
    Column("until", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("steps", JSON, nullable=False),
    Column("cap_factor", Float, nullable=True),
    Column("pool", String(255), nullable=True),
    Column("matches", Integer, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("period", Float, nullable=False),
    Column("why", Text, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("recorded_at", Float, nullable=False),
    UniqueConstraint("key", name="uq_reaction_activations_key"),
    Index("ix_reaction_activations_ends_at", "ends_at"),
    Index("ix_reaction_activations_ip", "ip"),
    Index("ix_reaction_activations_tenant", "tenant"),
)

# Warm-up progress: where each warming IP or new sending domain stands with
# each provider, and why (core.warmup.WarmupState).
warmup_state = Table(
    "warmup_state",
    metadata,
    Column("scope", String(32), nullable=False),
    Column("scope_id", String(255), nullable=False),
    Column("provider", String(255), nullable=False),
    Column("schedule", String(255), nullable=False),
    Column("stage", Integer, nullable=False),
    Column("started_day", Integer, nullable=False),
    Column("stage_day", Integer, nullable=False),
    Column("judged_day", Integer, nullable=False),
    Column("last_active_day", Integer, nullable=True),
    Column("why", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("scope", "scope_id", "provider", name="pk_warmup_state"),
)

# Recipients the routing agents routed per UTC day and (ip | domain | tenant, provider):
# the counts daily caps are checked against, summed over every node, so a restart does
# not reset today's counts.
warmup_counts = Table(
    "warmup_counts",
    metadata,
    Column("scope", String(32), nullable=False),
    Column("scope_id", String(255), nullable=False),
    Column("provider", String(255), nullable=False),
    Column("day", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("scope", "scope_id", "provider", "day", name="pk_warmup_counts"),
    Index("ix_warmup_counts_day", "day"),
)

# API tokens: only a SHA-256 of each token and a short prefix are kept;
# the token itself is shown once when created (docs/testing.md S4).
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("tenant", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)

# Dashboard users: a scrypt hash of the password with its per-user salt.
api_users = Table(
    "api_users",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("tenant", String(255), nullable=True),
    Column("salt", String(64), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
)

# The append-only audit log of every write through the API, CLI or dashboard: the
# store offers insert and select only (docs/testing.md S5).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("source", String(32), nullable=False),
    Column("action", String(255), nullable=False),
    Column("target", String(1024), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Index("ix_audit_log_at", "at"),
)

# Every alert raised for operators, sent or suppressed: what it is about
# (its dedup key), the explanation and numbers, the dashboard link and the outcome on
# each channel. Listed by the dashboard and the API.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("key", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject", String(1024), nullable=False),
    Column("text", Text, nullable=False),
    Column("link", String(1024), nullable=False),
    Column("numbers", JSON, nullable=False),
    Column("tenant", String(255), nullable=True),
    Column("ip", String(255), nullable=True),
    Column("outcome", JSON, nullable=False),
    Index("ix_alerts_at", "at"),
    Index("ix_alerts_tenant_id", "tenant", "id"),
)

# DNS blocklists: the standing of each (target, list) as monitord last judged it
# (core.blocklists.Listing), and every listing and delisting with its consequence.
blocklist_state = Table(
    "blocklist_state",
    metadata,
    Column("target", String(255), nullable=False),
    Column("list", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("listed", Boolean, nullable=False),
    Column("since", Float, nullable=False),
    Column("last_listed", Float, nullable=True),
    Column("clear_since", Float, nullable=True),
    Column("codes", JSON, nullable=False),
    Column("meaning", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("checked_at", Float, nullable=False),
    PrimaryKeyConstraint("target", "list", name="pk_blocklist_state"),
)

blocklist_changes = Table(
    "blocklist_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("target", String(255), nullable=False),
    Column("list", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("change", String(16), nullable=False),
    Column("codes", JSON, nullable=False),
    Column("meaning", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("consequence", Text, nullable=False),
    Index("ix_blocklist_changes_at", "at"),
    Index("ix_blocklist_changes_target", "target", "id"),
)

# Every DMARC input: a stored aggregate report (key: reporter and report id, so a report
# sent twice is stored once), or one refused or skipped, with its reason and warnings.
dmarc_reports = Table(
    "dmarc_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(1100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("source", String(1024), nullable=False),
    Column("reason", Text, nullable=False),
    Column("org_name", String(1024), nullable=False),
    Column("report_id", String(1024), nullable=False),
    Column("policy_domain", String(255), nullable=False),
    Column("policy_p", String(32), nullable=False),
    Column("begin", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("records", Integer, nullable=False),
    Column("messages", BigInteger, nullable=False),
    Column("warnings", JSON, nullable=False),
    UniqueConstraint("key", name="uq_dmarc_reports_key"),
    Index("ix_dmarc_reports_received_at", "received_at"),
)

# One record of a stored report, joined to our side: whether the source IP is one of our
# egress IPs, the tenant and route behind it. Auth results are kept as the report gave them.
dmarc_records = Table(
    "dmarc_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", Integer, nullable=False),
    Column("begin", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("disposition", String(32), nullable=False),
    Column("dkim", String(32), nullable=False),
    Column("spf", String(32), nullable=False),
    Column("header_from", String(255), nullable=False),
    Column("envelope_from", String(255), nullable=True),
    Column("envelope_to", String(255), nullable=True),
    Column("auth", JSON, nullable=False),
    Column("ours", Boolean, nullable=False),
    Column("tenant", String(255), nullable=True),
    Column("route", String(255), nullable=True),
    Column("note", String(1024), nullable=False),
    Index("ix_dmarc_records_tenant_end", "tenant", "end"),
    Index("ix_dmarc_records_header_from", "header_from"),
    Index("ix_dmarc_records_report_id", "report_id"),
)

# The latest authentication findings per tenant domain (and pool return path): each
# check with its status, the record read and the reason; replaced per tenant on each check.
auth_findings = Table(
    "auth_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(255), nullable=True),
    Column("domain", String(255), nullable=False),
    Column("check", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("record", Text, nullable=True),
    Column("route", String(255), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("checked_at", Float, nullable=False),
    Index("ix_auth_findings_tenant", "tenant"),
)
