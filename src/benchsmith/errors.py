"""One exception tree. Every user-facing error renders as a single line."""

from __future__ import annotations


class BenchsmithError(Exception):
    """Base error; the CLI prints ``str(err)`` on one line and exits non-zero."""

    exit_code = 1


class ConfigError(BenchsmithError):
    """Bad config or input file: names the file, the field and the fix."""

    def __init__(self, file: str, field: str, problem: str):
        self.file, self.field, self.problem = file, field, problem
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(where + problem)


class AuthError(BenchsmithError):
    """401/403 from the endpoint: the whole run stops at once."""

    exit_code = 3

