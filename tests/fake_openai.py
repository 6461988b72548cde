"""The fake OpenAI-compatible server, under its historical name.

The code lives in the ``tests/fakeserver/`` package (see its docstring); this module
re-exports its public names for ``from fake_openai import FakeOpenAI, Reply, ...`` and
runs it as a process::

    python tests/fake_openai.py --port 0 --latency 0.2 [--force-output-tokens 50000]
    # prints "READY http://127.0.0.1:PORT/v1" and serves until killed
"""

from __future__ import annotations

import sys

# Run as a script, this file's folder (tests/) is on sys.path, so the package imports.
from fakeserver import (
    BatchScript,
    FakeBatch,
    FakeFile,
    FakeOpenAI,
    Headers,
    Received,
    Reply,
    generate_instance,
    main,
)

__all__ = [
    "BatchScript", "FakeBatch", "FakeFile", "FakeOpenAI", "Headers", "Received", "Reply",
    "generate_instance", "main",
]

if __name__ == "__main__":
    sys.exit(main())
