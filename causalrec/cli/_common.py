"""Helpers shared by CLI commands: console output and JSON writing at the edge."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from causalrec._results import write_json_atomic
from causalrec._text import split_names
from causalrec.exceptions import CausalrecWarning, ValidationError

console = Console(stderr=True)  # errors, warnings, progress, "written to" lines
results = Console()  # result summaries: standard output, so that `causalrec evaluate ... > summary.txt` keeps them
T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    # The message is data, not markup: "[position,]" in it must print as written.
    console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=2)


def show(text: str, **options: Any) -> None:
    """Print result text as written: no rich markup or highlighting ("[position,]" or "[0.93, 1.00]" stay as is)."""
    results.print(text, markup=False, highlight=False, **options)


def refuse_unused(context: str, applies_to: str, *options: tuple[str, Any, Any]) -> None:
    """Fail when options that would be ignored in ``context`` were given, instead of running without them.

    Each option is ``(flag, value, default)``; a value equal to its default counts as not given (the command line
    cannot tell ``--clip`` left out from one passed at its default, and the latter changes nothing). ``applies_to``
    says where they do apply, e.g. ``"logs (--logs or --dataset obd)"``.
    """
    given = [flag if value is True else f"{flag} {value}" for flag, value, default in options if value != default]
    if given:
        raise fail(f"{', '.join(given)}: {'these apply' if len(given) > 1 else 'this applies'} to {applies_to}; "
                   f"found with {context}, where {'they' if len(given) > 1 else 'it'} would be ignored")


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}")


@contextmanager
def held_warnings() -> Iterator[list[str]]:
    """Hold back the warnings raised during the block (``CausalrecWarning`` always shown, each occurrence) and the
    records logged at WARNING or above under the ``causalrec`` logger, and collect their messages, so that a
    command prints each once, after its work, and only when its result summaries do not already state it
    (:func:`warn_unshown`). Records below WARNING still reach the root handlers (``--verbose``)."""
    messages: list[str] = []

    class _Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())
            else:
                logging.getLogger().handle(record)

    library_logger = logging.getLogger("causalrec")
    handler, propagate = _Hold(), library_logger.propagate
    library_logger.addHandler(handler)
    library_logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CausalrecWarning)
            yield messages
    finally:
        library_logger.removeHandler(handler)
        library_logger.propagate = propagate
    messages.extend(str(warning.message) for warning in caught)


def warn_unshown(messages: list[str], shown: str) -> None:
    """Print each held-back warning once, unless the text already shown (result summaries) states it."""
    for message in dict.fromkeys(messages):
        if message not in shown:
            warn(message)


# The files a folder output holds that an input could be (a report folder's pair, a training run's metrics).
FOLDER_OUTPUT_FILES = ("report.html", "report.json", "metrics.json")


def check_outputs(*outputs: tuple[str, Path | None, bool], inputs: tuple[tuple[str, Path | None], ...] = ()) -> None:
    """Fail before any work when an output cannot be written, so that a long run is not lost at its end.

    Each output is ``(option, path, is_folder)``; a ``None`` path is skipped. An output that would replace one of
    the ``inputs`` (``(option, path)``), e.g. ``plan --from-json plan.json --json plan.json``, is refused: the
    input would be lost. The folder that will hold the output is created, and a scratch file is written there and
    removed.
    """
    read = {Path(path).resolve(): option for option, path in inputs if path is not None}
    for option, path, is_folder in outputs:
        if path is None:
            continue
        written = [path / name for name in FOLDER_OUTPUT_FILES] if is_folder else [path]
        for target in written:
            if target.resolve() in read:
                raise fail(f"{option} {path}: expected an output apart from the inputs; found that it would "
                           f"replace {read[target.resolve()]} {target}")
        folder = path if is_folder else path.parent
        if not is_folder and path.is_dir():
            raise fail(f"{option} {path}: expected a file name; found a folder")
        if folder.exists() and not folder.is_dir():
            raise fail(f"{option} {path}: expected a folder; found a file at {folder}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".causalrec-write-check-"):
                pass
        except OSError as error:
            raise fail(f"{option} {path}: cannot write there; {type(error).__name__}: {error}") from error


def write_json(path: Path | None, payload: Any) -> None:
    if path is not None:
        write_json_atomic(path, payload)
        console.print(f"wrote {path}")


def read_input(option: str, path: Path, read: Callable[[Path], T], kind: str) -> T:
    """``read(path)``, with a missing, unreadable or malformed file turned into a one-line error that names the
    option, the file and what was expected (no traceback). A causalrec ``ValidationError`` (the file was read but
    breaks a data contract) passes through to the command's own handling."""
    try:
        return read(path)
    except ValidationError:
        raise
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid and pandas' parser errors are ValueErrors
        logging.getLogger(__name__).info("reading %s %s failed", option, path, exc_info=True)  # --verbose: traceback
        raise fail(f"{option} {path}: expected a readable {kind} file; {type(error).__name__}: {error}") from error


__all__ = [
    "ValidationError", "check_outputs", "console", "fail", "held_warnings", "read_input", "refuse_unused",
    "split_names", "warn_unshown", "write_json",
]
