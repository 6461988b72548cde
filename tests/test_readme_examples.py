"""Every shell example of the README is exact (issue 13, CLI conventions).

Each `benchsmith ...` line of the README's shell blocks (bare, bash, sh, console, shell fences;
`\\` continuations joined, `$ ` prompts and `# comments` dropped) and each inline
`benchsmith ...` span is checked: its command exists, every flag it uses is one of that
command's options and appears in its `--help`, and it gives no extra arguments. Those that
need only a config and a run are also run, in README order, in a folder set up like the
README's (`my.yaml` pointing at the fake server), and must exit 0. The run directory tree,
readable file names and prompt placeholders the README names are checked against what the
code writes. A new README example with an unknown command or flag fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from fake_openai import FakeOpenAI
from helpers import KEY_ENV, SECRET, cfg_dict, cli_env, run_cli, write_yaml
from typer.testing import CliRunner

from benchsmith.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHELL_FENCES = {"", "bash", "sh", "console", "shell"}
ROOT_CMD = typer.main.get_command(app)


def shell_examples(text: str) -> list[tuple[int, str, bool]]:
    """(line number, command, is a full example) of every `benchsmith ...` example in `text`:
    full in a shell block or the command table, a mention (`benchsmith run`) in prose."""
    out: list[tuple[int, str, bool]] = []
    lines = text.splitlines()
    fence: str | None = None
    pending: tuple[int, str] | None = None
    for no, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            continue
        if fence is None:
            for span in re.findall(r"`(benchsmith [^`]+)`", line):
                out.append((no, span, line.startswith("|")))
            continue
        if fence not in SHELL_FENCES:
            continue
        if pending is not None:  # a continuation line
            start, head = pending
            pending = None
            stripped = head + " " + stripped
            no = start
        elif stripped.startswith("$ "):
            stripped = stripped[2:]
        if stripped.endswith("\\"):
            pending = (no, stripped[:-1].rstrip())
            continue
        if stripped.startswith("benchsmith "):
            out.append((no, stripped, True))
    return out


EXAMPLES = shell_examples(README)


def words_of(example: str) -> list[str]:
    """The words after `benchsmith`; `[--json]` (optional in a synopsis) as `--json`."""
    words = shlex.split(example, comments=True)[1:]
    for i, w in enumerate(words):  # a redirection or pipe ends the command's own words
        if w in {"|", "&&", ";"} or w == "<" or re.match(r"^\d?>", w):
            words = words[:i]
            break
    return [w.strip("[]") for w in words if w.strip("[]")]


def resolve(words: list[str]) -> tuple[tuple[str, ...], Any, list[str]]:
    """(command path, click command, the words after it)."""
    cmd, path = ROOT_CMD, ()
    while words and hasattr(cmd, "commands") and words[0] in cmd.commands:
        cmd, path, words = cmd.commands[words[0]], (*path, words[0]), words[1:]
    return path, cmd, words


def flags_of(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words
            if w.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", w)]


def _help(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, (path, res.output)
    return res.output


def test_the_readme_has_examples_of_every_kind() -> None:
    # The parser finds fenced, continued, prompted and inline examples.
    found = [e for _n, e, _full in EXAMPLES]
    assert "benchsmith init-config my.yaml" in found
    assert any(e.startswith("benchsmith infbench build --bench ") and "--info-pct" in e
               for e in found)  # joined from a `\` continuation
    assert any(e.startswith("benchsmith skyrl validate data/skyrl/broken.jsonl") for e in found)
    assert "benchsmith status runs/plans_v1" in found  # the command table
    assert len(EXAMPLES) > 60


@pytest.mark.parametrize("no,example,_full", EXAMPLES, ids=[f"L{n}" for n, _e, _f in EXAMPLES])
def test_every_readme_example_names_a_real_command_and_real_flags(
        no: int, example: str, _full: bool) -> None:
    where = f"README.md:{no}: {example}"
    path, cmd, rest = resolve(words_of(example))
    if hasattr(cmd, "commands"):  # a group: only its name, `--version` or `--help` may follow
        assert not [w for w in rest if not w.startswith("-")], f"{where}: unknown command"
        assert set(flags_of(rest)) <= {"--version", "--help", "-h"}, where
        return
    help_text = _help(path)
    declared = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))
                if p.param_type_name == "option"} | {"--help", "-h"}
    for flag in flags_of(rest):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), (
            f"{where}: {flag} is not in `benchsmith {' '.join(path)} --help`")
        if not cmd.context_settings.get("ignore_unknown_options"):
            assert flag in declared, f"{where}: {flag} is not an option of {' '.join(path)}"
    if cmd.context_settings.get("ignore_unknown_options"):
        return  # the command parses its several-valued flags itself (checked by --help above)
    ctx = cmd.context_class(cmd, info_name=path[-1], help_option_names=["-h", "--help"])
    _opts, extra, _order = cmd.make_parser(ctx).parse_args(list(rest))
    assert not extra, f"{where}: unexpected argument(s) {extra}"


# --------------------------------------------------------------------------- run them

RUNNABLE = {("init-config",), ("dry-run",), ("run",), ("status",), ("validate-run",),
            ("render-readable",), ("export",), ("recipes",), ("batch", "status"),
            ("batch", "cancel"), ("batch", "export")}
# The files the README's examples are run with: the config, its runs and an export target.
SET_UP = {"my.yaml", "runs/plans_v1", "runs/<run_id>", "requests.jsonl"}


def _runnable(example: str) -> bool:
    path, cmd, rest = resolve(words_of(example))
    if path not in RUNNABLE or "|" in example:  # a synopsis, not a command
        return False
    if not rest and any(p.required for p in cmd.params):  # the command named, not run
        return False
    values = [w for w in rest if not w.startswith("-")]
    return all(v in SET_UP or ("/" not in v and not v.endswith((".yaml", ".jsonl")))
               for v in values)


def test_the_readme_examples_run_against_the_test_server(
        fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    runnable = [(n, e) for n, e, full in EXAMPLES if full and _runnable(e)]
    assert len(runnable) >= 12, runnable
    env = cli_env(**{KEY_ENV: SECRET})
    config = cfg_dict(tmp_path, fake_openai.base_url, tasks=2)
    config["run_dir"] = "runs"  # as the README's: relative to the working directory
    run_id = None
    for no, example in runnable:
        words = words_of(example)
        if any("<run_id>" in w for w in words):
            assert run_id is not None, f"README.md:{no}: <run_id> before any run"
            words = [w.replace("<run_id>", run_id) for w in words]
        if words[0] == "init-config":
            (tmp_path / "my.yaml").unlink(missing_ok=True)
        res = run_cli(words, env=env, cwd=tmp_path, timeout=300)
        assert res.returncode == 0, f"README.md:{no}: {example}\n{res.stdout}\n{res.stderr}"
        assert "Traceback" not in res.stderr
        if words[0] == "init-config":
            assert "openai" in (tmp_path / "my.yaml").read_text()  # the sample config
            write_yaml(tmp_path / "my.yaml", config)  # the same, at the test server
        if words[0] == "run" and "--run-id" not in words:
            made = sorted((tmp_path / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
            run_id = made[-1].name
    _check_run_directory_tree(tmp_path / "runs" / "plans_v1")


def _tree_entries() -> list[str]:
    """The paths of the README's `runs/<run_id>/` tree."""
    block = README.split("runs/<run_id>/\n", 1)[1].split("```", 1)[0]
    return [ln.split()[0] for ln in block.splitlines() if ln.startswith("  ") and
            not ln.startswith("   ")]


def _as_regex(entry: str) -> str:
    parts = re.split(r"(<[^>]+>|\.\.\.)", entry)
    return "".join(r"[^/]+" if p.startswith("<") else ".+" if p == "..." else re.escape(p)
                   for p in parts)


# Files a plans run over HumanEval with every answer valid does not write.
CONDITIONAL = ("logs/local_server.log", "failed_plans/", "_similarity_rejections.json",
               "_first100_instance_ids.json")


def _check_run_directory_tree(rd: Path) -> None:
    files = {p.relative_to(rd).as_posix() for p in rd.rglob("*") if p.is_file()}
    entries = _tree_entries()
    assert "readable/index.md" in entries and "ledger.sqlite" in entries
    for entry in entries:
        # The two readable layouts are alternatives: the last writer's files are there.
        if any(c in entry for c in CONDITIONAL) or entry.startswith("readable/<"):
            continue
        pattern = re.compile(_as_regex(entry))
        assert any(pattern.fullmatch(f) for f in files), (
            f"README run directory tree names {entry}; the run has none: {sorted(files)}")
    # Every readable answer file has the README's name.
    answers = [f for f in files if f.startswith("readable/") and f != "readable/index.md"]
    named = [re.compile(_as_regex(e)) for e in entries if e.startswith("readable/<")]
    assert answers and named
    for f in answers:
        assert any(p.fullmatch(f) for p in named), f"{f}: not named as the README says"


def test_the_prompt_placeholders_the_readme_names_are_the_code_s() -> None:
    named = set(re.findall(r"\{\{([A-Z_]+)\}\}", README))
    assert {"TASK_TEXT", "PLANS_PER_CALL", "MIN_STEPS", "PROBLEM", "FILES"} <= named
    texts = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*")
                      if p.suffix in {".txt", ".py", ".yaml", ".j2"})
    for name in named:
        assert "{{" + name + "}}" in texts, f"README names {{{{{name}}}}}; no template has it"
