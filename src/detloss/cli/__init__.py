"""The ``detloss`` command line (needs the ``cli`` extra: typer, rich, matplotlib).

Each command lives in its own module and registers itself on :data:`app`; ``detloss bench``
lives in the :mod:`detloss.benchmarks` tool (its peers need the ``bench`` extra).
"""

from __future__ import annotations

import typer

import detloss

app = typer.Typer(
    name="detloss",
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
