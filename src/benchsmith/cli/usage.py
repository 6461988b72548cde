"""Usage errors (a bad flag value, a missing argument, an unknown command or flag) as one line
on stderr and exit 2, instead of click's boxed usage panel. Used as the app's root group, so
every command, the console script, `python -m benchsmith` and CliRunner go through it."""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer vendors click from 0.2x on; older ones raise click's own exceptions
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError


def usage_error(ctx: Any, message: str) -> Exception:
    """A usage error of the command `ctx` runs, for commands that parse some words
    themselves: shown like click's own (one line, exit 2)."""
    return UsageError(message, ctx=ctx)


def usage_line(e: Any) -> str:
    """`error: <command>: <what is wrong>; <what it takes>; see `<command> -h``."""
    where = e.ctx.command_path if e.ctx is not None else "benchsmith"
    what = e.format_message().rstrip(".")
    param = getattr(e, "param", None)
    takes = ""
    if param is not None and e.ctx is not None:
        shown = _value_type(param, e.ctx)
        name = param.opts[0] if param.param_type_name == "option" and param.opts else None
        if shown and name:
            takes = f"; give {name} {shown}"
        elif shown:
            takes = f"; give it as {shown}"
    return f"error: {where}: {what}{takes}; see `{where} -h`"


def _value_type(param: Any, ctx: Any) -> str | None:
    """The value a parameter takes as help shows it (`<float>`, `N`), if it takes one."""
    if getattr(param, "is_flag", False):
        return None
    try:
        shown = (param.display_type_rich(ctx) if hasattr(param, "display_type_rich")
                 else param.make_metavar())
    except Exception:  # noqa: BLE001 - only the hint is lost
        return None
    return str(shown) if shown else None


class OneLineUsageGroup(TyperGroup):
    """The root group: runs the command as click does, but reports usage errors itself."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as e:  # the help is already shown
            sys.exit(e.exit_code)
        except UsageError as e:
            typer.echo(usage_line(e), err=True)
            sys.exit(e.exit_code)
        except ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        # Without standalone mode click returns the exit code of a typer.Exit, else the
        # command's return value (None: success).
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)
