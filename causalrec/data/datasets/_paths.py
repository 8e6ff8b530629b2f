"""Where the reference data and the download cache live, and the errors raised when they are absent.

The reference data sets are never part of the repository: they sit in a folder named by the environment
variable ``CAUSALREC_DATA_DIR`` (one sub-folder per data set, see ``shared/data/README.md``) or in an explicit
``data_dir=`` argument, which wins over the variable. Downloaded data (only the Open Bandit sample can be
downloaded) goes to a user cache: ``cache_dir=``, else ``CAUSALREC_CACHE_DIR``, else
``$XDG_CACHE_HOME/causalrec`` or ``~/.cache/causalrec``. The cache has the same layout as the data folder, so
a cache root can also serve as a data folder. The small helpers at the end are shared by the loaders.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from causalrec.exceptions import ValidationError

DATA_DIR_VARIABLE = "CAUSALREC_DATA_DIR"
CACHE_DIR_VARIABLE = "CAUSALREC_CACHE_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """A reference data set is not where causalrec looks for it.

    The message names ``CAUSALREC_DATA_DIR``, the expected sub-path and what was found instead, so the fix is
    obvious from the message alone.
    """


class ArchiveIntegrityError(ValueError):
    """A downloaded archive does not match the sha256 pinned in the code, or lacks the expected files."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder: ``data_dir`` when given, else ``$CAUSALREC_DATA_DIR``, else ``None``.

    An empty variable counts as unset (CI sets it to an empty string when the shared folder is absent).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    value = os.environ.get(DATA_DIR_VARIABLE, "").strip()
    return Path(value).expanduser() if value else None


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The root of causalrec's download cache (see the module docstring for the order of precedence)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    value = os.environ.get(CACHE_DIR_VARIABLE, "").strip()
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "causalrec"


def describe_data_dir(data_dir: Path | None, explicit: bool) -> str:
    """What was found where the data was expected, in words, for error messages."""
    if data_dir is None:
        return f"{DATA_DIR_VARIABLE} is not set and no data_dir= was given"
    origin = "data_dir=" if explicit else f"{DATA_DIR_VARIABLE}="
    if not data_dir.exists():
        return f"{origin}{str(data_dir)!r} does not exist"
    if not data_dir.is_dir():
        return f"{origin}{str(data_dir)!r} is not a folder"
    entries = sorted(entry.name for entry in data_dir.iterdir() if not entry.name.startswith("."))
    shown = ", ".join(entries[:12]) + (", ..." if len(entries) > 12 else "")
    return f"{origin}{str(data_dir)!r} contains [{shown}]"


def missing_files(folder: Path, relative_paths: Iterable[str]) -> list[str]:
    """The relative paths that are not regular files under ``folder``."""
    return [relative for relative in relative_paths if not (folder / relative).is_file()]


def locate_dataset(
    name: str,
    required_files: Iterable[str],
    data_dir: str | os.PathLike | None = None,
) -> Path:
    """The folder ``<data dir>/<name>`` when it holds every required file; else a clear error.

    Raises
    ------
    DatasetNotFoundError
        Naming ``CAUSALREC_DATA_DIR``, the expected sub-path ``<name>/<file>`` and what was found.
    """
    required = list(required_files)
    explicit = data_dir is not None
    root = resolve_data_dir(data_dir)
    if root is not None:
        folder = root / name
        absent = missing_files(folder, required)
        if not absent:
            return folder
        found = describe_data_dir(root, explicit)
        if folder.is_dir():
            found += f"; {name}/ lacks {', '.join(absent[:6])}" + (" ..." if len(absent) > 6 else "")
    else:
        found = describe_data_dir(None, explicit)
    more = f" (and {len(required) - 1} more files)" if len(required) > 1 else ""
    raise DatasetNotFoundError(
        f"reference data set {name!r} not found: expected {name}/{required[0]}{more} under the folder named "
        f"by {DATA_DIR_VARIABLE} or data_dir=; {found}. Point "
        f"{DATA_DIR_VARIABLE} at the shared data folder (e.g. export {DATA_DIR_VARIABLE}=../shared/data)."
    )


def read_only_copy(array: object) -> np.ndarray:
    """A private copy of ``array`` that callers cannot write to (loaders never hand out shared buffers)."""
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy


def read_csv(path: Path, required: Iterable[str], **options) -> pd.DataFrame:
    """A CSV file of a data set with its ``required`` columns, or a ValidationError naming the file (a parser
    error, an empty file, or the columns that are absent)."""
    try:
        frame = pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValidationError("file", "a readable CSV file", str(error).strip(), owner=str(path)) from None
    required = list(required)
    absent = [column for column in required if column not in frame.columns]
    if absent:
        raise ValidationError("columns", f"the columns {required}", f"no {absent} (it has {list(frame.columns)[:8]})",
                              owner=str(path))
    return frame
