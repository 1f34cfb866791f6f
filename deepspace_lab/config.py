"""Settings: one frozen object built from the environment or from traitlets.

Every setting has one :class:`SettingSpec` in :data:`SETTINGS` (name, type, default, help);
its environment variable is ``DEEPSPACE_<NAME>``. The server extension exposes each one as a
trait of the same name; the CLI, the worker and notebooks call :meth:`Settings.from_env`.
The core reads ``os.environ`` nowhere else. The README's configuration table lists every
entry of :data:`SETTINGS` (a test keeps it complete).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidRequest

ENV_PREFIX = "DEEPSPACE_"
SECRET_KEY_FILE = "secret_key"


class ConfigError(InvalidRequest):
    """A setting is missing or malformed."""

    default_code = "config_error"


@dataclass(frozen=True)
class SettingSpec:
    name: str
    type: type
    default: Any
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("data_dir", str, None,
                "Folder for the embedded database, secret key and local storage. "
                "Default: $XDG_DATA_HOME/deepspace-lab or ~/.local/share/deepspace-lab."),
    SettingSpec("database_url", str, None,
                "SQLAlchemy URL. Default: sqlite:///<data_dir>/deepspace.db. "
                "For PostgreSQL use postgresql://user@host/db (psycopg 3).", secret=True),
    SettingSpec("redis_url", str, None,
                "redis://host:port/db for limits shared across processes, and the Worker's queue. "
                "Unset: in-process limits (one gateway process) and the Worker on SQLite.", secret=True),
    SettingSpec("upstream_base_url", str, None,
                "OpenAI-compatible upstream base URL ending in /v1 (NewAPI or any other). "
                "Unset: the built-in simulated upstream, started inside the gateway."),
    SettingSpec("upstream_api_key", str, None,
                "Bearer key sent to the upstream. Only gateways and workers hold it.",
                secret=True),
    SettingSpec("storage_url", str, None,
                "Where files and artifacts go: a folder or an fsspec URL (s3://...). "
                "Default: <data_dir>/storage. S3 / MinIO: s3://bucket/prefix with the usual AWS_* variables "
                "(AWS_ENDPOINT_URL for MinIO)."),
    SettingSpec("storage_max_file_bytes", int, 25 * 1024 * 1024,
                "Largest file a caller may upload (bytes); larger is refused with 413 `file_too_large`."),
    SettingSpec("storage_content_types", str,
                "text/plain,text/markdown,text/csv,application/json,application/pdf,application/x-ipynb+json,"
                "image/png,image/jpeg,application/octet-stream",
                "Comma-separated content types a caller may upload (`type/*` allows a family); others are "
                "refused with 415 `unsupported_content_type`."),
    SettingSpec("worker_backend", str, "auto",
                "The Worker's queue (Huey): `sqlite` (a file in the data dir, one machine), `redis` "
                "(DEEPSPACE_REDIS_URL, workers on many machines), `postgresql` (the database, many machines) or "
                "`auto`: redis when DEEPSPACE_REDIS_URL is set, else postgresql with a PostgreSQL database, "
                "else sqlite."),
    SettingSpec("worker_queue", str, "deepspace",
                "Name of the Worker's queue; gateways and workers that share it share jobs."),
    SettingSpec("worker_threads", int, 2, "Jobs one `deepspace-lab worker` process runs at once."),
    SettingSpec("job_max_attempts", int, 3,
                "Times a job is tried (a failure or a lost worker counts) before it is `failed`."),
    SettingSpec("job_lease_s", float, 60.0,
                "Lease of a running job; its worker renews it, and a job whose lease lapsed (worker killed) "
                "is queued again by the other workers."),
    SettingSpec("workflow_gateway_url", str, None,
                "The Gateway (server root, e.g. http://127.0.0.1:8800) that workflow steps on a worker call with "
                "their run's key. Unset: `llm` and `verify` judge steps fail with `workflow_gateway_unset`."),
    SettingSpec("workflow_max_concurrent_runs", int, 10,
                "Workflow runs one org may have running at once; more are refused with 429 `workflow_limit` "
                "(0: no limit)."),
    SettingSpec("workflow_max_run_s", float, 6 * 3600.0,
                "Longest a workflow run may take (seconds, from its start); past it the run fails with "
                "`run_time_exceeded`. Its model calls' idempotency keys are kept this long plus 24 h."),
    SettingSpec("retention_audit_days", int, 0,
                "Audit rows older than this many days are deleted by the daily retention job (0: kept forever)."),
    SettingSpec("retention_usage_days", int, 0,
                "Usage records older than this many days are deleted (their roll-ups stay; 0: kept forever)."),
    SettingSpec("retention_messages_days", int, 0,
                "Conversation messages older than this many days are deleted (0: kept forever)."),
    SettingSpec("retention_jobs_days", int, 0,
                "Finished jobs and their events older than this many days are deleted, and so is the event log of "
                "workflow runs that ended that long ago (the runs and their steps stay; 0: kept forever)."),
    SettingSpec("webhook_max_attempts", int, 5,
                "Times the Worker tries to deliver one webhook event (backoff 1, 2, 4 … s, at most 60 s) "
                "before its delivery is `failed`."),
    SettingSpec("webhook_timeout_s", float, 10.0,
                "Seconds a webhook receiver has to answer one delivery attempt (then it counts as failed)."),
    SettingSpec("webhook_private_networks", str, "",
                "Comma-separated CIDRs of non-public addresses webhooks may be delivered to (e.g. "
                "`10.0.0.0/8` for an internal receiver). Every other private, loopback, link-local or "
                "reserved address is refused, so a hook cannot reach the deployment's internal hosts."),
    SettingSpec("webhook_low_balance_micros", int, 1_000_000,
                "A wallet whose balance falls below this (micro-credits) fires `wallet.low_balance`, once until "
                "it is topped up above it."),
    SettingSpec("secret_key", str, None,
                "Signs tokens and keys the API-key HMAC. Default: <data_dir>/secret_key, "
                "made by `deepspace-lab init`. Required with PostgreSQL.", secret=True),
    SettingSpec("upstream_connect_timeout_s", float, 5.0,
                "Seconds to connect to the upstream before answering 502."),
    SettingSpec("upstream_timeout_s", float, 60.0,
                "Seconds to wait for the upstream before answering 504: until the first byte of a "
                "stream, or the whole body of a non-streaming call."),
    SettingSpec("upstream_max_duration_s", float, 600.0,
                "Hard cap in seconds on one upstream call, streams included."),
    SettingSpec("max_body_bytes", int, 8 * 1024 * 1024,
                "Largest request body the gateway accepts (bytes); larger is refused with 400."),
    SettingSpec("audit_flush_interval_ms", int, 50,
                "Audit rows are written in batches this often (ms). 0 writes each row "
                "before the response ends."),
    SettingSpec("catalog_cache_ttl_s", float, 5.0,
                "Seconds a models-catalog lookup is cached in a gateway process (credentials are never cached)."),
    SettingSpec("default_max_output_tokens", int, 4096,
                "Output cap for a chat request that names no `max_tokens`: the hold covers it and the "
                "upstream is asked for no more."),
    SettingSpec("hold_lease_s", float, 120.0,
                "Lease of a request's hold; a live request renews it, reconciliation releases lapsed ones."),
    SettingSpec("drain_timeout_s", float, 30.0,
                "After a client disconnects mid-stream, how long the gateway keeps reading the upstream "
                "to learn the usage before it gives up and bills an estimate."),
    SettingSpec("max_concurrent_drains", int, 32,
                "Streams a gateway process drains at once after their clients left; more are cut and "
                "billed an estimate."),
    SettingSpec("init_credit_micros", int, 100_000_000,
                "Credit `deepspace-lab init` grants the first org (micro-credits; 0 for none)."),
    SettingSpec("trusted_proxies", str, "",
                "Comma-separated addresses or CIDRs of reverse proxies whose `X-Forwarded-For` is believed "
                "(IP rules, rate limits and audit see the client behind them). Others' headers are ignored."),
    SettingSpec("rate_limit_failure_mode", str, "open",
                "What rate limits do while Redis cannot be reached: `open` admits requests unlimited "
                "(budgets and the wallet still bound spending), `closed` refuses them with 503 "
                "`rate_limiter_unavailable`. Either way service recovers by itself when Redis is back."),
    SettingSpec("simulator_token_latency_ms", float, 15.0,
                "Delay per streamed token of the built-in simulated upstream (ms)."),
    SettingSpec("pipeline_steps", str, "workflow",
                "Comma-separated extension steps (entry-point group deepspace_lab.pipeline_steps) "
                "to run between the core steps, in order; `none` for none. Core steps cannot be listed. "
                "`workflow` runs a chat request's workflow (see Workflows)."),
    SettingSpec("gateway_url", str, None,
                "Remote mode, on a Jupyter server: the shared Gateway's URL (server root). Set, the extension "
                "hosts no Gateway and needs no database or upstream settings; each kernel gets this URL and its "
                "user's own token, exchanged for the server's JUPYTERHUB_API_TOKEN."),
    SettingSpec("jupyterhub_api_url", str, None,
                "Remote mode, on the gateway: the JupyterHub API (https://hub/hub/api) against which a "
                "Jupyter server's Hub token is checked before its user gets a DeepSpace token."),
    SettingSpec("jupyter_user_org", str, None,
                "Remote mode: the org (id) where Jupyter users are created on first use."),
    SettingSpec("jupyter_user_role", str, "member", "Remote mode: the role Jupyter users get on first use."),
    SettingSpec("log_level", str, "INFO", "Log level of the gateway and CLI."),
    SettingSpec("log_format", str, "text", "`text` or `json` (one JSON object a line)."),
)

SPECS: dict[str, SettingSpec] = {s.name: s for s in SETTINGS}


def _proxies(text: str, param: str = "DEEPSPACE_TRUSTED_PROXIES") -> str:
    """A list of addresses or CIDRs (the trusted proxies, the webhook networks), each entry checked
    and normalised."""
    entries = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            entries.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{param}: {part!r} is not an IP address or CIDR", param=param) from None
    return ",".join(entries)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "deepspace-lab"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved configuration. Build with :meth:`from_env` or :meth:`build`."""

    data_dir: Path
    database_url: str = dataclasses.field(repr=False)
    redis_url: str | None = dataclasses.field(default=None, repr=False)
    upstream_base_url: str | None = None
    upstream_api_key: str | None = dataclasses.field(default=None, repr=False)
    storage_url: str
    storage_max_file_bytes: int = 25 * 1024 * 1024
    storage_content_types: str = ""
    worker_backend: str = "auto"
    worker_queue: str = "deepspace"
    worker_threads: int = 2
    job_max_attempts: int = 3
    job_lease_s: float = 60.0
    workflow_gateway_url: str | None = None
    workflow_max_concurrent_runs: int = 10
    workflow_max_run_s: float = 6 * 3600.0
    retention_audit_days: int = 0
    retention_usage_days: int = 0
    retention_messages_days: int = 0
    retention_jobs_days: int = 0
    webhook_max_attempts: int = 5
    webhook_timeout_s: float = 10.0
    webhook_low_balance_micros: int = 1_000_000
    webhook_private_networks: str = ""
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    upstream_connect_timeout_s: float = 5.0
    upstream_timeout_s: float = 60.0
    upstream_max_duration_s: float = 600.0
    max_body_bytes: int = 8 * 1024 * 1024
    audit_flush_interval_ms: int = 50
    catalog_cache_ttl_s: float = 5.0
    default_max_output_tokens: int = 4096
    hold_lease_s: float = 120.0
    drain_timeout_s: float = 30.0
    max_concurrent_drains: int = 32
    init_credit_micros: int = 100_000_000
    trusted_proxies: str = ""
    rate_limit_failure_mode: str = "open"
    simulator_token_latency_ms: float = 15.0
    pipeline_steps: str = "workflow"
    gateway_url: str | None = None
    jupyterhub_api_url: str | None = None
    jupyter_user_org: str | None = None
    jupyter_user_role: str = "member"
    log_level: str = "INFO"
    log_format: str = "text"

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from ``DEEPSPACE_*`` variables; ``overrides`` (non-None values) win."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for spec in SETTINGS:
            if spec.env in env and env[spec.env] != "":
                raw[spec.name] = env[spec.env]
        for name, value in (overrides or {}).items():
            if name not in SPECS:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None and value != "":
                raw[name] = value
        return cls.build(raw)

    @classmethod
    def build(cls, raw: Mapping[str, Any]) -> Settings:
        values: dict[str, Any] = {}
        for spec in SETTINGS:
            value = raw.get(spec.name, spec.default)
            if value is not None and spec.type is not str:
                try:
                    value = spec.type(value)
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"{spec.env} must be a {spec.type.__name__}, got {value!r}",
                        param=spec.env,
                    ) from None
            values[spec.name] = value
        data_dir = Path(values["data_dir"]).expanduser() if values["data_dir"] else default_data_dir()
        values["data_dir"] = data_dir
        if not values["database_url"]:
            values["database_url"] = f"sqlite:///{data_dir / 'deepspace.db'}"
        if not values["storage_url"]:
            values["storage_url"] = str(data_dir / "storage")
        if not values["secret_key"]:
            key_file = data_dir / SECRET_KEY_FILE
            if key_file.exists():
                values["secret_key"] = key_file.read_text().strip() or None
        if values["log_format"] not in ("text", "json"):
            raise ConfigError("DEEPSPACE_LOG_FORMAT must be `text` or `json`", param="DEEPSPACE_LOG_FORMAT")
        if values["rate_limit_failure_mode"] not in ("open", "closed"):
            raise ConfigError("DEEPSPACE_RATE_LIMIT_FAILURE_MODE must be `open` or `closed`",
                              param="DEEPSPACE_RATE_LIMIT_FAILURE_MODE")
        values["trusted_proxies"] = _proxies(values["trusted_proxies"] or "")
        values["webhook_private_networks"] = _proxies(values["webhook_private_networks"] or "",
                                                      "DEEPSPACE_WEBHOOK_PRIVATE_NETWORKS")
        for name in ("default_max_output_tokens", "hold_lease_s", "drain_timeout_s"):
            if values[name] <= 0:
                raise ConfigError(f"DEEPSPACE_{name.upper()} must be more than 0", param=f"DEEPSPACE_{name.upper()}")
        if values["worker_backend"] not in ("auto", "sqlite", "redis", "postgresql"):
            raise ConfigError("DEEPSPACE_WORKER_BACKEND must be `auto`, `sqlite`, `redis` or `postgresql`",
                              param="DEEPSPACE_WORKER_BACKEND")
        if not re.fullmatch(r"[A-Za-z0-9_]{1,60}", values["worker_queue"] or ""):
            raise ConfigError("DEEPSPACE_WORKER_QUEUE must be 1-60 letters, digits or _",
                              param="DEEPSPACE_WORKER_QUEUE")
        for name in ("storage_max_file_bytes", "worker_threads", "job_max_attempts", "job_lease_s",
                     "workflow_max_run_s", "webhook_max_attempts", "webhook_timeout_s"):
            if values[name] <= 0:
                raise ConfigError(f"DEEPSPACE_{name.upper()} must be more than 0", param=f"DEEPSPACE_{name.upper()}")
        for name in ("workflow_max_concurrent_runs", "max_concurrent_drains", "init_credit_micros",
                     "retention_audit_days", "retention_usage_days",
                     "retention_messages_days", "retention_jobs_days"):
            if values[name] < 0:
                raise ConfigError(f"DEEPSPACE_{name.upper()} must be 0 or more", param=f"DEEPSPACE_{name.upper()}")
        return cls(**values)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_simulator(self) -> bool:
        return not self.upstream_base_url

    def require_secret_key(self) -> str:
        """The signing secret, or a :class:`ConfigError` that says how to get one."""
        if not self.secret_key:
            raise ConfigError(
                "no secret key: set DEEPSPACE_SECRET_KEY (required with PostgreSQL), "
                "or run `deepspace-lab init` to generate one into the data dir",
                code="secret_key_missing",
            )
        return self.secret_key

    @property
    def queue_backend(self) -> str:
        """The Worker's queue backend once ``auto`` is resolved: sqlite, redis or postgresql."""
        if self.worker_backend != "auto":
            return self.worker_backend
        if self.redis_url:
            return "redis"
        return "sqlite" if self.is_sqlite else "postgresql"

    @property
    def allowed_content_types(self) -> tuple[str, ...]:
        return tuple(t.strip().lower() for t in self.storage_content_types.split(",") if t.strip())

    @property
    def extension_steps(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.pipeline_steps.split(",") if n.strip() and n.strip() != "none")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)
