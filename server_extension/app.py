"""The Jupyter server extension: hosts the Gateway inside the user's Jupyter server.

Every setting of :data:`deepspace_lab.config.SETTINGS` is a trait of :class:`DeepSpaceApp`
(``c.DeepSpaceApp.database_url = ...`` or ``--DeepSpaceApp.database_url=...``); a trait left
unset falls back to its ``DEEPSPACE_*`` environment variable, then to the default.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, TraitType, Unicode

from deepspace_lab.client import gateway_root
from deepspace_lab.config import SPECS, Settings
from deepspace_lab.logs import configure_logging
from deepspace_lab.runtime import Runtime

from .jupyter_handlers import KERNEL_ACCESS_TTL, KERNEL_REFRESH_TTL, KERNEL_TOKEN_PATH, KernelTokenHandler
from .kernels import HubTokens, KernelHandoff, LocalTokens, TokenSource
from .lifecycle import GatewayLifecycle
from .routes import all_handlers

_TRAIT_TYPES: dict[type, type[TraitType[Any, Any]]] = {str: Unicode, int: Int, float: Float}


#: Settings whose plain name is already a trait of Jupyter's Application classes get a prefix.
TRAIT_NAMES = {name: name for name in SPECS} | {
    "data_dir": "deepspace_data_dir", "log_level": "deepspace_log_level", "log_format": "deepspace_log_format"}


def _trait(name: str) -> Any:
    spec = SPECS[name]
    return _TRAIT_TYPES[spec.type](None, allow_none=True, help=f"{spec.help} (env {spec.env})").tag(config=True)


class DeepSpaceApp(ExtensionApp):
    name = "deepspace_lab"
    description = "DeepSpace Lab Gateway: metered, audited OpenAI-compatible access to models"

    deepspace_data_dir = _trait("data_dir")
    database_url = _trait("database_url")
    redis_url = _trait("redis_url")
    upstream_base_url = _trait("upstream_base_url")
    upstream_api_key = _trait("upstream_api_key")
    storage_url = _trait("storage_url")
    storage_max_file_bytes = _trait("storage_max_file_bytes")
    storage_content_types = _trait("storage_content_types")
    worker_backend = _trait("worker_backend")
    worker_queue = _trait("worker_queue")
    worker_threads = _trait("worker_threads")
    job_max_attempts = _trait("job_max_attempts")
    job_lease_s = _trait("job_lease_s")
    workflow_gateway_url = _trait("workflow_gateway_url")
    workflow_max_concurrent_runs = _trait("workflow_max_concurrent_runs")
    workflow_max_run_s = _trait("workflow_max_run_s")
    retention_audit_days = _trait("retention_audit_days")
    retention_usage_days = _trait("retention_usage_days")
    retention_messages_days = _trait("retention_messages_days")
    retention_jobs_days = _trait("retention_jobs_days")
    webhook_max_attempts = _trait("webhook_max_attempts")
    webhook_timeout_s = _trait("webhook_timeout_s")
    webhook_low_balance_micros = _trait("webhook_low_balance_micros")
    webhook_private_networks = _trait("webhook_private_networks")
    secret_key = _trait("secret_key")
    upstream_connect_timeout_s = _trait("upstream_connect_timeout_s")
    upstream_timeout_s = _trait("upstream_timeout_s")
    upstream_max_duration_s = _trait("upstream_max_duration_s")
    max_body_bytes = _trait("max_body_bytes")
    audit_flush_interval_ms = _trait("audit_flush_interval_ms")
    catalog_cache_ttl_s = _trait("catalog_cache_ttl_s")
    default_max_output_tokens = _trait("default_max_output_tokens")
    hold_lease_s = _trait("hold_lease_s")
    drain_timeout_s = _trait("drain_timeout_s")
    max_concurrent_drains = _trait("max_concurrent_drains")
    init_credit_micros = _trait("init_credit_micros")
    trusted_proxies = _trait("trusted_proxies")
    rate_limit_failure_mode = _trait("rate_limit_failure_mode")
    simulator_token_latency_ms = _trait("simulator_token_latency_ms")
    pipeline_steps = _trait("pipeline_steps")
    gateway_url = _trait("gateway_url")
    jupyterhub_api_url = _trait("jupyterhub_api_url")
    jupyter_user_org = _trait("jupyter_user_org")
    jupyter_user_role = _trait("jupyter_user_role")
    deepspace_log_level = _trait("log_level")
    deepspace_log_format = _trait("log_format")

    def deepspace_settings(self) -> Settings:
        return Settings.from_env({name: getattr(self, trait) for name, trait in TRAIT_NAMES.items()})

    def initialize_settings(self) -> None:
        settings = self.deepspace_settings()
        configure_logging(level=settings.log_level, fmt=settings.log_format)
        self.runtime: Runtime | None = None
        self.lifecycle: GatewayLifecycle | None = None
        source: TokenSource
        if settings.gateway_url:  # remote mode: no Gateway here, no database, no upstream secret
            remote_url = gateway_root(settings.gateway_url)
            source = HubTokens(remote_url, os.environ.get("JUPYTERHUB_API_TOKEN"))
            self.handoff = KernelHandoff(source, lambda: remote_url)
        else:
            self.runtime = Runtime(settings)
            self.lifecycle = GatewayLifecycle(self.runtime)
            source = LocalTokens(self.runtime, access_ttl=KERNEL_ACCESS_TTL, refresh_ttl=KERNEL_REFRESH_TTL)
            self.handoff = KernelHandoff(source, lambda: gateway_root(self._connection_url()))
        self.token_source = source

    def _connection_url(self) -> str:
        if self.serverapp is None:  # linked before initialize_settings; a handoff runs only after that
            raise RuntimeError("the DeepSpace extension is not linked to a Jupyter server")
        return str(self.serverapp.connection_url)

    def initialize_handlers(self) -> None:
        if self.runtime is not None:
            self.handlers.extend(all_handlers(self.runtime))
        # Before the catch-all 404 of all_handlers? Tornado matches in order, so insert first.
        self.handlers.insert(0, (KERNEL_TOKEN_PATH, KernelTokenHandler, {"source": self.token_source}))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.handoff.install(serverapp.kernel_manager)
        if self.lifecycle is None or self.runtime is None:
            self.log.info("DeepSpace remote mode: kernels use the Gateway at %s", self.deepspace_settings().gateway_url)
            return
        await self.lifecycle.start()
        self.log.info("DeepSpace Gateway at %sdeepspace/v1 (%s upstream)", serverapp.connection_url,
                      "SIMULATED" if self.runtime.upstream_is_simulated else "configured")

    async def stop_extension(self) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.stop()
