"""Collector settings: environment variables ``ANBU_*`` (or a ``.env``-style file), typed.

Outside ``environment="development"`` the collector refuses to start with a weak or placeholder
secret (collector/secret_strength.py: length, placeholder words, variety, entropy), so a demo
password can never reach production by accident, and with a clear-text connection to another
host (collector/remote_tls.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector import remote_tls
from collector.secret_strength import weakness

PLACEHOLDER = "changethis"


class CollectorSettings(BaseSettings):
    """Every knob of the collector; each field is ``ANBU_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ANBU_", extra="forbid", frozen=True)

    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Storage
    database_url: str = Field(
        default="sqlite:////var/lib/anbu-collector/anbu.sqlite3",
        description="sqlite:////ABSOLUTE/PATH (its directory must exist) or "
        "postgresql+psycopg://USER:PASS@HOST:PORT/DB",
    )
    db_pool_size: int = Field(default=20, ge=2, le=1000, description="database connections")
    api_db_sessions: int = Field(
        default=12, ge=1, description="API requests holding a connection at once (< pool)"
    )
    api_db_wait_s: float = Field(
        default=1.0, gt=0, le=30, description="wait for one, then 503 with Retry-After"
    )
    api_list_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="serve a repeated list page from memory at most this long, and only until "
        "this collector writes a table it was read from (0: read every page)",
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

    # Pages for people (collector/web): logins, sessions, signed message links, the map
    link_secret: str = Field(default=PLACEHOLDER, repr=False, description="HMAC key of SMS links")
    link_ttl_h: float = Field(default=72.0, gt=0, le=24 * 31, description="SMS/e-mail link life")
    session_ttl_h: float = Field(default=12.0, gt=0, le=24 * 31, description="login lifetime")
    login_max_failures: int = Field(default=5, ge=1, le=1000, description="per user and address")
    login_window_s: float = Field(default=300.0, gt=0, description="window of login_max_failures")
    map_tile_url: str | None = Field(
        default=None, description="{z}/{x}/{y} tile URL; unset: markers on a plain background"
    )
    map_tile_attribution: str = ""

    # MQTT
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt:// or mqtts://")
    mqtt_username: str | None = "collector"
    mqtt_password: str | None = Field(default=PLACEHOLDER, repr=False)
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_client_id: str = "anbu-collector-1"
    mqtt_share_group: str = "anbu-collectors"

    # Silent homes (docs/silence.md)
    silence_enabled: bool = Field(
        default=True, description="raise silence flags (check-in, then a dispatch)"
    )
    silence_checkin: bool = Field(
        default=True, description="ask the home's speaker before a silence dispatch"
    )
    silence_checkin_window_min: float = Field(
        default=10.0, gt=0, le=240, description="minutes from the check-in request to dispatch"
    )
    silence_checkin_ttl_min: float = Field(
        default=5.0, gt=0, le=240, description="a request not played this soon is not played"
    )
    silence_checkin_listen_s: float = Field(
        default=60.0, ge=5, le=600, description="seconds the speaker listens after each prompt"
    )
    silence_checkin_repeats: int = Field(
        default=2, ge=1, le=5, description="times the check-in prompt is played"
    )
    silence_escalate_after_s: float = Field(
        default=900.0, gt=0, description="escalate a silence dispatch nobody accepted"
    )
    silence_flush_interval_s: float = Field(
        default=5.0, gt=0, le=300, description="life signs are written behind this often"
    )
    silence_learning_days: float = Field(
        default=14.0, ge=0, le=365, description="days a home is observed before its routine is used"
    )
    silence_routine_margin_factor: float = Field(
        default=1.25, ge=1, le=10, description="the learned routine allows this × the longest quiet"
    )
    silence_routine_margin_h: float = Field(
        default=1.5, ge=0, le=48, description="...plus this many hours"
    )
    silence_routine_by_context: bool = Field(
        default=True,
        description="also limit a quiet stretch by the longest one after a sign of the same kind",
    )
    supervision_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="how often technician tickets are decided"
    )
    supervision_heartbeat_interval_s: float = Field(
        default=300.0, gt=0, le=86400, description="the agents' heartbeat interval"
    )
    supervision_missed_heartbeats: int = Field(
        default=3, ge=1, le=100, description="heartbeats missed before a device is offline"
    )
    supervision_offline_dispatch_after_s: float = Field(
        default=4 * 3600.0,
        ge=0,
        le=30 * 86400,
        description="a home with no device up this long gets a device_offline dispatch (0: never)",
    )

    # Ingest pipeline (see collector/pipeline.py)
    ingest_batch_max: int = Field(
        default=2000, ge=1, le=20_000, description="most messages in one bulk transaction"
    )
    ingest_batch_wait_ms: float = Field(
        default=50.0, ge=0, le=5000, description="how long a bulk batch may wait to fill"
    )
    ingest_receive_maximum: int = Field(
        default=5000, ge=1, le=65535, description="unacknowledged messages per MQTT connection"
    )
    ingest_bulk_clients: int = Field(
        default=1, ge=1, le=16, description="MQTT connections feeding the bulk lane"
    )
    ingest_bulk_process: bool = Field(
        default=True,
        description="run the bulk lane in a child process, so heartbeats never delay an SOS",
    )
    ingest_bulk_nice: int = Field(
        default=5, ge=0, le=19, description="how much lower the bulk process's CPU priority is"
    )

    # E-mail (SMTP)
    smtp_host: str | None = Field(default=None, description="unset: no e-mail is sent")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_starttls: bool | None = Field(
        default=None, description="unset: on, except for an SMTP server on loopback"
    )
    smtp_from: str = "anbu@localhost"
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    # SMS (HTTP gateway)
    sms_gateway_url: str | None = Field(default=None, description="unset: no SMS is sent")
    sms_gateway_token: str | None = Field(default=None, repr=False)
    sms_sender: str = "0200000000"
    sms_timeout_s: float = Field(default=10.0, gt=0)
    sms_inbound_token: str | None = Field(
        default=None,
        repr=False,
        description="bearer token of POST /sms/inbound (texts to the district's number); "
        "unset: that address answers 404",
    )
    sms_district_numbers: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"0233301234": "seodaemun"}: which district a texted number serves',
    )

    # Dispatch and escalation
    sos_ack_timeout_s: float = Field(default=60.0, gt=0, description="escalate an unacked SOS")
    escalation_repeat_s: float = Field(default=300.0, gt=0)
    escalation_file: Path | None = Field(
        default=None,
        description="TOML of escalation chains per kind and district, contacts, office "
        "hours and holidays (docs/escalation.md); unset: the built-in 60 s / 5 min ladder",
    )
    staff_name: str = "District welfare office"
    staff_email: str | None = None
    staff_phone: str | None = None
    scheduler_interval_s: float = Field(default=1.0, gt=0, le=60)
    notify_max_attempts: int = Field(
        default=8, ge=1, le=100, description="attempts once the dispatch is no longer open"
    )
    notify_escalate_after_s: float = Field(
        default=120.0, gt=0, description="tell the staff about a notification undelivered this long"
    )

    # Time series (optional)
    influx_url: str | None = Field(default=None, description="unset: no time series are written")
    influx_token: str | None = Field(default=None, repr=False)
    influx_org: str = "anbu"
    influx_bucket: str = "anbu"
    influx_batch_size: int = Field(default=5000, ge=1, le=100_000, description="points per write")
    influx_flush_interval_ms: int = Field(default=1000, ge=10, le=60_000)
    influx_queue_max: int = Field(
        default=100_000, ge=1, le=10_000_000, description="points held; beyond, oldest dropped"
    )
    influx_retry_max_s: float = Field(default=30.0, gt=0, le=3600, description="back-off ceiling")
    influx_timeout_ms: int = Field(default=5000, ge=100, le=120_000)

    @field_validator("api_token", "mqtt_password")
    @classmethod
    def _not_placeholder(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator (not the model one) so that every placeholder is reported at once.
        if value == PLACEHOLDER and info.data.get("environment", "development") != "development":
            name = str(info.field_name)
            raise ValueError(f"still {PLACEHOLDER!r}: set ANBU_{name.upper()} in production")
        return value

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
        if self.silence_checkin_ttl_min > self.silence_checkin_window_min:
            raise ValueError(
                f"silence_checkin_ttl_min={self.silence_checkin_ttl_min} must not exceed "
                f"silence_checkin_window_min={self.silence_checkin_window_min}"
            )
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"database_url={self.database_url!r} must be sqlite:// or postgresql")
        if self.environment != "development":
            for name in self._production_secrets():
                reason = weakness(getattr(self, name))
                if reason is not None:
                    raise ValueError(
                        f"{name} {reason}: set ANBU_{name.upper()} to a random value "
                        "(e.g. openssl rand -base64 32) in production"
                    )
            for problem in (
                remote_tls.mqtt_problem(self.mqtt_url),
                remote_tls.postgres_problem(self.database_url),
                remote_tls.smtp_problem(self.smtp_host, self.smtp_use_starttls),
                remote_tls.sms_problem(self.sms_gateway_url),
            ):
                if problem is not None:
                    raise ValueError(problem)
        return self

    def _production_secrets(self) -> list[str]:
        """Secrets in use: the API token, each credential of a configured service, and any
        ``*_secret`` field (signing secrets)."""
        names = ["api_token"]
        if self.mqtt_username is not None and self.mqtt_cert_file is None:
            names.append("mqtt_password")
        if self.smtp_host and self.smtp_username:
            names.append("smtp_password")
        if self.sms_gateway_url and self.sms_gateway_token is not None:
            names.append("sms_gateway_token")
        if self.sms_inbound_token is not None:
            names.append("sms_inbound_token")
        if self.influx_url:
            names.append("influx_token")
        names += [
            name
            for name in type(self).model_fields
            if name.endswith("_secret") and getattr(self, name) is not None
        ]
        return names

    @property
    def smtp_use_starttls(self) -> bool:
        """STARTTLS unless switched off, or unset with the SMTP server on loopback."""
        if self.smtp_starttls is None:
            return not remote_tls.is_loopback(self.smtp_host)
        return self.smtp_starttls

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
