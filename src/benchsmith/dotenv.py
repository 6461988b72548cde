"""A `.env` file's KEY=VALUE lines, parsed without a dependency. config.py decides which
variables are taken from it (only those a config names, never over the real environment);
values are never printed, so errors name the file and line only."""

from __future__ import annotations

import re
from pathlib import Path

from benchsmith.errors import ConfigError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _value(raw: str, file: str, n: int) -> str:
    if raw[:1] in ("'", '"'):
        end = raw.find(raw[0], 1)
        rest = raw[end + 1:].strip() if end > 0 else ""
        if end < 0 or rest and not rest.startswith("#"):
            raise ConfigError(file, f"line {n}", "a quoted value must end with its quote "
                              "(only a # comment may follow)")
        return raw[1:end]
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()  # `KEY=v # note`: the note is a comment


def parse_dotenv(text: str, file: str) -> dict[str, str]:
    """`KEY=VALUE` lines; blank lines and `# comments` skipped; an optional `export `; values
    may be quoted with ' or " (taken as written, no escapes)."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("export "):
            s = s[len("export "):].lstrip()
        key, eq, raw = s.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise ConfigError(file, f"line {n}", "expected KEY=VALUE (KEY: letters, digits, _)")
        out[key] = _value(raw.strip(), file, n)
    return out


def read_dotenv(path: Path) -> dict[str, str]:
    """The file's variables; none when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot be read ({type(e).__name__}); fix or remove it")
    return parse_dotenv(text, str(path))
