"""Shared pytest fixtures.

``tests/`` is put on ``sys.path`` so test modules can do
``from fake_openai import FakeOpenAI, Reply`` (the ``fakeserver`` package).
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from fake_openai import FakeOpenAI  # noqa: E402

# Fixtures and helpers shared by the test modules of one topic (split for size).
pytest_plugins = [
    "fake_batches_support",  # before batch_executor_support, which imports it
    "batch_executor_support",
    "repo_structure_support",
    "infbench_support",
    "rollouts_support",
    "infbench_run_support",
]


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running local OpenAI-compatible fake server (fresh per test).

    Use ``fake_openai.base_url`` as the client's base URL; script it with
    ``fake_openai.enqueue(Reply...)`` / ``fake_openai.script = fn``; inspect
    ``fake_openai.requests``.
    """
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
