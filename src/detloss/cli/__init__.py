"""The ``detloss`` command line (needs the ``cli`` extra: typer, rich, matplotlib).

Each command lives in its own module and registers itself on :data:`app`; ``detloss bench``
lives in the :mod:`detloss.benchmarks` tool (its peers need the ``bench`` extra).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

import detloss

# click's base of usage errors: typer.BadParameter's, whether typer vendors click or uses it
_ClickException: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"
)


class _OneLineErrors(TyperGroup):
    """Bad arguments end in one line on stderr, ``detloss COMMAND: error: MESSAGE``, with
    click's exit code (2), in place of the usage and a framed message."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _ClickException as err:
            if type(err).__name__ != "NoArgsIsHelpError":  # the help is already printed
                ctx = getattr(err, "ctx", None)
                command = ctx.command_path if ctx is not None else "detloss"
                typer.echo(f"{command}: error: {err.format_message()}", err=True)  # type: ignore[attr-defined]
            sys.exit(getattr(err, "exit_code", 2))
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="detloss",
    cls=_OneLineErrors,
    help="Object-detection losses: simulations, plots and benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"detloss {detloss.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """detloss: exact, fast and numerically safe object-detection losses."""


def main() -> None:
    """Console-script entry point."""
    app()


from detloss.benchmarks import cli as bench  # noqa: E402, F401  (commands register on app)
from detloss.cli import ablate, plot, simulate  # noqa: E402, F401
