"""Reading a text file the user named (config, template, id list): one-line errors."""

from __future__ import annotations

from pathlib import Path

from benchsmith.errors import ConfigError


def read_user_text(path: Path, field: str) -> str:
    """The file's text; a non-UTF-8 or unreadable file is a ConfigError naming `field`."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(str(path), field, f"cannot read the file ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            str(path), field,
            f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8",
        ) from None
