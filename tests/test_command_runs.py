"""The names and budgets of runs that commands build in code (`infbench run`, `skyrl synth`,
`skyrl retrofit`): a name is a valid run id for any model name, the same for the same
request shape whatever its key order, another for another shape; a budget caps what this
invocation may add to what the run spent."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from benchsmith.command_runs import run_name, spent_usd, with_budget
from benchsmith.config import parse_config
from benchsmith.store.names import is_run_id


@given(st.text(max_size=200))
def test_any_model_name_gives_a_run_id(model: str) -> None:
    name = run_name("skyrl-synth", model, {"model": model})
    assert is_run_id(name), name
    assert name.startswith("skyrl-synth-")


def test_the_name_follows_the_shape_not_its_key_order() -> None:
    a = run_name("infbench", "org/m:1", {"model": {"name": "m", "t": 0.2}, "n": 2})
    assert a == run_name("infbench", "org/m:1", {"n": 2, "model": {"t": 0.2, "name": "m"}})
    assert a.startswith("infbench-org-m-1-")
    assert a != run_name("infbench", "org/m:1", {"model": {"name": "m", "t": 0.3}, "n": 2})
    assert a != run_name("infbench", "org/m:2", {"model": {"name": "m", "t": 0.2}, "n": 2})


def test_a_budget_is_added_to_what_the_run_spent(tmp_path: Path) -> None:
    assert spent_usd(tmp_path / "no-run-yet") == 0.0
    cfg = parse_config({"budget": {"max_usd": 100.0}}, file="test")
    assert with_budget(cfg, 0.25, 1.5).budget.max_usd == 1.75
    assert with_budget(cfg, 0.1, 0.2).budget.max_usd == 0.3  # rounded, not 0.30000000000000004
    assert cfg.budget.max_usd == 100.0
