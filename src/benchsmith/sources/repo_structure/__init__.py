"""Repository layout and file text at an instance's base_commit, for Agentless-style prompts.

Two sources, one result (`RepoStructure`):

* Agentless repo-structure files, `<dir>/<instance_id>.json` (`agentless_json`).
* A local clone, read at the commit with `git ls-tree` and `git cat-file --batch` only: the
  user's checkout (working tree, index, HEAD) is never touched (`git_tree`). `.py` files are
  parsed with `ast` (`python_ast`); the result is cached as JSON per (repo, commit) under
  `~/.cache/benchsmith/repo_structure/<owner>__<name>/<commit>.json` (or `cache_dir`)
  (`cache`).

Modules: `model` (the result types, `tree_text`), `agentless_json` (the JSON layout both ways),
`python_ast`, `git_tree`, `cache`, `lookup` (`build_structure`, `structure_for`), `dataset`
(what `benchsmith repo-structure build` runs). Import from this package, not the modules.
"""

from __future__ import annotations

from benchsmith.sources.repo_structure.agentless_json import (
    load_structure_file,
    structure_from_json,
    structure_to_json,
)
from benchsmith.sources.repo_structure.cache import CACHE_VERSION, cache_path, default_cache_dir
from benchsmith.sources.repo_structure.dataset import (
    BuildReport,
    Instance,
    build_dataset_structures,
    load_instances,
)
from benchsmith.sources.repo_structure.lookup import (
    build_structure,
    clone_candidates,
    structure_for,
)
from benchsmith.sources.repo_structure.model import ClassSpan, CodeSpan, FileEntry, RepoStructure
from benchsmith.sources.repo_structure.python_ast import parse_python

__all__ = [
    "CACHE_VERSION",
    "BuildReport",
    "ClassSpan",
    "CodeSpan",
    "FileEntry",
    "Instance",
    "RepoStructure",
    "build_dataset_structures",
    "build_structure",
    "cache_path",
    "clone_candidates",
    "default_cache_dir",
    "load_instances",
    "load_structure_file",
    "parse_python",
    "structure_for",
    "structure_from_json",
    "structure_to_json",
]
