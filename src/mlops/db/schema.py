"""The feature store's tables as the code expects them. Alembic revisions create them;
``tests/test_migrations.py`` proves the two agree."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from mlops.db.types import Timestamp

metadata = MetaData()

feature_specs = Table(
    "ml_feature_specs",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("entity", String(32), nullable=False),
    Column("dtype", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("owner", String(64), nullable=False),
    Column("source_view", String(64), nullable=False),
    Column("ttl_seconds", Integer, nullable=False),
    Column("nullable", Boolean, nullable=False),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("allowed_values", Text),
    Column("psi_warn", Float, nullable=False),
    Column("psi_alert", Float, nullable=False),
    Column("ks_pvalue", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("retired_at", Timestamp),
)

# Latest values, one row per entity and job with the values packed as JSON: one
# primary-key read serves a whole entity (see docs/architecture.md).
feature_values = Table(
    "ml_feature_values",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("entity_id", String(128), primary_key=True),
    Column("computed_at", Timestamp, nullable=False),
    Column("run_id", Integer),
    Column("values_json", Text, nullable=False),
)

# Append-only history as immutable columnar chunks (Arrow IPC): point-in-time joins
# read a few blobs instead of millions of rows.
feature_history = Table(
    "ml_feature_history",
    metadata,
    Column("chunk_id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("min_as_of", Timestamp, nullable=False),
    Column("max_as_of", Timestamp, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("feature_names", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_ml_feature_history_job_as_of", "job", "min_as_of", "max_as_of"),
)

# One row per ingested (job, as_of): makes re-runs idempotent and backfills resumable.
feature_snapshots = Table(
    "ml_feature_snapshots",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("as_of", Timestamp, primary_key=True),
    Column("run_id", Integer, nullable=False),
    Column("chunk_id", Integer, nullable=False),
    Column("entity_count", Integer, nullable=False),
)

ingestion_runs = Table(
    "ml_ingestion_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("as_of_start", Timestamp),
    Column("as_of_end", Timestamp),
    Column("scheduled_for", Timestamp),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("duration_seconds", Float),
    Column("status", String(16), nullable=False),
    Column("rows_read", Integer, nullable=False),
    Column("rows_written", Integer, nullable=False),
    Column("rows_rejected", Integer, nullable=False),
    Column("values_written", Integer, nullable=False),
    Column("snapshots_skipped", Integer, nullable=False),
    Column("error", Text),
    Index("ix_ml_ingestion_runs_job_started", "job", "started_at"),
)

feature_rejects = Table(
    "ml_feature_rejects",
    metadata,
    Column("reject_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("job", String(32), nullable=False),
    Column("entity_id", String(128)),
    Column("as_of", Timestamp, nullable=False),
    Column("feature", String(64)),
    Column("reason", Text, nullable=False),
    Column("value", Text),
    Index("ix_ml_feature_rejects_run", "run_id"),
)

# Every move of a job's ``champion`` alias: who, when, from which version to which, why, and
# the metrics the gate compared. Rollback walks this history back.
model_promotions = Table(
    "ml_model_promotions",
    metadata,
    Column("promotion_id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("metrics_json", Text, nullable=False),
    Column("promoted_at", Timestamp, nullable=False),
    Index("ix_ml_model_promotions_job", "job", "promotion_id"),
)

# The kill switch: one row per flag (``ml`` for everything, or a job name). No row means on.
flags = Table(
    "ml_flags",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

# A drift or guardrail trip sends a job to its heuristic until someone clears it.
fallback_trips = Table(
    "ml_fallback_trips",
    metadata,
    Column("trip_id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("tripped_at", Timestamp, nullable=False),
    Column("cleared_at", Timestamp),
    Column("cleared_by", String(128)),
    Index("ix_ml_fallback_trips_job", "job", "cleared_at"),
)

# Every ML-backed answer served, for accuracy monitoring (joined with outcomes later).
prediction_log = Table(
    "ml_prediction_log",
    metadata,
    Column("prediction_id", Integer, primary_key=True, autoincrement=True),
    Column("logged_at", Timestamp, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("job", String(32), nullable=False),
    Column("entity_id", String(128), nullable=False),
    # What the prediction is about beyond the entity (e.g. an offer proposed, an order to
    # deliver): the subject a job's outcome is matched on.
    Column("subject_id", String(128)),
    Column("prediction", Float, nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", String(32)),
    Column("model_version", Integer),
    Column("features_computed_at", Timestamp),
    Column("latency_ms", Float, nullable=False),
    # The A/B arm the entity was assigned to: treatment (model) or control (heuristic).
    Column("arm", String(16)),
    Index("ix_ml_prediction_log_job_logged", "job", "logged_at"),
)

# One row per statistic a monitor computed (drift per feature, accuracy, guardrails): the
# history the dashboard charts and the evidence behind every alert and trip.
monitor_results = Table(
    "ml_monitor_results",
    metadata,
    Column("result_id", Integer, primary_key=True, autoincrement=True),
    Column("checked_at", Timestamp, nullable=False),
    Column("monitor", String(16), nullable=False),
    Column("job", String(32), nullable=False),
    Column("feature", String(64), nullable=False),
    Column("statistic", String(32), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("status", String(16), nullable=False),
    Column("sample_size", Integer, nullable=False),
    Column("model_version", Integer),
    Column("detail", Text),
    Index("ix_ml_monitor_results_job_checked", "monitor", "job", "checked_at"),
)

# One row per incident: raised once when a condition starts, seen again while it lasts,
# resolved when a check finds it gone. A new incident after resolution is a new row.
alerts = Table(
    "ml_alerts",
    metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("job", String(32), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("opened_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("resolved_at", Timestamp),
    Column("occurrences", Integer, nullable=False),
    Column("delivered", Boolean, nullable=False),
    Index("ix_ml_alerts_open", "kind", "job", "subject", "status"),
)

# Every attempt of every task the built-in scheduler ran: the slot it was due (scheduled_for),
# when it really started (the difference is the scheduler delay), how it ended, and which
# scheduler process (owner) ran it.
scheduler_runs = Table(
    "ml_scheduler_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(64), nullable=False),
    Column("scheduled_for", Timestamp, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("owner", String(128), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Index("ix_ml_scheduler_runs_task_slot", "task", "scheduled_for"),
)

# One row per task some scheduler is running now: whoever holds an unexpired row runs the task;
# an expired row (its holder died) can be taken over. Rows are deleted on release.
scheduler_leases = Table(
    "ml_scheduler_leases",
    metadata,
    Column("task", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("acquired_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

# What `mlops apply` last applied of the feature repository, besides the specs (which live in
# ml_feature_specs): one row per view, schedule task and job model, with its definition as
# JSON. `mlops plan` compares the repository with these rows; removed objects are retired.
repository_objects = Table(
    "ml_repository_objects",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("job", String(32)),
    Column("definition", Text, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("applied_at", Timestamp, nullable=False),
    # When apply last changed the definition (None: as first applied); a model version
    # trained before it is outdated.
    Column("changed_at", Timestamp),
    Column("retired_at", Timestamp),
)
