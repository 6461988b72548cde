"""``python tests/fake_openai.py``: run the fake server in its own process."""

from __future__ import annotations

import argparse
import sys

from .server import FakeOpenAI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--cached-tokens", type=int, default=0)
    parser.add_argument(
        "--force-output-tokens", type=int, default=None, metavar="N",
        help="report N output tokens in every usage, past any max_output_tokens",
    )
    args = parser.parse_args(argv)

    server = FakeOpenAI(
        latency=args.latency, cached_tokens=args.cached_tokens, host=args.host, port=args.port,
        force_output_tokens=args.force_output_tokens,
    )

    def ready(url: str) -> None:
        sys.stdout.write(f"READY {url}\n")
        sys.stdout.flush()

    server.serve_forever(on_ready=ready)
    return 0
