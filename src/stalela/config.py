"""Typed settings: the one place the service reads its configuration from.

Every setting is an environment variable ``STALELA_<NAME>`` (or a line in an optional ``.env``).
The README's configuration table documents each of them; keep the two in step.
"""
from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from stalela.errors import StalelaError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STALELA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Where embedded state lives (SQLite file, key store).")
    database_url: str | None = Field(
        None, description="postgresql://... or sqlite:///path; default: SQLite file in data_dir."
    )
    database_role: str = Field(
        "stalela_app",
        description="PostgreSQL role the service switches to (SET ROLE) so row-level security applies "
        "even when it connects as a superuser; empty to connect as-is.",
    )
    database_pool_size: int = Field(20, ge=1, le=200)
    database_statement_cache: bool = Field(
        True, description="asyncpg prepared-statement cache; turn off behind PgBouncer (transaction mode)."
    )
    unavailable_retry_after_seconds: int = Field(
        5, ge=1, le=3600, description="Retry-After of a 503 answered while the database or Redis is unavailable."
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="API (uvicorn) processes of `stalela serve`.")
    background_workers: int = Field(
        1, ge=0, le=16, description="Background processes `stalela serve` starts and supervises (each runs what "
        "`stalela worker` runs); its API processes then do no background work. 0: no such process, the API "
        "processes do it as STALELA_INPROCESS_WORKERS says."
    )
    public_url: str | None = Field(None, description="Base URL printed in QR codes; default http://host:port.")
    # The MCP server (docs/assistants.md): mounted at /mcp of every API process.
    mcp_enabled: bool = Field(True, description="Serve the MCP server at /mcp (Streamable HTTP).")
    mcp_allowed_hosts: str = Field(
        "", description="Comma-separated Host values (host:port) /mcp answers besides loopback: the public "
        "host behind a proxy. The SDK's DNS-rebinding protection answers 421 to any other Host.")

    operator_token: SecretStr | None = Field(
        None, description="Bearer token of the platform operator; operator API disabled when unset."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Observability (docs/observability.md).
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: human-readable lines when stderr is a terminal, JSON lines otherwise."
    )
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token for GET /metrics on the API port; /metrics answers 404 while unset."
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Also serve /metrics on this internal port (every serve worker, SO_REUSEPORT)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address of the internal metrics listeners.")
    metrics_dir: Path | None = Field(
        None, description="prometheus-client multiprocess directory of `stalela serve`; default data_dir/metrics."
    )
    metrics_tenant_labels: bool = Field(
        True, description="Label per-tenant series with tenant and outlet ids; false folds them into '*'."
    )
    metrics_cache_seconds: float = Field(5.0, ge=0, description="How long database-derived gauges are reused.")
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`stalela worker` serves its own /metrics on this port (one per process)."
    )
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)

    # Key store: which backend holds the tenants' signing keys.
    signer_backend: Literal["software", "pkcs11"] = "software"
    master_key: SecretStr | None = Field(
        None, description="base64 or hex of 32 bytes encrypting software keys; default: a 0600 file in data_dir."
    )
    master_key_file: Path | None = None
    pkcs11_library: str | None = None
    pkcs11_token_label: str = "stalela"
    pkcs11_pin: SecretStr | None = None

    demo: bool = Field(True, description="Create a demo tenant on first start with an empty embedded database.")
    idempotency_retention_days: int = Field(30, ge=30)
    # Offline sealing (docs/offline.md).
    offline_max_invoice_total: Decimal = Field(
        Decimal("10000000"), gt=0, description="Default cap on one offline invoice's total (a credential's caps may lower it)."
    )
    offline_clock_skew_seconds: int = Field(
        300, ge=0, le=3600, description="How far ahead of the cloud's clock a returned offline invoice's device time may be."
    )
    offline_status_list_max_age: int = Field(
        60, ge=0, le=3600, description="Seconds a client may cache a tenant's revocation status list (its ttl)."
    )
    group_commit: bool = Field(
        True, description="Seal concurrent requests of a tenant together, one transaction per group."
    )
    group_commit_max: int = Field(200, ge=1, le=1000, description="At most this many seals per group.")
    group_commit_window_ms: float = Field(
        0.0, ge=0, le=50, description="A leader waits this long for more requests before sealing a group."
    )
    batch_max_invoices: int = Field(1000, ge=1, le=10_000, description="Invoices per POST /v1/invoices/batch.")
    sealer_processes: int = Field(
        0, ge=0, le=16, description="`stalela serve --sealers S`: processes that own the tenants' sealing, the API "
        "processes handing them every seal (docs/performance.md); 0: the API processes seal, each tenant's seals "
        "routed to one of them when --workers > 1.")
    seal_routing: bool = Field(
        True, description="Under `stalela serve --workers N`, route each tenant's seals to one API process "
        "(docs/performance.md); false lets every process seal for every tenant.")
    seal_owner_here: bool = Field(
        True, description="Internal, set by `stalela serve`: false when sealer processes own the tenants and "
        "this API process hands them every seal.")
    seal_peers_dir: Path | None = Field(
        None, description="Set by `stalela serve` for its API processes: the directory of their seal-routing "
        "sockets. Not an operator setting.")
    inprocess_workers: bool = Field(
        True, description="With STALELA_BACKGROUND_WORKERS=0: run background work (outbox, checkpoints, ...) "
        "inside each API process of `stalela serve`; false when only `stalela worker` processes do it."
    )
    checkpoint_interval_seconds: int = Field(
        3600, ge=0, description="Sign a checkpoint of each tenant's log this often if it grew; 0 disables."
    )
    z_grace_minutes: int = Field(
        10, ge=0, description="The scheduler closes a business day this long after local midnight."
    )
    z_scheduler_interval_seconds: int = Field(
        60, ge=0, description="How often the Z scheduler looks for days to close; 0 disables it."
    )
    offline_void_grace_hours: int = Field(
        24, ge=0, le=24 * 30, description="An offline block still open this long after its credential expired has "
        "its unused numbers voided (docs/offline.md)."
    )
    offline_void_interval_seconds: int = Field(
        300, ge=0, description="How often the void scheduler looks for expired offline blocks; 0 disables it."
    )
    retention_interval_hours: int = Field(
        24, ge=0, le=24 * 366, description="How often the retention run marks and purges (docs/privacy-retention.md); "
        "0 disables the scheduler (`stalela retention run` still works)."
    )
    retention_grace_days: int = Field(
        7, ge=1, le=365, description="Default days between a row's mark and its purge (a category's policy may set "
        "its own)."
    )
    retention_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Rows a retention run marks or purges per transaction."
    )
    report_pdf_max_invoices: int = Field(
        10_000, ge=1, description="A reports with more invoices are refused as PDF (CSV and XLSX stream any size)."
    )
    outbox_batch_size: int = Field(100, ge=1, le=5000, description="Events claimed per round trip.")
    outbox_lease_seconds: int = Field(60, ge=1, description="A claimed event is retried elsewhere after this.")
    outbox_backoff_base_seconds: float = Field(1.0, gt=0)
    outbox_backoff_cap_seconds: float = Field(3600.0, gt=0)
    outbox_max_attempts: int = Field(25, ge=1, description="After this many failed attempts an event is dead.")
    outbox_poll_seconds: float = Field(0.5, gt=0, description="Idle wait between empty claims.")
    worker_concurrency: int = Field(8, ge=1, le=256, description="Events handled at once per worker process.")
    nats_url: str | None = Field(None, description="Relay every outbox event to NATS JetStream when set.")
    nats_stream: str = Field("STALELA", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                             description="The JetStream stream of every shared tenant's events; its subjects "
                             "start with the name lowercased (docs/operations.md, \"NATS subjects\").")
    nats_dedicated_streams: bool = Field(
        False, description="Give every dedicated-tier tenant a stream of its own, <stream>_<TENANT ID>, created "
        "on its first event.")
    credit_notes_across_outlets: bool = Field(
        False, description="A credit note may cite an invoice of another outlet (one the caller may use).")
    authority_timeout_seconds: float = Field(10.0, gt=0, description="Per request to the tax authority.")
    webhooks_allow_private: bool = Field(
        False, description="Development only: tenant-set outbound URLs (webhooks, DGI devices) may reach "
        "private/loopback addresses and plain http.")
    webhooks_timeout_seconds: float = Field(15.0, gt=0, le=60, description="Whole request, answer included.")
    webhooks_endpoint_concurrency: int = Field(8, ge=1, le=256, description="Deliveries in flight per endpoint.")
    webhooks_secret_grace_seconds: int = Field(86400, ge=0, description="Old secret signs this long after a rotation.")
    # Marketplace connectors (docs/connectors.md).
    connectors_spool_dir: Path | None = Field(
        None, description="Where webhook deliveries that arrive while the database is down are kept (fsynced) "
        "until it is back; default data_dir/connector-spool. Local to each API process.")
    connectors_spool_max_files: int = Field(
        100_000, ge=1, description="Beyond this many spooled deliveries, webhooks get 503 (the platform retries).")
    connectors_webhook_max_bytes: int = Field(
        2_000_000, ge=1024, le=20_000_000, description="A larger webhook body is refused with 413.")
    connectors_poll_tick_seconds: float = Field(
        15.0, gt=0, le=3600, description="How often background workers look for connections whose poll is due.")
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(2, ge=1)
    password_min_length: int = Field(12, ge=8)
    refresh_token_days: int = Field(7, ge=1)
    invitation_days: int = Field(7, ge=1)
    login_max_failures: int = Field(5, ge=1, description="Failed logins per account or IP per window.")
    login_window_seconds: int = Field(900, ge=1)
    redis_url: str | None = Field(None, description="Rate limits and login throttles shared across processes.")
    rate_limit_per_second: float = Field(50.0, gt=0, description="Per API key / user token bucket refill.")
    rate_limit_burst: int = Field(100, ge=1, description="Per API key / user token bucket size. Both are defaults: "
                                  "the operator may set a tenant's own (PATCH /v1/tenants/{id}, /ops/tenants).")
    public_rate_limit_per_second: float = Field(
        20.0, gt=0, description="Per client IP token bucket refill on the unauthenticated routes (sign-in, refresh, "
        "invitations, verification pages, public keys).")
    public_rate_limit_burst: int = Field(60, ge=1, description="Per client IP token bucket size on those routes.")
    auth_cache_seconds: float = Field(
        2.0, ge=0, le=60, description="A verified API key is trusted this long per process; revocations elsewhere "
        "take effect within it. 0: look every key up."
    )
    erasure_journal_dir: Path | None = Field(
        None, description="The hash-chained erasure journal, kept outside the database and its backups and "
        "re-applied at start-up; default data_dir/erasure-journal."
    )
    offboarding_key_sweep_seconds: float = Field(
        3600.0, ge=0, description="How often workers destroy archive tenant keys past their statutory end. 0: never."
    )
    offboarding_exit_after_step: Literal["deprovisioning", "exported", "purged", "deleted"] | None = Field(
        None, description="Testing only (the kill -9 test): the worker process dies right after this "
        "offboarding step commits, as if killed."
    )
    bench_endpoints: bool = Field(
        False, description="Expose POST /_bench/noop, the trivial baseline the benchmarks compare against."
    )
    # The document store (stalela.storage): exports and other files the service keeps.
    storage_url: str | None = Field(
        None, description="s3://bucket/prefix for an S3-compatible store, or file:///path; default: a local "
        "directory, data_dir/files.")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph, ...); default AWS.")
    s3_region: str | None = Field(None, description="S3 region; default: the SDK's (AWS_REGION, ...).")
    s3_access_key_id: str | None = Field(None, description="Default: the SDK's credential chain.")
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="path for most self-hosted S3-compatible stores.")
    # Portability exports (stalela.privacy, docs/privacy-exports.md).
    export_link_secrets: SecretStr | None = Field(
        None, description="Comma-separated secrets of the signed download links, newest first: the newest "
        "signs, all verify (rotation). Default: derived from the master key.")
    export_link_hours: int = Field(72, ge=1, le=24 * 30, description="A ready export can be downloaded this long; "
                                   "then its file is deleted.")
    export_max_pending: int = Field(2, ge=1, le=100, description="Exports a tenant may have waiting to be built.")
    export_max_attempts: int = Field(3, ge=1, le=25, description="Builds of one export before it is failed.")
    export_sweep_seconds: int = Field(
        300, ge=0, description="How often expired exports' files are deleted; 0 disables the sweep.")
    export_page_size: int = Field(500, ge=1, le=10_000, description="Rows read per query while building an export.")

    # Platform billing (docs/billing.md).
    usage_resources: str | None = Field(
        None, description="Extra metered resources besides the built-in six, comma-separated name:kind:scale "
        "(kind counter or gauge; scale = decimal places a quantity may carry), e.g. gpu_seconds:counter:3.")
    usage_metering: bool = Field(
        True, description="Record what Stalela itself sees (sealed invoices, API calls, stored bytes) as usage.")
    usage_flush_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often an API process writes the API calls it counted as usage events.")
    usage_aggregation_seconds: int = Field(
        300, ge=0, description="How often the worker refreshes the daily usage aggregates; 0 disables the loop.")
    billing_interval_seconds: int = Field(
        3600, ge=0, description="How often the worker runs the billing cycle (anomalies, drafts at period end, "
        "finalisation after the grace period); 0 disables it (`stalela billing close` runs it by hand).")
    billing_grace_hours: int = Field(
        72, ge=0, le=24 * 31, description="A monthly bill stays a draft this long after its period ends, then is sealed.")
    billing_anomaly_threshold: Decimal = Field(
        Decimal("2.5"), gt=0, le=100, description="z-score above which a day's usage is an anomaly (per-tenant override).")
    billing_anomaly_method: Literal["zscore", "mad"] = Field(
        "zscore", description="zscore: mean and standard deviation; mad: median and scaled median absolute deviation.")
    billing_exit_at: Literal["drafted", "sealed"] | None = Field(
        None, description="Testing only (the kill -9 test): a billing run dies right after a bill's draft commits "
        "(drafted) or its seal commits (sealed), as if killed.")

    # The control plane and the dedicated tier (docs/operations.md, "Isolation tiers").
    dedicated_database_url_template: str | None = Field(
        None, description="Where dedicated tenants' databases are created, with {tenant} for the database name, "
        "e.g. postgresql://stalela@db-host:5432/{tenant}. Comma-separated templates place tenants on several "
        "servers (the least used first). Default: the control plane's server (PostgreSQL) or a SQLite file per "
        "tenant in data_dir/tenants (embedded).")
    dedicated_pool_size: int = Field(
        3, ge=1, le=50, description="Connections a process may hold to one dedicated database (no overflow: with "
        "many tenants, their sum is what PostgreSQL must allow; docs/operations.md, \"Connections\").")
    dedicated_pool_idle_seconds: float = Field(
        60.0, gt=0, le=86400, description="A dedicated database's pool unused this long is closed (its connections "
        "released); the next request opens it again.")
    dedicated_poll_max_seconds: float = Field(
        5.0, gt=0, le=600, description="Background loops of an idle dedicated database back off up to this long "
        "between polls, so idle tenants hold no connection.")
    move_freeze_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="A tenant move waits this long for in-flight writes before its switch; "
        "writes wait (never fail) during the switch.")
    provisioning_exit_after_step: Literal["database", "migrated", "seeded"] | None = Field(
        None, description="Testing only (the kill -9 test): provisioning dies right after this step commits.")
    readyz_require_dedicated: bool = Field(
        False, description="/readyz fails (503) when a dedicated database this process uses is unreachable or "
        "behind; by default it only reports it (status degraded), so one tenant's database never takes the "
        "process out of its load balancer.")
    move_batch_rows: int = Field(
        5000, ge=100, le=100_000, description="Rows a tenant move copies per batch (bounds its memory).")

    # Operators' single sign-on to /ops (docs/operations.md, "Operator accounts"): on when all three are set.
    oidc_issuer: str | None = Field(
        None, description="OpenID Connect issuer URL for operator sign-in to /ops (its "
        "/.well-known/openid-configuration is read); the redirect URI to register is <public URL>/ops/oidc/callback.")
    oidc_client_id: str | None = Field(None, max_length=255, description="The client id registered at the issuer.")
    oidc_client_secret: SecretStr | None = Field(None, description="The client secret registered at the issuer.")

    # Optional LLM providers of invoice drafting (docs/assistants.md, "LLM providers"; needs `stalela[ai]`).
    # None configured: drafts come from the offline rule parser only, and {"provider": "llm"} is refused.
    llm_provider: Literal["openai", "anthropic"] | None = Field(
        None, description="openai: any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp "
        "server, through STALELA_LLM_BASE_URL); anthropic: Anthropic's API. Unset: the rule parser only.")
    llm_model: str | None = Field(None, max_length=200, description="The model name the endpoint knows "
                                  "(gpt-4.1-mini, qwen2.5:7b, claude-sonnet-4-5...). Required with a provider.")
    llm_base_url: str | None = Field(None, description="The endpoint's base URL, e.g. http://127.0.0.1:11434/v1 "
                                     "(Ollama), http://127.0.0.1:8000/v1 (vLLM, llama.cpp); default: the provider's.")
    llm_api_key: SecretStr | None = Field(None, description="The provider's API key; required without a base URL "
                                          "(a local server that needs none is given a placeholder).")
    llm_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Hard limit on the model's answer, retries "
                                       "included; past it the draft is the rule parser's, with the reason.")
    llm_output_mode: Literal["native", "tool"] = Field(
        "native", description="How the output schema is enforced: native (response_format json_schema, enforced "
        "by OpenAI, Ollama, vLLM, llama.cpp) or tool (a forced tool call, for servers without json_schema).")

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, v: str | None) -> str | None:
        if v and not (v.startswith("file:///") or (v.startswith("s3://") and len(v) > len("s3://"))):
            raise ValueError("the storage URL is s3://bucket/prefix or file:///absolute/path")
        return v or None

    @model_validator(mode="after")
    def _llm_complete(self) -> "Settings":
        if self.llm_provider and not self.llm_model:
            raise ValueError("STALELA_LLM_MODEL is required with STALELA_LLM_PROVIDER")
        if self.llm_provider and not self.llm_base_url and self.llm_api_key is None:
            raise ValueError("STALELA_LLM_API_KEY is required for the provider's own endpoint (no STALELA_LLM_BASE_URL)")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return normalize_database_url(f"sqlite:///{(self.data_dir / 'stalela.db').resolve()}")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def effective_connectors_spool_dir(self) -> Path:
        return self.connectors_spool_dir or self.data_dir / "connector-spool"

    @property
    def effective_erasure_journal_dir(self) -> Path:
        return self.erasure_journal_dir or self.data_dir / "erasure-journal"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


class DatabaseUrlError(StalelaError):
    code = "database_url_invalid"
    title = "Invalid database URL"


def normalize_database_url(url: str) -> str:
    """Accept the plain forms users paste and pick the async driver ourselves."""
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError with an unhelpful message
        raise DatabaseUrlError(f"cannot parse database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise DatabaseUrlError(f"unsupported database {backend!r}: use postgresql:// or sqlite:///")
    return parsed.render_as_string(hide_password=False)


@lru_cache
def get_settings() -> Settings:
    return Settings()
