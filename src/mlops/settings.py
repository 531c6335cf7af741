"""The one settings object, read from ``MLOPS_*`` environment variables and an optional ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops.errors import redact

# Settings whose value is a URL that may carry a password (user:password@host, ?password=).
URL_FIELDS = ("database_url", "warehouse_url", "mlflow_tracking_uri")


class Settings(BaseSettings):
    """Every knob of mlops. Defaults are embedded: SQLite files under ``home``, no server."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(Path(".mlops"), description="Folder for the embedded SQLite files.")
    database_url: str | None = Field(
        None, description="Feature store database; default sqlite:///<home>/mlops.db"
    )
    warehouse_url: str | None = Field(
        None, description="Warehouse holding the raw tables; default sqlite:///<home>/warehouse.db"
    )
    redis_url: SecretStr | None = None
    mlflow_tracking_uri: str | None = None
    environment: str = Field(
        "production", description="'staging' makes scheduled training dry-run."
    )

    reject_threshold: float = Field(
        0.05, ge=0, le=1, description="An ingestion run fails when more rows than this share fail."
    )
    backfill_chunk_rows: int = Field(
        100_000, gt=0, description="Rows computed per backfill query and transaction."
    )
    ingest_workers: int | None = Field(
        None,
        ge=1,
        le=32,
        description="Backfill chunks computed in the warehouse at once; default 2 on a "
        "server database, 1 on SQLite (its threads contend on a global allocator lock).",
    )

    repo: Path | None = Field(
        None,
        description="Feature repository folder (jobs, their SQL and heuristics); default the "
        "bundled marketplace example. `mlops init DIR` makes one.",
    )
    heuristic_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per job, values that override its heuristic's params (JSON), e.g. "
        '{"<job>": {"<param>": 12.5}}.',
    )

    # Serving.
    api_token: SecretStr | None = Field(
        None, description="Bearer token of the admin routes; without one they are disabled."
    )
    serve_host: str = Field("127.0.0.1", description="Address `mlops serve` binds.")
    serve_port: int = Field(8000, ge=1, le=65535, description="Port `mlops serve` binds.")
    serve_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    serve_threads: int = Field(
        16, ge=1, le=256, description="Request threads per worker (the blocking routes)."
    )
    model_threads: int = Field(
        4, ge=1, le=64, description="Threads per worker running model paths under a budget."
    )
    model_isolation: Literal["thread", "inline"] = Field(
        "thread",
        description="thread: a request that needs a read or a model call runs on a pool "
        "thread and is cut off at twice the SLO. inline: it runs on the event loop (no thread "
        "hop), and an overrun is caught only when it ends (then answered by the heuristic and "
        "counted toward the circuit, which stops calling a slow model). Answers from memory "
        "never leave the loop in either.",
    )
    slo_ms: dict[str, float] = Field(
        default_factory=dict,
        description="Latency SLO per endpoint in ms, overriding the endpoint's own (predict: 50; "
        'a repository\'s endpoints declare theirs), e.g. {"predict": 40} (JSON); a model path '
        "is cut off at twice it.",
    )
    circuit_overruns: int = Field(
        5, ge=1, description="Consecutive model-path overruns or errors that open the circuit."
    )
    circuit_cooldown_seconds: float = Field(
        30.0, gt=0, description="How long an open circuit answers with the heuristic."
    )
    feature_cache_seconds: float = Field(
        300.0,
        ge=0,
        description="In-process cache of online feature rows (0: no cache). A refresh's new "
        "values replace cached ones at the next control poll, whatever this lifetime.",
    )
    profile_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="In-process cache of the warehouse reads a repository's own endpoints "
        "make (the bundled example: a customer's profile; 0: read every time). "
        "An older one is read again: in the background while it still answers, up to "
        "twice this age; by the request past that.",
    )
    score_cache_entries: int = Field(
        50_000,
        ge=1,
        description="Model scores memoised per worker (exact: keyed by version "
        "and feature values).",
    )
    redis_cache_seconds: float = Field(
        30.0, gt=0, description="Lifetime of feature rows in the shared Redis cache."
    )
    control_poll_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a replica re-reads flags, trips and what the repository's "
        "endpoints hold.",
    )
    registry_poll_seconds: float = Field(
        30.0, gt=0, description="How often a replica asks the registry for new champions."
    )
    # Few, large transactions: with two workers on one SQLite store, a write of 100 rows each
    # time 100 were pending halved the requests/s answered from memory (1,100-1,200 against
    # 2,000-2,200 with a write every 5 s); PostgreSQL takes a large batch as one statement.
    prediction_log_flush_seconds: float = Field(
        5.0,
        gt=0,
        description="Longest wait before logged predictions are written (what a crash, unlike "
        "a clean shutdown, can lose).",
    )
    prediction_log_batch: int = Field(
        5_000, ge=1, description="Predictions written per transaction at most."
    )
    prediction_log_max_pending: int = Field(
        100_000, ge=1, description="Unwritten predictions kept while the database is down."
    )
    log_requests: bool = Field(True, description="One JSON log line per HTTP request.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Browser origins allowed to call the API, e.g. ["https://ops.example"] '
        "(JSON); none by default.",
    )

    # Monitoring.
    auto_fallback: dict[str, bool] = Field(
        default_factory=dict,
        description="Per job, overrides its declared auto_fallback (default on): a drift alert "
        "or guardrail breach trips the job to its heuristic until an engineer clears it "
        '(mlops flags clear-trips <job>), e.g. {"<job>": false} (JSON).',
    )
    drift_min_sample: int = Field(
        100, ge=1, description="Fewest live values a KS or chi-square test is judged on."
    )
    accuracy_floor: dict[str, float] = Field(
        default_factory=dict,
        description="Per job, overrides its declared accuracy_floor, the alert line: ROC-AUC "
        "below it for a binary job, MAE above it for a regression job (JSON).",
    )
    accuracy_min_sample: int = Field(
        200, ge=1, description="Fewest labelled predictions an accuracy alert is judged on."
    )
    ab_treatment_share: dict[str, float] = Field(
        default_factory=dict,
        description="Per job, overrides its declared ab_treatment_share (default 1.0, no "
        "experiment): the share of entities in the treatment arm (model); the rest get the "
        "heuristic as the control arm (JSON).",
    )
    ab_salt: str = Field(
        "mlops-ab-1", description="Salt of the arm assignment; change it to reshuffle arms."
    )
    guardrail_margin: dict[str, float] = Field(
        default_factory=dict,
        description="Per job, overrides its guardrail's declared margin: how far (absolute) "
        "the treatment's guardrail metric may regress from the control's before a significant "
        "difference trips the fallback (JSON).",
    )
    guardrail_alpha: float = Field(
        0.05, gt=0, lt=1, description="Significance level of the guardrail test (one-sided)."
    )
    guardrail_min_sample: int = Field(
        500, ge=1, description="Fewest outcomes per arm before a guardrail is judged."
    )
    alert_webhook_url: SecretStr | None = Field(
        None, description="Alerts are also POSTed here as JSON (Slack, PagerDuty, ...)."
    )
    alert_webhook_timeout_seconds: float = Field(
        5.0, gt=0, description="Timeout of one webhook attempt."
    )
    alert_webhook_retries: int = Field(
        3, ge=0, le=10, description="Webhook retries after a failed attempt (with backoff)."
    )
    ops_metrics_seconds: float = Field(
        15.0, ge=0, description="How long /metrics reuses the operational figures it read."
    )

    def __repr_args__(self):
        # repr and str of the settings end up in logs and tracebacks: never with a password.
        for name, value in super().__repr_args__():
            if name in URL_FIELDS and isinstance(value, str):
                value = redact(value)
            yield name, value

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking URI: a SQLite store under home unless set."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> str:
        """Where model artifacts go by default (a folder under home)."""
        return str((self.home / "mlartifacts").resolve())

    @field_validator("home", "repo")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def store_url(self) -> str:
        """The feature-store database URL, embedded SQLite unless set."""
        return self.database_url or f"sqlite:///{self.home / 'mlops.db'}"

    @property
    def warehouse_db_url(self) -> str:
        """The warehouse database URL, embedded SQLite unless set."""
        return self.warehouse_url or f"sqlite:///{self.home / 'warehouse.db'}"
