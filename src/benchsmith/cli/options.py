"""What the CLI's command groups share: the group settings and common options, so flags
keep one name and one meaning across commands."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer.core import TyperOption

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
F = TypeVar("F", bound=Callable[..., Any])


def flags_take_no_value() -> None:
    """Typer's rich help gives every flag a `<bool>` type, as if it took a value; click's
    plain help shows none. Show none here too (a flag given a metavar keeps it). Called once
    by the app as it is built; a second call changes nothing."""
    shown = TyperOption.display_type_rich
    if getattr(shown, "_benchsmith", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if (self.is_flag or self.count) and self.metavar is None:
            return None
        return shown(self, ctx)

    display_type_rich._benchsmith = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def command_group(name: str, help: str, example: str, **settings: Any) -> typer.Typer:
    """A `benchsmith <name> ...` group: its help ends with one example; no args shows help."""
    return typer.Typer(
        name=name, help=f"{help}\n\nExample:\n\n  {example}", no_args_is_help=True,
        context_settings=HELP_OPTIONS, **settings,
    )


def first_example(doc: str) -> str:
    """The first `benchsmith ...` line of a command's help (its first example)."""
    found = re.search(r"^\s*(benchsmith .+)$", doc, re.MULTILINE)
    return found.group(1).strip() if found else ""


def limit_option(help: str) -> Any:
    """--limit N (N >= 0)."""
    return typer.Option(None, "--limit", min=0, metavar="N", help=help)


def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q",
                        help="No progress (bar or log lines); errors still print.")


def json_option(what: str) -> Any:
    """--json: `what` printed as JSON on stdout instead of text."""
    return typer.Option(False, "--json", help=f"Print {what} as JSON on stdout.")


def shared_flags(flags: Sequence[tuple[str, Any, Any]]) -> Callable[[F], F]:
    """A decorator for commands that take the same flags: `flags` ((parameter, type,
    typer option), in --help order) follow the command's own parameters, and reach it in
    its `**kwargs`."""

    def add(fn: F) -> F:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        more = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt,
                                  annotation=typ) for name, typ, opt in flags]
        fn.__signature__ = inspect.Signature([*own, *more])  # type: ignore[attr-defined]
        fn.__annotations__ = {**{p.name: p.annotation for p in own},
                              **{name: typ for name, typ, _ in flags}}
        return fn

    return add
