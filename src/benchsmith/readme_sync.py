"""Rewrite generated README sections in place: `python -m benchsmith.readme_sync README.md`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from benchsmith.config_doc import config_reference_markdown


def replace_section(text: str, name: str, body: str) -> str:
    pat = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"README has no <!-- {name}:start/end --> markers")
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text)


def synced(text: str) -> str:
    return replace_section(text, "config-reference", config_reference_markdown())


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(synced(path.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
