"""What the CLI's command groups share: the group settings and common options, so flags
keep one name and one meaning across commands."""

from __future__ import annotations

from typing import Any

import typer

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def command_group(name: str, help: str, example: str) -> typer.Typer:
    """A `benchsmith <name> ...` group: its help ends with one example; no args shows help."""
    return typer.Typer(
        name=name, help=f"{help}\n\nExample:\n\n  {example}", no_args_is_help=True,
        context_settings=HELP_OPTIONS,
    )


def limit_option(help: str) -> Any:
    """--limit N (N >= 0)."""
    return typer.Option(None, "--limit", min=0, metavar="N", help=help)


def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q", help="No progress bar.")


def json_option(what: str) -> Any:
    """--json: `what` printed as JSON on stdout instead of text."""
    return typer.Option(False, "--json", help=f"Print {what} as JSON on stdout.")
