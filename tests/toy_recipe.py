"""A toy recipe defined outside `src/`: what a third-party package would ship.

It imports only the public recipe contract (and pydantic), so the entry point test can copy
this file into a package of its own. Two stages:

- ``keywords``: asks for a strict-schema JSON object ``{"title", "keywords": [N strings]}``;
  one record per answer.
- ``sentence``: built from each finished ``keywords`` unit; asks for one free-text sentence
  using those keywords. Valid when, stripped, it ends with ``recipe_options.end`` and has at
  least ``min_words`` words (the fake server's default text, "Fake answer: <words>.", does).

Its own outputs, at the top of the run dir, from the ledger's current plan:
``toy_summary.json`` (task -> sample -> the accepted sentence) and ``toy_sentences.jsonl``
(one row per accepted sentence, naming the requests it came from in ``request_ids``, as the
rollouts' output.jsonl does). Its run check ``toy_summary`` re-derives the summary from the
ledger and checks every sentence against the options; the JSONL file is left to the shared
checks (it parses; it holds the current plan's rows). `status` adds a ``toy:`` line, and
`benchsmith report` a "Toy sentences" section.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from benchsmith.recipes.base import (
    Parsed,
    Recipe,
    RequestSpec,
    RunCheck,
    Stage,
    StatusSummary,
)
from benchsmith.recipes.registry import RecipeSpec
from benchsmith.recipes.report_section import Section, Table

NAME = "toy"
VERSION = "1"
SUMMARY_FILE = "toy_summary.json"
SENTENCES_FILE = "toy_sentences.jsonl"


class ToyOptions(BaseModel):
    """Options of the toy recipe (`recipe_options:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: int = Field(1, ge=1, le=5, description="Keyword sets asked per task.")
    keywords: int = Field(3, ge=1, le=10, description="Keywords per set.")
    end: str = Field(".", min_length=1, description="How a valid sentence ends.")
    min_words: int = Field(3, ge=1, description="Fewest words a valid sentence has.")
    max_validation_retries: int = Field(1, ge=0, le=5, description="Re-asks per request.")


def keyword_schema(n: int) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "keywords"],
        "properties": {
            "title": {"type": "string"},
            "keywords": {"type": "array", "minItems": n, "maxItems": n,
                         "items": {"type": "string"}},
        },
    }


def sentence_issues(text: str, o: ToyOptions) -> list[str]:
    issues = []
    if not text.endswith(o.end):
        issues.append(f"the sentence does not end with {o.end!r}")
    if len(text.split()) < o.min_words:
        issues.append(f"the sentence has fewer than {o.min_words} words")
    return issues


def toy_recipe(o: ToyOptions, ctx: Any) -> Recipe:
    schema = keyword_schema(o.keywords)

    def build_keywords(task: Any, parent: Any) -> list[RequestSpec]:
        assert parent is None
        out = []
        for k in range(o.samples):
            model = ctx.model_for(k)
            prompt = (f"Task {task.id}: give a title and exactly {o.keywords} keywords for it "
                      f"(set {k + 1} of {o.samples}):\n\n{task.primary}")
            out.append(RequestSpec(
                dataset=task.dataset, task_id=task.id, stage="keywords", sample_index=k,
                model=model.name, messages=({"role": "user", "content": prompt},),
                schema=schema, schema_name="toy_keywords", params=dict(model.params)))
        return out

    def parse_keywords(spec: RequestSpec, comp: Any) -> Parsed:
        try:
            data = orjson.loads(comp.text)
        except orjson.JSONDecodeError as e:
            return Parsed(issues=(f"answer is not valid JSON: {e}",))
        if not isinstance(data, dict) or set(data) != {"title", "keywords"}:
            return Parsed(issues=("answer must be an object with title and keywords",))
        kws = data["keywords"]
        if (not isinstance(kws, list) or len(kws) != o.keywords
                or not all(isinstance(w, str) and w.strip() for w in kws)):
            return Parsed(issues=(f"keywords must be {o.keywords} non-empty strings",))
        return Parsed(records=({"set": spec.sample_index, "title": str(data["title"]).strip(),
                                "keywords": [w.strip() for w in kws]},))

    def build_sentence(task: Any, parent: Any) -> list[RequestSpec]:
        pspec: RequestSpec = parent["spec"]
        (rec,) = parent["records"]
        prompt = (f"Task {task.id}: write one sentence of at least {o.min_words} words "
                  f"ending with {o.end!r} that uses the keywords: {', '.join(rec['keywords'])}.")
        return [RequestSpec(
            dataset=task.dataset, task_id=task.id, stage="sentence",
            sample_index=pspec.sample_index, model=pspec.model,
            messages=({"role": "user", "content": prompt},), params=dict(pspec.params),
            parent_id=parent["unit_id"], meta={"keywords": rec["keywords"]})]

    def parse_sentence(spec: RequestSpec, comp: Any) -> Parsed:
        text = (comp.text or "").strip()
        issues = sentence_issues(text, o)
        if issues:
            return Parsed(issues=tuple(issues))
        return Parsed(records=({"set": spec.sample_index, "sentence": text,
                                "keywords": spec.meta["keywords"]},))

    return Recipe(
        name=NAME,
        version=VERSION,
        stages=(
            Stage("keywords", build_keywords, parse_keywords,
                  max_validation_retries=o.max_validation_retries, record_label="title"),
            Stage("sentence", build_sentence, parse_sentence, needs="keywords",
                  max_validation_retries=o.max_validation_retries, record_label="sentence"),
        ),
        run_checks=(RunCheck("toy_summary", lambda run: check_summary(run, o)),),
        outputs=(SUMMARY_FILE, SENTENCES_FILE),
        record_stage="sentence",
        write_outputs=write_files,
        status=status,
        report_sections=report,
    )


# --------------------------------------------------------------------------- outputs


def summary_of(ledger: Any) -> dict[str, dict[str, str]]:
    """dataset/task -> "set <k>" -> the accepted sentence (the current plan's ok units)."""
    out: dict[str, dict[str, str]] = {}
    for u in ledger.units(state="ok", stage="sentence", current_plan=True):
        (rec,) = u.result
        out.setdefault(f"{u.dataset}/{u.task_id}", {})[f"set {u.sample_index}"] = rec["sentence"]
    return {k: out[k] for k in sorted(out)}


def sentence_rows(ledger: Any) -> list[dict[str, Any]]:
    return [{"dataset": u.dataset, "task_id": u.task_id, "set": u.sample_index,
             "sentence": u.result[0]["sentence"], "request_ids": [u.parent_id, u.unit_id]}
            for u in ledger.units(state="ok", stage="sentence", current_plan=True)]


def write_files(ledger: Any, rd: Any) -> None:
    from benchsmith.store.rundir import atomic_write_json, atomic_write_jsonl

    atomic_write_json(rd.root / SUMMARY_FILE, summary_of(ledger))
    atomic_write_jsonl(rd.root / SENTENCES_FILE, sentence_rows(ledger))


def status(ledger: Any) -> StatusSummary:
    counts = {"keywords": 0, "sentence": 0}
    for u in ledger.units(state="ok"):
        counts[u.stage] = counts.get(u.stage, 0) + 1
    line = (f"toy: {counts['sentence']} sentence(s) from {counts['keywords']} keyword set(s) "
            f"(see {SUMMARY_FILE})")
    return StatusSummary({"toy_sentences": counts["sentence"]}, (line,))


def report(ledger: Any) -> list[Section]:
    """`benchsmith report`'s toy section: accepted sentences per task."""
    rows = tuple((key, len(v)) for key, v in summary_of(ledger).items())
    return [Section("Toy sentences", f"{sum(n for _k, n in rows)} sentence(s) accepted.",
                    (Table(("dataset/task", "sentences"), rows),))]


def check_summary(run: Any, o: ToyOptions) -> tuple[str, list[str]]:
    """toy_summary.json holds exactly what the ledger gives, and each sentence passes."""
    if run.ledger is None:
        return "no ledger", ["ledger.sqlite could not be opened"]
    path = run.root / SUMMARY_FILE
    try:
        actual = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return "missing", [f"missing {SUMMARY_FILE}"]
    except orjson.JSONDecodeError as e:
        return "not JSON", [f"{SUMMARY_FILE}: not valid JSON ({e})"]
    want = summary_of(run.ledger)
    problems = []
    if not isinstance(actual, dict):
        return "not an object", [f"{SUMMARY_FILE}: not a JSON object"]
    for key in sorted(set(actual) | set(want)):
        if key not in want:
            problems.append(f"{SUMMARY_FILE}: {key}: no accepted sentence in the ledger (added)")
        elif key not in actual:
            problems.append(f"{SUMMARY_FILE}: {key}: missing (the ledger has sentences)")
        elif actual[key] != want[key]:
            problems.append(f"{SUMMARY_FILE}: {key}: differs from the ledger (edited)")
        for k, text in (actual.get(key) or {}).items() if isinstance(actual.get(key), dict) else ():
            for issue in sentence_issues(str(text), o):
                problems.append(f"{SUMMARY_FILE}: {key} {k}: {issue}")
    n = sum(len(v) for v in want.values())
    return f"{n} sentence(s) of {len(want)} task(s)", problems


SPEC = RecipeSpec(
    name=NAME,
    version=VERSION,
    Options=ToyOptions,
    build=toy_recipe,
    summary="Toy: keywords per task (strict JSON), then one sentence from each set.",
)
