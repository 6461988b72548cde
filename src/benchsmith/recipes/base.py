"""The recipe contract: a Recipe is an ordered tuple of Stages.

A Stage builds requests for a task (stage 1) or from one finished request of the stage it
`needs` (later stages), and parses an answer into records or a list of issues. Stages are
pure: they never talk HTTP and never touch the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchsmith.records import Completion, Task


@dataclass(frozen=True)
class RequestSpec:
    """What to send, independent of the wire format (responses / chat / batch)."""

    dataset: str
    task_id: str
    stage: str
    sample_index: int
    model: str
    messages: tuple[dict[str, str], ...]
    schema: dict[str, Any] | None = None
    schema_name: str = "answer"
    params: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # Function definitions {name, description?, parameters, strict?} the model may call,
    # "auto" | "none" | "required" | {"name": NAME}, and how many choices to ask for.
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: str | dict[str, Any] | None = None
    n: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = {
            "dataset": self.dataset,
            "task_id": self.task_id,
            "stage": self.stage,
            "sample_index": self.sample_index,
            "model": self.model,
            "messages": list(self.messages),
            "schema": self.schema,
            "schema_name": self.schema_name,
            "params": dict(self.params),
            "parent_id": self.parent_id,
            "meta": dict(self.meta),
        }
        # Only when set: the stored spec (and so the unit id) of a request without them
        # stays what it was before these fields existed.
        if self.tools:
            d["tools"] = list(self.tools)
        if self.tool_choice is not None:
            d["tool_choice"] = self.tool_choice
        if self.n != 1:
            d["n"] = self.n
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestSpec:
        return cls(**_spec_fields(d))

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> RequestSpec:
        """`from_dict` without the frozen dataclass's `__init__`, whose fourteen guarded
        attribute writes are a good part of judging an ingested line: the same fields, set at
        once. Equal to `from_dict` as long as RequestSpec has no `__post_init__`."""
        spec: RequestSpec = object.__new__(cls)
        spec.__dict__.update(_spec_fields(d))
        return spec


def _spec_fields(d: dict[str, Any]) -> dict[str, Any]:
    """RequestSpec's fields from `to_dict`'s mapping (absent optional keys: the defaults)."""
    return {
        "dataset": d["dataset"],
        "task_id": d["task_id"],
        "stage": d["stage"],
        "sample_index": d["sample_index"],
        "model": d["model"],
        "messages": tuple(d["messages"]),
        "schema": d.get("schema"),
        "schema_name": d.get("schema_name", "answer"),
        "params": dict(d.get("params") or {}),
        "parent_id": d.get("parent_id"),
        "meta": dict(d.get("meta") or {}),
        "tools": tuple(d["tools"]) if d.get("tools") else None,
        "tool_choice": d.get("tool_choice"),
        "n": d.get("n", 1),
    }


@dataclass(frozen=True)
class Parsed:
    """The outcome of parsing one answer: records when valid, else issues."""

    records: tuple[dict[str, Any], ...] = ()
    issues: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues


# The `model` of a model-free stage's specs: nothing is sent, nothing is paid.
NO_MODEL = "none"

BuildFn = Callable[[Task, "dict[str, Any] | None"], list[RequestSpec]]
# local(spec): a model-free step's answer, computed here (a filter, a pairing, a format
# conversion): records when valid, else issues. Pure and deterministic.
LocalFn = Callable[[RequestSpec], "Parsed"]
# parse(spec, completion): the answer's text, tool calls and every choice (records.Completion).
ParseFn = Callable[[RequestSpec, Completion], Parsed]


@dataclass(frozen=True)
class Stage:
    """One step of a recipe.

    `build(task, parent)` returns the requests of this stage. For the first stage `parent`
    is None; for a stage that `needs` another, it is called once per finished parent unit
    with `{"unit_id": ..., "spec": parent RequestSpec, "records": [...]}`. A stage that needs
    itself is a chain: each finished unit may plan the next (e.g. call k+1 sees call k).
    """

    name: str
    build: BuildFn
    parse: ParseFn
    needs: str | None = None
    max_validation_retries: int = 2
    # For cost estimates of a chain: how many units follow a first one, and how many prompt
    # bytes each later unit may add (e.g. the accepted plans it is shown).
    chain_length: int = 1
    chain_growth_bytes: int = 0
    # How many units this stage usually plans per finished parent: progress counts them
    # as expected work before they are planned (the count is refined as they are).
    per_parent: int = 1
    # How validate-run tells the records of one request apart in datasets/<ds>/<stage>.jsonl
    # (fields besides request_id), and which field names a record in its messages.
    record_key: tuple[str, ...] = ()
    record_label: str | None = None
    # A model-free stage: its units are recorded like any (planned, attempted, ok/invalid,
    # exported, audited) but `local` answers them, at no cost; `parse` is not called. Its
    # specs name NO_MODEL and may carry no messages.
    local: LocalFn | None = None


# A run check of a recipe: run (validate.run_checks.loader.Run) -> (detail, problems).
CheckFn = Callable[[Any], tuple[str, list[str]]]


@dataclass(frozen=True)
class RunCheck:
    """One named check `validate-run` runs on every run of the recipe that declares it."""

    name: str
    fn: CheckFn


# Hooks shared layers call on a run of the recipe (ledger: store.ledger.Ledger, rd:
# store.rundir.RunDir); plain callables so a recipe's closure can hold its own settings.
WriteFn = Callable[[Any, Any], None]  # (ledger, rd): write the recipe's own files
# (ledger, rd, output_dir or None, include_task_text, layout) -> export.readable.ReadableReport;
# layout: "bulk" (a few large files) or "per_record" (a file per record)
ReadableFn = Callable[[Any, Any, Any, bool, str], Any]
StatusFn = Callable[[Any], "StatusSummary"]  # ledger -> what `status` adds
# ledger -> {table name: rows}: what `export` writes besides each dataset's records
TablesFn = Callable[[Any], "dict[str, list[dict[str, Any]]]"]
# ledger (read-only) -> the recipe's sections of `benchsmith report`
# (recipes.report_section.Section); read with SQL aggregates and capped samples.
ReportFn = Callable[[Any], "list[Any]"]


@dataclass(frozen=True)
class StatusSummary:
    """What a recipe adds to `status`: fields of `api.run_status` and lines for the CLI
    (each `label: text`)."""

    fields: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    stages: tuple[Stage, ...]
    templates: tuple[tuple[str, str], ...] = ()  # (file name, text), copied into the run dir
    # What validate-run checks: the shared checks that apply (None: all of them), the
    # recipe's own checks, and the files it writes at the top of the run dir.
    generic_checks: tuple[str, ...] | None = None
    run_checks: tuple[RunCheck, ...] = ()
    outputs: tuple[str, ...] = ()
    # What shared layers ask of the recipe: the stage `read_records` reads (None: the last),
    # the files it writes besides the shared ones (after them, on every export), its
    # Markdown rendering (None: it has none), and what `status` adds.
    record_stage: str | None = None
    write_outputs: WriteFn | None = None
    readable: ReadableFn | None = None
    status: StatusFn | None = None
    # Which of a dataset's tasks (sorted by id) the recipe asks about (None: all of them).
    select: Callable[[list[Task]], list[Task]] | None = None
    # Tables `export` adds to the run's datasets (e.g. a rollout's SWE-bench predictions).
    export_tables: TablesFn | None = None
    # Sections the recipe adds to `benchsmith report` (None: none).
    report_sections: ReportFn | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe {self.name}: duplicate stage names {names}")
        for i, s in enumerate(self.stages):
            if s.needs == s.name:
                continue  # a chained stage: each finished unit plans the next one
            if i == 0 and s.needs is not None:
                raise ValueError(f"recipe {self.name}: first stage cannot need another")
            if i > 0 and s.needs not in names[:i]:
                raise ValueError(f"recipe {self.name}: stage {s.name} needs an earlier stage")
        if self.record_stage is not None and self.record_stage not in names:
            raise ValueError(f"recipe {self.name}: record_stage {self.record_stage} is no stage")

    @property
    def primary_stage(self) -> str:
        """The stage whose records are the recipe's result (what `read_records` reads)."""
        return self.record_stage or self.stages[-1].name

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def children_of(self, name: str) -> list[Stage]:
        return [s for s in self.stages if s.needs == name]

    def expected_after(self, name: str, sample_index: int = 0) -> int:
        """How many units a unit of stage `name` (its chain call `sample_index`) is expected
        to plan, directly and through its own children: later stages and the rest of a chain.
        A chain's first call in a later stage counts from 0."""
        n = 0
        for child in self.children_of(name):
            if child.name == name:  # the chain's next call, if the chain goes on
                if sample_index + 1 < child.chain_length:
                    n += 1 + self.expected_after(name, sample_index + 1)
            else:
                n += child.per_parent * (1 + self.expected_after(child.name, 0))
        return n


def with_feedback(
    messages: tuple[dict[str, str], ...], raw: str, issues: tuple[str, ...], *, json: bool = True
) -> tuple[dict[str, str], ...]:
    """Messages for a re-ask: the previous answer plus the validation problems.

    `json`: the stage asks for a JSON object (it has a schema); free-text stages are asked for
    the format their prompt describes.
    """
    problems = "\n".join(f"- {i}" for i in issues[:20])
    again = (
        "Answer again with a complete, corrected JSON object."
        if json
        else "Answer again, corrected, in the format asked for above."
    )
    return (
        *messages,
        {"role": "assistant", "content": raw[:20000]},
        {"role": "user", "content": f"Your answer failed validation:\n{problems}\n{again}"},
    )
