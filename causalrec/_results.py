"""The shared face of result objects: statsmodels-like ``summary()``, ``to_frame()`` and ``to_dict()``.

Result classes are frozen dataclasses that inherit :class:`ResultMixin`; they implement ``to_frame`` (the main
table) and may override ``summary``. ``to_dict`` converts numpy scalars/arrays, nested dataclasses and
DataFrames into JSON-safe Python objects, so notebooks, reports and the CLI print the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def to_jsonable(value: Any) -> Any:
    """Recursively convert ``value`` into objects that ``json.dumps`` accepts (NaN and inf become None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return value.to_dict()
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(record) for record in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Path):
        return str(value)
    return value


class ResultMixin:
    """Mixin for frozen result dataclasses."""

    def to_frame(self) -> pd.DataFrame:  # pragma: no cover - every result overrides it
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def _row(self, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields as one table row, values as they are: a missing number stays NaN (``to_dict`` makes it
        None for JSON), so a frame's numeric columns stay numeric."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in exclude}

    def summary(self) -> str:
        title = type(self).__name__
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            return f"{title}\n{'=' * len(title)}\n{self.to_frame().to_string()}"

    def __str__(self) -> str:
        return self.summary()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as stream:
            stream.write(data)
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """JSON-encode ``payload`` (through :func:`to_jsonable`) and write it atomically."""
    return write_atomic(path, json.dumps(to_jsonable(payload), indent=2, allow_nan=False) + "\n")
