"""Bad input as a new or hostile user gives it: one `error:` line naming the file, the field
and the fix, a non-zero exit, never a traceback, and nothing sent or written."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import pytest

from benchsmith.config_sections import looks_like_secret
from benchsmith.recipes.agentless.stages import PLACEHOLDERS as AGENTLESS_PLACEHOLDERS
from benchsmith.recipes.plans.stages import PLACEHOLDERS as PLAN_PLACEHOLDERS
from benchsmith.recipes.plans.stages import TEMPLATE_NAME
from benchsmith.recipes.prompt import placeholders
from fake_openai import FakeOpenAI
from helpers import (
    KEY_ENV,
    SECRET,
    assert_no_secret,
    cfg_dict,
    cli_env,
    files_under,
    nonempty_lines,
    request_messages,
    run_cli,
    write_yaml,
)


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = nonempty_lines(res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def _both(tmp_path: Path, cfg_path: Path) -> list[subprocess.CompletedProcess[str]]:
    env = cli_env(**{KEY_ENV: "sk-unused"})
    return [
        run_cli(["dry-run", "--config", str(cfg_path), "--run-id", "D"], env=env),
        run_cli(["run", "--config", str(cfg_path), "--run-id", "R", "--quiet"], env=env),
    ]


# --------------------------------------------------------------------------- templates


def test_template_with_a_non_utf8_byte(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    tpl = tmp_path / "tpl.txt"
    tpl.write_bytes(b"Plan this task \xff carefully.\n{{TASK_TEXT}}\n")
    cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(tmp_path, fake_openai.base_url,
                                                   {"recipe_options": {"prompt_template": "tpl.txt"}}))
    for res in _both(tmp_path, cfg):
        line = _one_line_error(res)
        assert str(tpl) in line and "recipe_options.prompt_template" in line, line
        assert "not UTF-8" in line and "0xff" in line and "offset 15" in line, line
    assert fake_openai.requests == []
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("marker", ["{{TASK}}", "{{ task_text }}", "{{Min_Steps}}"])
def test_template_with_an_unknown_placeholder(
    tmp_path: Path, fake_openai: FakeOpenAI, marker: str
) -> None:
    tpl = tmp_path / "tpl.txt"
    tpl.write_text(f"Write {{{{PLANS_PER_CALL}}}} plans for {marker}.\n{{{{TASK_TEXT}}}}\n",
                   encoding="utf-8")
    cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(tmp_path, fake_openai.base_url,
                                                   {"recipe_options": {"prompt_template": str(tpl)}}))
    for res in _both(tmp_path, cfg):
        line = _one_line_error(res)
        assert f"unknown placeholder {marker}" in line, line
        assert "known: {{PLANS_PER_CALL}}, {{MIN_STEPS}}, {{TASK_TEXT}}" in line, line
    assert fake_openai.requests == []


def test_known_placeholders_are_all_replaced(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """A template using every documented placeholder is accepted, and none reaches the model."""
    tpl = tmp_path / "tpl.txt"
    tpl.write_text("".join("{{" + p + "}}\n" for p in PLAN_PLACEHOLDERS), encoding="utf-8")
    cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(
        tmp_path, fake_openai.base_url, {"recipe_options": {"prompt_template": str(tpl)}}, tasks=1))
    res = run_cli(["run", "--config", str(cfg), "--run-id", "R", "--quiet"],
                  env=cli_env(**{KEY_ENV: SECRET}))
    assert res.returncode == 0, res.stderr
    assert fake_openai.requests
    for r in fake_openai.requests:
        text = request_messages(r.body)[0]["content"]
        assert "{{" not in text, text[:200]


def test_builtin_templates_hold_exactly_their_placeholders() -> None:
    """Every recipe's built-in template uses only what its recipe renders (and all of it)."""
    folders = {"benchsmith.recipes.plans": {TEMPLATE_NAME: PLAN_PLACEHOLDERS},
               "benchsmith.recipes.agentless": AGENTLESS_PLACEHOLDERS}
    for package, expected in folders.items():
        files = resources.files(package)
        shipped = {p.name for p in files.iterdir() if p.name.endswith(".txt")}
        assert shipped == set(expected)
        for name, known in expected.items():
            text = files.joinpath(name).read_text("utf-8")
            assert sorted(placeholders(text)) == sorted(known), name


def test_readme_documents_the_placeholders() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for p in {*PLAN_PLACEHOLDERS, *(x for v in AGENTLESS_PLACEHOLDERS.values() for x in v)}:
        assert "`{{" + p + "}}`" in readme, p


# --------------------------------------------------------------------------- the key


@pytest.mark.parametrize("value", [
    SECRET,  # sk-...
    "sk_live_51HxQd2eZvKYlo2C0aBcDeFgHiJk",
    "Bearer abc.def-ghi",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
])
def test_a_key_pasted_into_api_key_env_is_refused_unechoed(
    tmp_path: Path, fake_openai: FakeOpenAI, value: str
) -> None:
    data = cfg_dict(tmp_path, fake_openai.base_url)
    data["openai"]["api_key_env"] = value
    cfg = write_yaml(tmp_path / "c.yaml", data)
    env = cli_env(**{KEY_ENV: SECRET})
    results = [
        *_both(tmp_path, cfg),
        run_cli(["run", "--config", str(cfg), "--run-id", "R", "--json"], env=env),
    ]
    for res in results:
        line = _one_line_error(res)
        assert "openai.api_key_env" in line and "NAME of an environment variable" in line, line
        assert value not in res.stdout + res.stderr
    assert fake_openai.requests == []
    runs = tmp_path / "runs"
    assert not runs.exists() or files_under(runs) == []
    assert_no_secret(tmp_path / "runs", value) if runs.exists() else None


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MY_KEY", "_k", "AZURE_OPENAI_API_KEY_2",
                                  "VERY_LONG_PROJECT_SPECIFIC_API_KEY_VARIABLE_01"])
def test_variable_names_are_accepted(name: str) -> None:
    assert not looks_like_secret(name)


@pytest.mark.parametrize("url", [
    "http://user:sk-USERINFO-S3CRET-9f1@{hp}/v1",  # a password in the URL is a secret
    "http://sk-USERINFO-S3CRET-9f1@{hp}/v1",
])
def test_credentials_in_base_url_are_refused_unechoed(
    tmp_path: Path, fake_openai: FakeOpenAI, url: str
) -> None:
    """They would be written into config/run_config.json and the ledger (and aiohttp refuses
    them next to the Authorization header, with a traceback)."""
    hp = fake_openai.base_url.split("//")[1].split("/")[0]
    data = cfg_dict(tmp_path, url.format(hp=hp))
    cfg = write_yaml(tmp_path / "c.yaml", data)
    for res in _both(tmp_path, cfg):
        line = _one_line_error(res)
        assert "openai.base_url" in line and "credentials" in line, line
        assert "S3CRET" not in res.stdout + res.stderr
    assert fake_openai.requests == []
    runs = tmp_path / "runs"
    assert not runs.exists() or files_under(runs) == []


@pytest.mark.parametrize("url, problem", [
    ("{hp}/v1", "http:// or https://"),  # the scheme forgotten
    ("ftp://{hp}/v1", "http:// or https://"),
    ("http:///v1", "no host"),
    ("http://127.0.0.1:99999/v1", "port"),
    ("http://[::1/v1", "not a URL"),
    ("http://{hp}/v1?api-version=1", "query"),
])
def test_malformed_base_url_is_one_line_not_every_request_failed(
    tmp_path: Path, fake_openai: FakeOpenAI, url: str, problem: str
) -> None:
    hp = fake_openai.base_url.split("//")[1].split("/")[0]
    data = cfg_dict(tmp_path, url.format(hp=hp))
    cfg = write_yaml(tmp_path / "c.yaml", data)
    for res in _both(tmp_path, cfg):
        line = _one_line_error(res)
        assert "openai.base_url" in line and problem in line, line
    assert fake_openai.requests == []


# --------------------------------------------------------------------------- paths


def test_init_config_on_an_unwritable_path(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    for dest in (f / "my.yaml", Path("/proc/benchsmith-test/my.yaml")):
        line = _one_line_error(run_cli(["init-config", str(dest)]))
        assert str(dest) in line and "cannot write the config here" in line, line
    assert f.read_text() == "x"


def test_run_dir_on_an_unwritable_path(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    f = tmp_path / "afile"
    f.write_text("x")
    cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(tmp_path, fake_openai.base_url,
                                                   {"run_dir": str(f / "runs")}))
    for res in _both(tmp_path, cfg):
        line = _one_line_error(res)
        assert "run_dir" in line and str(f / "runs") in line and "Not a directory" in line, line
    assert fake_openai.requests == []


# --------------------------------------------------------------------------- other files


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"run_dir: r\xe9sultats\n")
    line = _one_line_error(run_cli(["dry-run", "--config", str(cfg)]))
    assert str(cfg) in line and "not UTF-8" in line and "0xe9" in line, line


def test_config_that_is_a_folder_or_a_list(tmp_path: Path) -> None:
    line = _one_line_error(run_cli(["dry-run", "--config", str(tmp_path)]))
    assert str(tmp_path) in line and "config file not found" in line
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- run_dir: runs\n", encoding="utf-8")
    line = _one_line_error(run_cli(["dry-run", "--config", str(cfg)]))
    assert "top level must be a mapping" in line


def test_task_ids_file_that_is_not_utf8(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"HumanEval/0\n\xff\xfe\n")
    cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(
        tmp_path, fake_openai.base_url, {"datasets": {"humaneval": {"task_ids_file": str(ids)}}}))
    line = _one_line_error(run_cli(["dry-run", "--config", str(cfg)]))
    assert str(ids) in line and "datasets.humaneval.task_ids_file" in line and "not UTF-8" in line


def test_dataset_path_that_is_a_folder_or_a_bad_gzip(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    gz = tmp_path / "rows.jsonl.gz"
    gz.write_bytes(b"not gzip at all")
    for path in (folder, gz):
        over = {"datasets": {"d": {"source": "jsonl", "path": str(path)}}}
        cfg = write_yaml(tmp_path / "c.yaml", cfg_dict(tmp_path, fake_openai.base_url, over))
        line = _one_line_error(run_cli(["dry-run", "--config", str(cfg)]))
        assert str(path) in line and "datasets.d.path" in line, line
