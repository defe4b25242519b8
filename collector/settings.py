"""Collector settings: environment variables ``ANBU_*`` (or a ``.env``-style file), typed.

Outside ``environment="development"`` the collector refuses to start with placeholder secrets, so a
demo password can never reach production by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER = "changethis"


class CollectorSettings(BaseSettings):
    """Every knob of the collector; each field is ``ANBU_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ANBU_", extra="forbid", frozen=True)

    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Storage
    database_url: str = Field(
        default="sqlite:///var/anbu.sqlite3",
        description="sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST:PORT/DB",
    )
    db_pool_size: int = Field(default=20, ge=2, le=1000, description="database connections")
    api_db_sessions: int = Field(
        default=12, ge=1, description="API requests holding a connection at once (< pool)"
    )
    api_db_wait_s: float = Field(
        default=1.0, gt=0, le=30, description="wait for one, then 503 with Retry-After"
    )
    api_list_cache_s: float = Field(
        default=0.0, ge=0, le=60, description="serve a repeated list page from memory this long"
    )

    # Retention (collector/retention.py)
    heartbeat_retention_days: float = Field(
        default=30.0, gt=0, description="heartbeat rows older than this are rolled up and pruned"
    )
    seen_message_retention_days: float = Field(
        default=14.0, gt=0, description="de-duplication memory; must outlast any redelivery"
    )
    retention_interval_s: float = Field(default=3600.0, gt=0, description="how often to prune")

    # HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    api_token: str = Field(default=PLACEHOLDER, repr=False, description="staff API bearer token")
    public_url: str = Field(default="http://localhost:8000", description="base of message links")

    # MQTT
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt:// or mqtts://")
    mqtt_username: str | None = "collector"
    mqtt_password: str | None = Field(default=PLACEHOLDER, repr=False)
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_client_id: str = "anbu-collector-1"
    mqtt_share_group: str = "anbu-collectors"

    # E-mail (SMTP)
    smtp_host: str | None = Field(default=None, description="unset: no e-mail is sent")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_from: str = "anbu@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    # SMS (HTTP gateway)
    sms_gateway_url: str | None = Field(default=None, description="unset: no SMS is sent")
    sms_gateway_token: str | None = Field(default=None, repr=False)
    sms_sender: str = "0200000000"
    sms_timeout_s: float = Field(default=10.0, gt=0)

    # Dispatch and escalation
    sos_ack_timeout_s: float = Field(default=60.0, gt=0, description="escalate an unacked SOS")
    escalation_repeat_s: float = Field(default=300.0, gt=0)
    staff_name: str = "District welfare office"
    staff_email: str | None = None
    staff_phone: str | None = None
    scheduler_interval_s: float = Field(default=1.0, gt=0, le=60)
    notify_max_attempts: int = Field(default=8, ge=1, le=100)

    # Time series (optional)
    influx_url: str | None = Field(default=None, description="unset: no time series are written")
    influx_token: str | None = Field(default=None, repr=False)
    influx_org: str = "anbu"
    influx_bucket: str = "anbu"

    @model_validator(mode="after")
    def _checks(self) -> CollectorSettings:
        scheme = urlsplit(self.mqtt_url).scheme
        if scheme not in ("mqtt", "mqtts") or not urlsplit(self.mqtt_url).hostname:
            raise ValueError(f"mqtt_url={self.mqtt_url!r} must look like mqtt://host:1883")
        if self.api_db_sessions >= self.db_pool_size:
            raise ValueError(
                f"api_db_sessions={self.api_db_sessions} must be below db_pool_size="
                f"{self.db_pool_size}: ingest and notifications need connections too"
            )
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"database_url={self.database_url!r} must be sqlite:// or postgresql")
        if self.environment != "development":
            for name in ("api_token", "mqtt_password"):
                if getattr(self, name) == PLACEHOLDER:
                    raise ValueError(
                        f"{name} is still {PLACEHOLDER!r}: set ANBU_{name.upper()} in production"
                    )
        return self

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"
