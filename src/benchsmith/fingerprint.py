"""What shapes a run's plan: the settings that reach a request, as named values and one digest.

A resumed run must ask what its first invocation asked, or it plans (and pays for) new
requests next to the old ones. The fingerprint holds the recipe and its version, the prompt
templates' text, the gold-leak guard's settings under `redact` and `skip`, the options that change prompts or the request count, the models and the
parameters they are sent, the wire format, the datasets and their selection, and a digest of
the first-stage request ids (which catches what the settings cannot name: a changed data
file, repository or prompt code). A dataset read from another run also pins a digest of
that run's records, so a changed source run is named as such.

Left out, so they may change on resume: openai.base_url, openai.api_key_env,
openai.use_batch_api, engine.*, budget.*, batch.*, prices, run_dir, and the recipe options
its spec leaves out of `fingerprint` (e.g. where inputs are read from: the request digest
covers what they hold). They change how, when or from where requests are sent, not what is
asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from benchsmith.config import RunConfig
from benchsmith.config_sections import GENERATED, RUN, ModelConfig
from benchsmith.recipes.base import Recipe
from benchsmith.sources import run_records
from benchsmith.sources.select import read_id_list
from benchsmith.store.ids import canonical_json

REQUESTS = "requests."
_SOURCE_KEYS = ("count", "seed", "stage")


@dataclass(frozen=True)
class Fingerprint:
    fields: dict[str, Any]  # dotted setting name -> canonical JSON value
    digest: str  # sha256 of the fields

    @property
    def short(self) -> str:
        return self.digest[:12]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def _section(prefix: str, model: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = model.model_dump(mode="json")
    for k in exclude:
        data.pop(k, None)
    _flat(prefix, data, out)
    return out


def _model(prefix: str, m: ModelConfig) -> dict[str, Any]:
    """The model's name and the parameters it is sent (those a reasoning model drops are not)."""
    params, _dropped = m.request_params()
    return {f"{prefix}.name": m.name, **{f"{prefix}.{k}": v for k, v in params.items()}}


def _models(cfg: RunConfig) -> dict[str, Any]:
    spec = cfg.recipe_spec()
    if spec.model_calls is None:
        return _model("model", cfg.model)  # the recipe asks `model` only
    if not cfg.multi_model:
        return {"multi_model": False, **_model("model", cfg.model)}
    out: dict[str, Any] = {"multi_model": True}
    slots = [(f"model{i}", m) for i, m in enumerate((cfg.model1, cfg.model2, cfg.model3), 1) if m]
    for name, m in slots[: spec.model_calls(cfg.options())]:  # later slots are never called
        out.update(_model(name, m))
    return out


def _wire(cfg: RunConfig, structured: str) -> dict[str, Any]:
    out: dict[str, Any] = {"provider": cfg.provider}
    if cfg.provider == "local":
        out["local.model_path"] = cfg.local.model_path
        out["local.n_ctx"] = cfg.local.n_ctx
    else:
        oa = cfg.openai
        out.update({"openai.api": oa.api, "openai.structured_output": oa.structured_output,
                    "openai.prompt_cache_enabled": oa.prompt_cache_enabled})
        if oa.prompt_cache_enabled:  # the cache key is sent with every request
            out["openai.prompt_cache_key_prefix"] = oa.prompt_cache_key_prefix
            out["openai.prompt_cache_retention"] = oa.prompt_cache_retention
    if structured == "llama_cpp":  # the schema sent is bounded by these
        out["local.max_string_chars"] = cfg.local.max_string_chars
        out["local.max_array_items"] = cfg.local.max_array_items
    return out


def _datasets(cfg: RunConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(cfg.datasets):
        ds = cfg.datasets[name]
        pre = f"datasets.{name}"
        source = ds.source_for(name)
        # Keys later sources added are left out when unset: older runs' plans stay the same.
        unset = [k for k in _SOURCE_KEYS if getattr(ds, k) is None]
        data = _section(pre, ds, exclude=("task_ids_file", *unset))
        if data.get(f"{pre}.fields.answer", 0) is None:  # added later: unset leaves plans as they were
            del data[f"{pre}.fields.answer"]
        data[f"{pre}.source"] = source
        if source == GENERATED:
            data[f"{pre}.seed"] = ds.seed or 0
        elif source == RUN:  # what the other run holds, named, not only in the request digest
            tasks = run_records.load(name, cfg.resolve(ds.path or ""), ds.stage, pre)
            data[f"{pre}.records"] = run_records.digest(tasks)
        if ds.task_ids_file:  # its content, not where it lies
            field = f"{pre}.task_ids_file"
            ids = sorted(read_id_list(cfg.resolve(ds.task_ids_file), field))
            data[f"{pre}.task_ids_file"] = f"{len(ids)} ids, " + _sha(canonical_json(ids))
        else:
            data[f"{pre}.task_ids_file"] = None
        out.update(data)
    return out


def _leaks(cfg: RunConfig) -> dict[str, Any]:
    """The gold-leak guard's settings when they change what is asked: `redact` edits request
    text, `skip` leaves requests unsent. `warn` (the default) only records: left out, so runs
    made before the guard keep their plan."""
    if cfg.leaks.leak_policy == "warn":
        return {}
    return _section("leaks", cfg.leaks)


def plan_fingerprint(
    cfg: RunConfig, recipe: Recipe, structured: str, request_ids: Iterable[str]
) -> Fingerprint:
    """The fingerprint of a plan: `request_ids` are the ids of its first-stage requests."""
    f: dict[str, Any] = {"recipe": recipe.name, "recipe.version": recipe.version}
    for name, text in recipe.templates:
        f[f"prompt.{name}"] = _sha(text.encode("utf-8"))
    f.update(cfg.recipe_spec().option_fields(cfg.options()))
    f.update(_models(cfg))
    f.update(_wire(cfg, structured))
    f.update(_datasets(cfg))
    f.update(_leaks(cfg))
    ids = sorted(request_ids)
    f[REQUESTS + "count"] = len(ids)
    f[REQUESTS + "sha256"] = _sha(canonical_json(ids))
    fields = orjson.loads(orjson.dumps(f))  # canonical: what the ledger gives back
    return Fingerprint(fields, hashlib.sha256(canonical_json(fields)).hexdigest())


_UNSET = object()


def _show(v: Any) -> str:
    if v is _UNSET:
        return "(unset)"
    return v if isinstance(v, str) else orjson.dumps(v).decode()


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`name: old -> new` for each setting that differs, in the order of `new`. The request
    digest is named only when no setting explains the change."""
    names = list(new) + [k for k in old if k not in new]
    out = [
        f"{k}: {_show(old.get(k, _UNSET))} -> {_show(new.get(k, _UNSET))}"
        for k in names
        if old.get(k, _UNSET) != new.get(k, _UNSET)
    ]
    named = [d for d in out if not d.startswith(REQUESTS)]
    return named or out
