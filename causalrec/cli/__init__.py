"""The ``causalrec`` command line: a thin layer over the Python API.

Each command group lives in its own module of this package and exposes ``register(app)``; this file only
wires them, so adding a command never touches another command's code.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="causalrec",
    help="What recommender models cause, not only what they predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules of causalrec.cli that define ``register(app)``; one per command group.
COMMAND_MODULES = ("demo", "evaluate", "plan", "select", "uplift", "exposure", "train")


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point. A file the user named that cannot be read or written ends in one line, not a traceback
    (``--verbose`` keeps the traceback); commands check their outputs before working, this is the safety net."""
    try:
        app()
    except OSError as error:
        if logging.getLogger().isEnabledFor(logging.INFO):
            raise
        from rich.markup import escape

        from causalrec.cli._common import console

        console.print(f"[bold red]error:[/] {escape(f'{type(error).__name__}: {error}')}")
        raise SystemExit(2) from None
