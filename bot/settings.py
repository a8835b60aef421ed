"""Settings, built once (pydantic-settings) and passed down. Names: interfaces.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from bot.tracker.settings import TrackerSettings  # RECON_TRACKER, GITHUB_*, JIRA_*: follow-up tickets

MIN_REPORT_SECRET_BYTES = 32


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("recon", appauthor=False))


class Settings(TrackerSettings):
    """Every knob of recon. Environment variables (or a ``.env`` file) set them."""

    # hide_input_in_errors: a refused setting's value (a secret, often) is never printed
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True,
                                      hide_input_in_errors=True)

    # the bot's own store; unset: embedded PostgreSQL in data_dir
    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    # the platform's billing database (read-only role); unset: the demo billing database
    billing_database_url: SecretStr | None = Field(default=None, alias="BILLING_DATABASE_URL")
    loki_url: str | None = Field(default=None, alias="LOKI_URL")
    loki_tenant: str | None = Field(default=None, alias="LOKI_TENANT")
    tempo_url: str | None = Field(default=None, alias="TEMPO_URL")
    tempo_tenant: str | None = Field(default=None, alias="TEMPO_TENANT")
    # credentials of Loki and Tempo (basic or bearer), so that none has to be in a URL
    loki_user: str | None = Field(default=None, alias="LOKI_USER")
    loki_password: SecretStr | None = Field(default=None, alias="LOKI_PASSWORD")
    loki_bearer_token: SecretStr | None = Field(default=None, alias="LOKI_BEARER_TOKEN")
    tempo_user: str | None = Field(default=None, alias="TEMPO_USER")
    tempo_password: SecretStr | None = Field(default=None, alias="TEMPO_PASSWORD")
    tempo_bearer_token: SecretStr | None = Field(default=None, alias="TEMPO_BEARER_TOKEN")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(default=None, alias="SLACK_API_URL")

    approvers: str = Field(default="", alias="RECON_APPROVERS")
    alert_webhook_token: SecretStr | None = Field(default=None, alias="ALERT_WEBHOOK_TOKEN")
    api_token: SecretStr | None = Field(default=None, alias="RECON_API_TOKEN")
    alert_channel: str | None = Field(default=None, alias="RECON_ALERT_CHANNEL")
    watch_channels: str = Field(default="", alias="RECON_WATCH_CHANNELS")
    # who may post alerts in watched channels, and who may ask recon where (README, "Security");
    # unset: any bot / anywhere / anyone, with a warning at start
    alert_bots: str = Field(default="", alias="RECON_ALERT_BOTS")  # bot ids B… or app ids A…
    allowed_channels: str = Field(default="", alias="RECON_ALLOWED_CHANNELS")  # channel ids
    users: str = Field(default="", alias="RECON_USERS")  # user ids U…/W…, user-group ids S…
    public_url: str | None = Field(default=None, alias="RECON_PUBLIC_URL")
    approve_emoji: str = Field(default="white_check_mark", alias="RECON_APPROVE_EMOJI")
    decline_emoji: str = Field(default="x", alias="RECON_DECLINE_EMOJI")
    pin_emoji: str = Field(default="pushpin", alias="RECON_PIN_EMOJI")

    # recon's own additions
    data_dir: Path = Field(default_factory=default_data_dir, alias="RECON_DATA_DIR")
    evidence_dir: Path | None = Field(default=None, alias="RECON_EVIDENCE_DIR")
    source_timeout_s: float = Field(default=10.0, gt=0, alias="RECON_SOURCE_TIMEOUT")
    billing_statement_timeout_ms: int = Field(default=15000, gt=0, alias="RECON_BILLING_STATEMENT_TIMEOUT_MS")
    # the billing API's usage export (platform.md): a URL template with {org_id}, {month}, {project_id}
    billing_export_url: str | None = Field(default=None, alias="BILLING_EXPORT_URL")
    billing_export_token: SecretStr | None = Field(default=None, alias="BILLING_EXPORT_TOKEN")
    export_max_bytes: int = Field(default=1 << 30, gt=0, alias="RECON_EXPORT_MAX_BYTES")
    export_timeout_s: float = Field(default=120.0, gt=0, alias="RECON_EXPORT_TIMEOUT")
    loki_batch: int = Field(default=1000, ge=1, le=5000, alias="RECON_LOKI_BATCH")
    loki_max_entries: int = Field(default=20000, ge=1, alias="RECON_LOKI_MAX_ENTRIES")
    evidence_row_cap: int = Field(default=200, ge=1, alias="RECON_EVIDENCE_ROW_CAP")
    # a diagnosis reads in the runbook's order, one round trip after another (SourceSet.sequential)
    diagnosis_sequential: bool = Field(default=False, alias="RECON_DIAGNOSIS_SEQUENTIAL")
    log_level: str = Field(default="INFO", alias="RECON_LOG_LEVEL")
    log_format: Literal["json", "text"] | None = Field(default=None, alias="RECON_LOG_FORMAT")
    store_acquire_timeout_s: float = Field(default=30.0, gt=0, alias="RECON_STORE_ACQUIRE_TIMEOUT_S")
    store_statement_timeout_ms: int = Field(default=30000, gt=0, alias="RECON_STORE_STATEMENT_TIMEOUT_MS")
    job_lease_s: float = Field(default=30.0, gt=0, alias="RECON_JOB_LEASE_S")
    worker_slots: int = Field(default=4, ge=1, le=64, alias="RECON_WORKER_SLOTS")
    worker_poll_s: float = Field(default=2.0, gt=0, alias="RECON_WORKER_POLL_S")
    shutdown_grace_s: float = Field(default=20.0, ge=0, alias="RECON_SHUTDOWN_GRACE_S")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, alias="RECON_MAX_BODY_BYTES")
    approval_quorum: int = Field(default=1, ge=1, le=20, alias="RECON_APPROVAL_QUORUM")
    approval_expiry_h: float = Field(default=24.0, gt=0, alias="RECON_APPROVAL_EXPIRY_H")
    approvers_refresh_s: float = Field(default=300.0, gt=0, alias="RECON_APPROVERS_REFRESH_S")
    report_secret: SecretStr | None = Field(default=None, alias="RECON_REPORT_SECRET")
    # the secret before a rotation: its links still open until it is removed
    report_secret_previous: SecretStr | None = Field(default=None, alias="RECON_REPORT_SECRET_PREVIOUS")
    report_link_ttl_h: float = Field(default=72.0, gt=0, alias="RECON_REPORT_LINK_TTL_H")
    alert_routes: str | None = Field(default=None, alias="RECON_ALERT_ROUTES")
    alert_reopen_s: float = Field(default=3600.0, ge=0, alias="RECON_ALERT_REOPEN_S")
    storm_threshold: int = Field(default=5, ge=2, alias="RECON_STORM_THRESHOLD")
    storm_window_s: float = Field(default=120.0, gt=0, alias="RECON_STORM_WINDOW_S")
    storm_gather_s: float = Field(default=3.0, ge=0, alias="RECON_STORM_GATHER_S")
    slack_burst: int = Field(default=5, ge=1, alias="RECON_SLACK_BURST")
    slack_rate_per_s: float = Field(default=1.0, gt=0, alias="RECON_SLACK_RATE_PER_S")

    # retention (README, "Retention"): `recon retention`, the Helm CronJob, the serve task
    retention_days: int = Field(default=400, ge=1, alias="RECON_RETENTION_DAYS")  # incidents
    retention_jobs_days: int = Field(default=14, ge=1, alias="RECON_RETENTION_JOBS_DAYS")
    retention_slack_events_days: int = Field(default=7, ge=1, alias="RECON_RETENTION_SLACK_EVENTS_DAYS")
    retention_slack_posts_days: int = Field(default=30, ge=1, alias="RECON_RETENTION_SLACK_POSTS_DAYS")
    retention_alerts_days: int = Field(default=30, ge=1, alias="RECON_RETENTION_ALERTS_DAYS")
    retention_batch: int = Field(default=1000, ge=1, le=100_000, alias="RECON_RETENTION_BATCH")
    retention_interval_h: float = Field(default=0.0, ge=0, alias="RECON_RETENTION_INTERVAL_H")  # 0: off

    @field_validator("loki_url", "tempo_url", "slack_api_url", "public_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return v.strip().rstrip("/")

    @field_validator("report_secret", "report_secret_previous")
    @classmethod
    def _long_enough(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().encode("utf-8")) < MIN_REPORT_SECRET_BYTES:
            name = "RECON_REPORT_SECRET_PREVIOUS" if info.field_name == "report_secret_previous" else \
                "RECON_REPORT_SECRET"
            raise ValueError(f"{name} is shorter than {MIN_REPORT_SECRET_BYTES} bytes: report links signed with it "
                             "could be forged; use a long random value (python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        return v

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> Self:
        for name in ("LOKI", "TEMPO"):
            prefix = name.lower()
            user, password = getattr(self, f"{prefix}_user"), getattr(self, f"{prefix}_password")
            if getattr(self, f"{prefix}_bearer_token") is not None and (user or password is not None):
                raise ValueError(f"set {name}_BEARER_TOKEN or {name}_USER and {name}_PASSWORD, not both")
            if (user is None) != (password is None):
                raise ValueError(f"{name}_USER and {name}_PASSWORD go together (HTTP basic authentication)")
        return self

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def demo_evidence_dir(self) -> Path:
        return self.data_dir / "demo-evidence"


def load_settings() -> Settings:
    return Settings()
