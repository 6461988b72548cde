"""The sections of the run config (pydantic models, unknown keys rejected). See config.py."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_LOCAL_MODEL = "../shared/data/models/stories260K/stories260K.gguf"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """How a generic JSONL row maps onto a Task."""

    id: str = Field("task_id", description="Row key holding the task id.")
    primary: str = Field("prompt", description="Row key shown under [PRIMARY_TASK].")
    context: list[str] = Field(
        default_factory=list, description="Row keys shown under [CONTEXT_FIELDS]."
    )
    gold: list[str] = Field(
        default_factory=list,
        description="Answer keys: kept in the task's extras, never put in a prompt.",
    )
    answer: list[str] | None = Field(
        None,
        description="Gold keys holding answer text (a patch, tests, a solution), checked for "
        "leaks into prompts (see `leaks`); default: every gold key.",
    )


SOURCES = (
    "humaneval", "swebench_verified", "swebench_lite", "swebench", "refactorbench_py", "infbench",
    "jsonl",
)
# Sources no file is read for; never a dataset name's default.
GENERATED, RUN = "generated", "run"
MAX_SLOTS = 10_000_000


class DatasetConfig(_Strict):
    """One dataset to load tasks from."""

    source: (
        Literal["humaneval", "swebench_verified", "swebench_lite", "swebench", "refactorbench_py",
                "infbench", "jsonl", "generated", "run"]
        | None
    ) = Field(
        None,
        description="Loader; default: the dataset's name when it is a known source "
        "(humaneval, swebench_verified, swebench_lite, swebench, refactorbench_py, infbench), "
        "else jsonl. "
        "`generated`: `count` numbered task slots; `run`: the records of another run.",
    )
    path: str | None = Field(
        None, validate_default=True,
        description="Local file: .jsonl, .jsonl.gz or .parquet (humaneval: optional override); "
        "source `run`: the folder of an earlier benchsmith run (runs/<id>).",
    )
    hf_name: str | None = Field(
        None, description="Hugging Face dataset name, used when `path` is not set (needs network)."
    )
    split: str = Field("test", description="Split of the Hugging Face dataset.")
    fields: FieldMap | None = Field(None, description="Field mapping for the `jsonl` source.")
    max_tasks: int | None = Field(
        None, ge=1, description="Keep the first N tasks after sorting by task id."
    )
    task_ids_file: str | None = Field(
        None, description="JSON list or one-id-per-line file: only these task ids are used."
    )
    count: int | None = Field(
        None, ge=1, le=MAX_SLOTS, strict=True, validate_default=True,
        description="Source `generated` (required): how many task slots (slot-00000, ...).",
    )
    seed: int | None = Field(
        None, strict=True, description="Source `generated`: seed the slots' own seeds derive from; default 0.",
    )
    stage: str | None = Field(
        None, description="Source `run`: the stage whose records become tasks; default: the "
        "run's record stage (what `read_records` reads).",
    )

    def source_for(self, name: str) -> str:
        if self.source:
            return self.source
        return name if name in SOURCES else "jsonl"

    @field_validator("path")
    @classmethod
    def _path_for_run(cls, v: str | None, info: ValidationInfo) -> str | None:
        src = info.data.get("source")
        if src == RUN and not v:
            raise ValueError("source run needs `path`: the folder of an earlier run (runs/<id>)")
        if src == GENERATED and v is not None:
            raise ValueError("source generated reads no file; remove `path`")
        return v

    @field_validator("hf_name", "fields", "count", "seed", "stage")
    @classmethod
    def _only_with_its_source(cls, v: Any, info: ValidationInfo) -> Any:
        src, key = info.data.get("source"), info.field_name
        wanted = {"count": GENERATED, "seed": GENERATED, "stage": RUN}.get(key or "")
        if key == "count" and src == GENERATED and v is None:
            raise ValueError("source generated needs `count`: how many task slots (at least 1)")
        if v is None:
            return v
        if wanted and src != wanted:
            raise ValueError(f"only used with source {wanted}; remove it or set source: {wanted}")
        if not wanted and src in (GENERATED, RUN):
            raise ValueError(f"not used by source {src}; remove it")
        return v


class ModelConfig(_Strict):
    """The model and its sampling parameters."""

    name: str = Field("gpt-5-mini", description="Model name sent to the endpoint.")
    temperature: float | None = Field(None, ge=0, le=2, description="Dropped for reasoning models.")
    top_p: float | None = Field(None, gt=0, le=1, description="Dropped for reasoning models.")
    seed: int | None = Field(None, description="Dropped for reasoning models.")
    reasoning_effort: (
        Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None
    ) = Field(None, description="Sent as `reasoning.effort` / `reasoning_effort`; an endpoint "
              "that refuses it (HTTP 400 naming it) gets the request again without it, and "
              "the model's later requests leave it out (one warning).")
    max_output_tokens: int = Field(
        4000, ge=1, description="Output cap per request; also the budget's worst case."
    )
    max_context_tokens: int | None = Field(
        None, ge=1,
        description="Context window (prompt + output tokens). A request whose prompt "
        "(estimated at 4 bytes a token) plus max_output_tokens exceeds it is never sent: its "
        "unit is `skipped` (`prompt_too_long`). Default: 400,000; with the local provider "
        "local.n_ctx, counting the prompt only.",
    )
    reasoning: bool | None = Field(
        None,
        description="Treat as a reasoning model (drops temperature/top_p/seed). "
        "Default: guessed from the name (o1/o3/o4/gpt-5...).",
    )

    def request_params(self) -> tuple[dict[str, Any], list[str]]:
        """Neutral request params, and the names dropped because reasoning models reject them."""
        params: dict[str, Any] = {"max_output_tokens": self.max_output_tokens}
        dropped = []
        for key in ("temperature", "top_p", "seed", "reasoning_effort"):
            val = getattr(self, key)
            if val is None:
                continue
            if key != "reasoning_effort" and self.is_reasoning():
                dropped.append(key)
                continue
            params[key] = val
        return params, dropped

    def is_reasoning(self) -> bool:
        if self.reasoning is not None:
            return self.reasoning
        return self.name.lower().startswith(REASONING_MODEL_PREFIXES)


class OpenAIConfig(_Strict):
    """An OpenAI-compatible endpoint."""

    base_url: str = Field(
        "https://api.openai.com/v1",
        description="Endpoint base URL: http(s)://host[:port]/path, without credentials or a "
        "query (the key goes in api_key_env's variable).",
    )
    api: Literal["responses", "chat"] = Field(
        "responses", description="`responses` (POST /v1/responses) or `chat` (/v1/chat/completions)."
    )
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Name of the environment variable holding the key; comma-separated keys "
        "are used round-robin. The key itself is never written anywhere; a value that looks "
        "like a key is refused without being shown.",
    )
    structured_output: Literal["openai", "llama_cpp"] = Field(
        "openai",
        description="How the JSON schema is requested: OpenAI strict json_schema, or "
        "llama-cpp-python's `json_object` + `schema`.",
    )
    use_batch_api: bool = Field(
        False, description="Run through the Batch API (half price, up to 24 h) instead of online."
    )
    prompt_cache_enabled: bool = Field(
        False, description="Send `prompt_cache_key` (and retention) with every request."
    )
    prompt_cache_key_prefix: str = Field(
        "benchsmith", description="Prefix of the stable per-task, per-template cache key."
    )
    prompt_cache_retention: Literal["24h", "in_memory"] | None = Field(
        None, description="`prompt_cache_retention` to send when caching is enabled."
    )

    @field_validator("base_url")
    @classmethod
    def _a_usable_url(cls, v: str) -> str:
        problem = url_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, v: str | None) -> str | None:
        # The message never quotes the value: it may be a pasted key.
        if v is not None and looks_like_secret(v):
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, _), not a key; "
                "the value is not shown as it may be a key: put the variable name here "
                "(e.g. OPENAI_API_KEY) and export the key in that variable"
            )
        return v


class LocalConfig(_Strict):
    """The `local` provider: benchsmith starts llama-cpp-python's server itself."""

    model_path: str = Field(
        DEFAULT_LOCAL_MODEL, description="GGUF model file (relative paths: to the config file)."
    )
    n_ctx: int = Field(
        2048, ge=128, description="Context window of the local server; longer prompts are "
        "skipped (see model.max_context_tokens).",
    )
    max_string_chars: int = Field(
        200, ge=1, description="llama-cpp schema adapter: longest string the grammar allows."
    )
    max_array_items: int = Field(
        8, ge=1, description="llama-cpp schema adapter: most items an array may have."
    )


class EngineConfig(_Strict):
    """Concurrency, rate limits and retries."""

    concurrency: int = Field(64, ge=1, le=5000, description="Requests in flight at once.")
    rpm: int | None = Field(None, ge=1, description="Client-side requests-per-minute limit.")
    tpm: int | None = Field(None, ge=1, description="Client-side tokens-per-minute limit.")
    max_retries: int = Field(
        6, ge=0, le=50, description="Retries on 429/5xx/timeouts/connection errors."
    )
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
    backoff_base_s: float = Field(0.5, gt=0, description="First backoff delay.")
    backoff_max_s: float = Field(60.0, gt=0, description="Longest backoff delay.")
    shutdown_grace_s: float = Field(
        30.0, ge=0,
        description="On Ctrl-C / SIGTERM: seconds requests in flight get to finish and be "
        "recorded before they are abandoned (a second Ctrl-C abandons them at once).",
    )
    progress_interval_s: float = Field(
        10.0, gt=0, description="Without a terminal (CI, nohup, a pipe): seconds between the "
        "plain progress lines (done/total, failed, cost, rate, ETA); `--quiet` silences them.",
    )


class BatchConfig(_Strict):
    """The Batch API executor (`openai.use_batch_api: true` or `run --mode batch`)."""

    price_multiplier: float = Field(
        0.5, gt=0, le=1, description="Batch price as a fraction of the online price."
    )
    max_requests_per_file: int = Field(
        50_000, ge=1, le=50_000, description="Requests per batch input file (API limit 50,000)."
    )
    max_bytes_per_file: int = Field(
        200_000_000, ge=1_000, le=200_000_000, description="Bytes per input file (API limit 200 MB)."
    )
    poll_interval_s: float = Field(5.0, gt=0, description="First delay between status polls.")
    max_poll_interval_s: float = Field(60.0, gt=0, description="Longest delay between polls.")


class Price(_Strict):
    """USD per 1M tokens."""

    input: float = Field(..., ge=0, description="USD per 1M input tokens.")
    cached_input: float | None = Field(
        None, ge=0, description="USD per 1M cached input tokens; default: the input price."
    )
    output: float = Field(..., ge=0, description="USD per 1M output tokens (reasoning included).")


class LeakConfig(_Strict):
    """The gold-leak guard: prompts that carry a task's answer (its gold) verbatim."""

    leak_policy: Literal["warn", "redact", "skip"] = Field(
        "warn",
        description="A request whose text carries gold lines: `warn` sends it and records the "
        "finding; `redact` replaces the leaking lines of context fields with a marker (never "
        "the primary field: a task whose primary field leaks is recorded as leaking); `skip` "
        "ends the unit `skipped` (reason `gold_leak:<field>`).",
    )
    min_line_chars: int = Field(
        25, ge=1, description="Gold lines shorter than this (after stripping) are not checked."
    )
    min_shared_chars: int = Field(
        80, ge=8,
        description="A text sharing this many characters of one long gold line leaks it "
        "(gold that is not line-shaped).",
    )
    stop_lines: list[str] | None = Field(
        None,
        description="Gold lines never counted (compared stripped); default: a short list of "
        "boilerplate such as `if __name__ == \"__main__\":` and `from __future__ import ...`.",
    )
    diff_lines: list[Literal["added", "removed"]] = Field(
        ["added"], min_length=1,
        description="Which lines of a gold diff are checked. Removed lines are off by default: "
        "they are the code as it is before the fix, not the answer, so prompts that show the "
        "files being fixed (the Agentless bug-fixer's repair stage) or an issue quoting the "
        "buggy line hold them by construction; `[added, removed]` checks them too.",
    )


class BudgetConfig(_Strict):
    """Spend limit."""

    max_usd: float | None = Field(
        None, ge=0, description="Hard cap: no request is sent that could push spend past it."
    )


class OutputsConfig(_Strict):
    """What `run` writes besides its datasets (they are always written)."""

    readable: Literal["bulk", "per_record", "off"] = Field(
        "bulk",
        description="Markdown for reading, at the end of a run: `bulk` (a few large files per "
        "dataset and model, with an index), `per_record` (a file per accepted answer: many "
        "small files, slow on large runs) or `off`. `render-readable` renders either on demand.",
    )


def _shown(parts: urllib.parse.SplitResult) -> str:
    """The URL as a message may quote it: scheme, host, port and path only (a query, a
    fragment or user info may hold a key); "the URL" when it has no scheme and host (a key
    pasted where the URL belongs)."""
    if not parts.scheme or not parts.netloc:
        return "the URL"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint base URL, or None. Requests go to `url + "/responses"`,
    so a query or fragment would swallow the path; credentials in it would be written into
    the run's files. Messages quote the URL without its query, fragment and user info, and
    not at all when it does not look like one."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as e:
        if "@" in url:
            return "holds credentials (user:password@); put the key in api_key_env's variable"
        if "port" in str(e).lower():
            return "the port is not a number from 1 to 65535 (the URL is not shown)"
        return "is not a URL (the value is not shown); give e.g. http://127.0.0.1:8000/v1"
    shown = _shown(parts)
    if "@" in parts.netloc:
        return ("holds credentials (user:password@), which would be written into the run's "
                "files; the URL is not shown: remove them and put the key in api_key_env's "
                "variable")
    if parts.scheme not in ("http", "https"):
        return f"{shown} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)"
    if not parts.hostname:
        return f"{shown} has no host (e.g. http://127.0.0.1:8000/v1)"
    if port == 0:
        return f"{shown}: the port is not a number from 1 to 65535"
    if parts.query or parts.fragment:
        return (f"{shown} has a query or fragment (not shown): requests go to base_url + "
                "/responses, so give the path only")
    return None


def looks_like_secret(name: str) -> bool:
    """True when an `api_key_env` value is not a plausible variable name: not a shell name,
    or key-like (`sk-...`, or long with lower-case letters and digits, as tokens are;
    variable names are UPPER_CASE by convention)."""
    if not ENV_VAR_NAME.fullmatch(name) or name.lower().startswith(("sk-", "sk_")):
        return True
    return len(name) >= 32 and any(c.islower() for c in name) and any(c.isdigit() for c in name)
