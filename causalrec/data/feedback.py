"""``LoggedFeedback``: the one validated, immutable contract for logged bandit / recommender feedback.

Each of the ``n_rounds`` rows is one logged impression: the ``action`` (item index) shown at ``position`` (slot,
0 when there is a single slot) to a user described by a row of ``context``, the observed ``reward`` and, when
known, ``pscore``, the logging policy's probability of showing that action at that position.

The object validates on construction and fails loudly with :class:`~causalrec.exceptions.ValidationError`,
which names the field, the expectation, what was found and the first offending row. It copies its inputs and
stores read-only arrays: estimators derive new objects, they never write back, and the caller's data is never
touched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from causalrec._arrays import as_index, as_index_below, as_numeric, check_finite
from causalrec._results import write_atomic
from causalrec.exceptions import ValidationError

_OWNER = "LoggedFeedback"


def _fail(field_name: str, expected: str, found: str, row: int | None = None) -> ValidationError:
    return ValidationError(field_name, expected, found, row, owner=_OWNER)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False, repr=False)
class LoggedFeedback:
    """Logged feedback of a (ranking) policy, validated and immutable.

    Parameters
    ----------
    action : array of int, shape (n_rounds,)
        Index of the shown item, in ``[0, n_actions)``.
    reward : array of float, shape (n_rounds,)
        Observed outcome (click, conversion, rating...).
    n_actions : int, optional
        Size of the catalogue. Inferred as ``max(action) + 1`` when omitted (and from ``action_context``).
    position : array of int, optional
        Slot of the impression in ``[0, n_positions)``; all zeros when omitted.
    pscore : array of float, optional
        Logging probability of the (action, position), in (0, 1]. ``None`` when the logs lack it; estimators
        then need an exposure model (``causalrec.exposure``).
    context : array of float, shape (n_rounds, d), optional
        Features of the round (user, request). ``context_names`` name its columns.
    action_context : array of float, shape (n_actions, p), optional
        Features of the items.
    n_positions : int, optional
        Number of slots; inferred as ``max(position) + 1`` when omitted.
    user_id, timestamp : arrays, optional
        Per-round identifiers, kept for splits and time-indexed policies.
    metadata : mapping, optional
        Free information (data set name, logging policy description, ...). Stored read-only.
    """

    action: np.ndarray
    reward: np.ndarray
    n_actions: int | None = None
    position: np.ndarray | None = None
    pscore: np.ndarray | None = None
    context: np.ndarray | None = None
    context_names: tuple[str, ...] | None = None
    action_context: np.ndarray | None = None
    n_positions: int | None = None
    user_id: np.ndarray | None = None
    timestamp: np.ndarray | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        action = as_index(self.action, "action", None, owner=_OWNER)
        n_rows = action.shape[0]
        if n_rows == 0:
            raise _fail("action", "non-empty (at least one logged round)", "0 rows")
        if (action < 0).any():
            row = _first(action < 0)
            raise _fail("action", "a non-negative item index", f"{action[row]}", row)

        action_context = None
        if self.action_context is not None:
            action_context = as_numeric(self.action_context, "action_context", None, ndim=2,
                                        owner=_OWNER).astype(np.float64)
            check_finite(action_context, "action_context", owner=_OWNER)

        n_actions = self.n_actions
        if n_actions is None:
            n_actions = int(action.max()) + 1
            if action_context is not None:
                n_actions = max(n_actions, action_context.shape[0])
        elif isinstance(n_actions, bool) or not isinstance(n_actions, int | np.integer) or n_actions < 1:
            raise _fail("n_actions", "a positive integer", repr(n_actions))
        n_actions = int(n_actions)
        if (action >= n_actions).any():
            row = _first(action >= n_actions)
            raise _fail("action", f"an item index in [0, n_actions) = [0, {n_actions})", f"{action[row]}", row)
        if action_context is not None and action_context.shape[0] != n_actions:
            raise _fail("action_context", f"one row per action ({n_actions} rows)", f"{action_context.shape[0]} rows")

        reward = as_numeric(self.reward, "reward", n_rows, owner=_OWNER).astype(np.float64)
        check_finite(reward, "reward", owner=_OWNER)

        if self.position is None:
            position = np.zeros(n_rows, dtype=np.int64)
        else:
            position = as_index(self.position, "position", n_rows, owner=_OWNER)
            if (position < 0).any():
                row = _first(position < 0)
                raise _fail("position", "a non-negative slot index (0 = first slot)", f"{position[row]}", row)
        n_positions = self.n_positions
        if n_positions is None:
            n_positions = int(position.max()) + 1
        elif isinstance(n_positions, bool) or not isinstance(n_positions, int | np.integer) or n_positions < 1:
            raise _fail("n_positions", "a positive integer", repr(n_positions))
        n_positions = int(n_positions)
        if (position >= n_positions).any():
            row = _first(position >= n_positions)
            raise _fail("position", f"a slot in [0, n_positions) = [0, {n_positions})", f"{position[row]}", row)

        pscore = None
        if self.pscore is not None:
            pscore = as_numeric(self.pscore, "pscore", n_rows, owner=_OWNER).astype(np.float64)
            if np.isnan(pscore).any():
                row = _first(np.isnan(pscore))
                raise _fail("pscore", "a probability in (0, 1] (pass pscore=None if it is unknown)", "NaN", row)
            outside = (pscore <= 0) | (pscore > 1)
            if outside.any():
                row = _first(outside)
                raise _fail("pscore", "a probability in (0, 1]", f"{pscore[row]!r}", row)

        if self.context is None:
            context = np.zeros((n_rows, 0), dtype=np.float64)
        else:
            raw = self.context
            if isinstance(raw, pd.DataFrame) and self.context_names is None:
                set_(self, "context_names", tuple(str(c) for c in raw.columns))
            try:
                context = as_numeric(raw, "context", None, ndim=2, owner=_OWNER).astype(np.float64)
                if context.shape[0] != n_rows:
                    raise _fail("context", f"{n_rows} rows (one per logged round)", f"{context.shape[0]} rows")
                check_finite(context, "context", owner=_OWNER)
            except ValidationError as error:
                _name_context_column(raw, self.context_names, error)
                raise
        names = self.context_names
        if names is None:
            names = tuple(f"context_{j}" for j in range(context.shape[1]))
        else:
            if isinstance(names, str):
                raise _fail("context_names", "a sequence of column names", f"the string {names!r}")
            names = tuple(str(name) for name in names)
            if len(names) != context.shape[1]:
                raise _fail("context_names", f"{context.shape[1]} names (one per context column)", f"{len(names)}")
            if len(set(names)) != len(names):
                repeated = sorted(pd.Index(names)[pd.Index(names).duplicated()].unique())
                raise _fail("context_names", "distinct names", f"repeated {repeated[:10]}")

        for name in ("user_id", "timestamp"):
            values = getattr(self, name)
            if values is not None:
                values = np.asarray(values)
                if values.ndim != 1 or values.shape[0] != n_rows:
                    raise _fail(name, f"a 1-D array of length n_rounds = {n_rows}", f"shape {values.shape}")
                set_(self, name, _frozen(values))

        set_(self, "action", _frozen(action))
        set_(self, "reward", _frozen(reward))
        set_(self, "n_actions", n_actions)
        set_(self, "position", _frozen(position))
        set_(self, "n_positions", n_positions)
        set_(self, "pscore", None if pscore is None else _frozen(pscore))
        set_(self, "context", _frozen(context))
        set_(self, "context_names", names)
        set_(self, "action_context", None if action_context is None else _frozen(action_context))
        metadata = {} if self.metadata is None else self.metadata
        if not isinstance(metadata, Mapping):
            raise _fail("metadata", "a mapping (dict) or None", type(metadata).__name__)
        set_(self, "metadata", MappingProxyType(dict(metadata)))

    # ------------------------------------------------------------------ basic facts
    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    def __len__(self) -> int:
        return self.n_rounds

    def __repr__(self) -> str:
        pscore = "known" if self.pscore is not None else "missing"
        return (
            f"LoggedFeedback(n_rounds={self.n_rounds}, n_actions={self.n_actions}, n_positions={self.n_positions}, "
            f"context_dim={self.context.shape[1]}, pscore={pscore}, mean_reward={self.reward.mean():.6g})"
        )

    # ------------------------------------------------------------------ derivation (never mutation)
    def _replace(self, **changes: Any) -> LoggedFeedback:
        values = {
            "action": self.action,
            "reward": self.reward,
            "n_actions": self.n_actions,
            "position": self.position,
            "pscore": self.pscore,
            "context": self.context,
            "context_names": self.context_names,
            "action_context": self.action_context,
            "n_positions": self.n_positions,
            "user_id": self.user_id,
            "timestamp": self.timestamp,
            "metadata": dict(self.metadata),
        }
        values.update(changes)
        return LoggedFeedback(**values)

    def take(self, rows: Sequence[int] | np.ndarray) -> LoggedFeedback:
        """A new ``LoggedFeedback`` with the given rows (in that order; repeats allowed, e.g. for a bootstrap)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (self.n_rounds,):
                raise _fail("rows", f"a boolean mask of length n_rounds = {self.n_rounds}", f"shape {rows.shape}")
            rows = np.flatnonzero(rows)
        else:
            rows = as_index_below(rows, "rows", self.n_rounds, owner=_OWNER,
                                  expected=f"row numbers in [0, n_rounds) = [0, {self.n_rounds})")
        if rows.size == 0:
            raise _fail("rows", "at least one selected row", "an empty selection")

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        return self._replace(
            action=self.action[rows],
            reward=self.reward[rows],
            position=self.position[rows],
            pscore=pick(self.pscore),
            context=self.context[rows],
            user_id=pick(self.user_id),
            timestamp=pick(self.timestamp),
        )

    def with_pscore(self, pscore: np.ndarray | None, source: str | None = None) -> LoggedFeedback:
        """A copy whose ``pscore`` is replaced (e.g. by estimated propensities); ``source`` is recorded, and without
        one the previous pscore's source is dropped (it described the values replaced)."""
        metadata = dict(self.metadata)
        if source is not None:
            metadata["pscore_source"] = source
        else:
            metadata.pop("pscore_source", None)
        return self._replace(pscore=pscore, metadata=metadata)

    # ------------------------------------------------------------------ pandas / parquet
    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        action: str = "action",
        reward: str = "reward",
        pscore: str | None = None,
        position: str | None = None,
        context: Sequence[str] | None = None,
        user_id: str | None = None,
        timestamp: str | None = None,
        n_actions: int | None = None,
        n_positions: int | None = None,
        action_context: np.ndarray | pd.DataFrame | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> LoggedFeedback:
        """Build from a DataFrame by naming its columns. ``context`` lists the feature columns."""
        if not isinstance(df, pd.DataFrame):
            raise _fail("df", "a pandas DataFrame", type(df).__name__)
        if isinstance(context, str):
            raise _fail("context", "a list of column names", f"the string {context!r} (write [{context!r}])")
        named = {"action": action, "reward": reward, "pscore": pscore, "position": position}
        named.update({"user_id": user_id, "timestamp": timestamp})
        missing = [f"{role}={col!r}" for role, col in named.items() if col is not None and col not in df.columns]
        missing += [f"context column {col!r}" for col in (context or []) if col not in df.columns]
        if missing:
            raise _fail("columns", f"present in the DataFrame (it has {list(df.columns)[:20]})", ", ".join(missing))

        def column(name: str | None) -> np.ndarray | None:
            return None if name is None else df[name].to_numpy(copy=True)

        context_columns = list(context or [])
        if isinstance(action_context, pd.DataFrame):
            action_context = action_context.to_numpy(dtype=np.float64, copy=True)
        return cls(
            action=column(action),
            reward=column(reward),
            n_actions=n_actions,
            position=column(position),
            pscore=column(pscore),
            context=df[context_columns].to_numpy(copy=True) if context_columns else None,
            context_names=tuple(context_columns) if context_columns else None,
            action_context=action_context,
            n_positions=n_positions,
            user_id=column(user_id),
            timestamp=column(timestamp),
            metadata=metadata or {},
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per round: ``action, reward, position[, pscore][, user_id][, timestamp]`` and the context."""
        columns: dict[str, Any] = {"action": self.action, "reward": self.reward, "position": self.position}
        if self.pscore is not None:
            columns["pscore"] = self.pscore
        if self.user_id is not None:
            columns["user_id"] = self.user_id
        if self.timestamp is not None:
            columns["timestamp"] = self.timestamp
        frame = pd.DataFrame(columns)
        overlap = set(self.context_names) & set(frame.columns)
        if overlap:
            raise _fail("context_names", "distinct from the reserved columns", f"{sorted(overlap)}")
        context = pd.DataFrame(self.context, columns=list(self.context_names))
        return pd.concat([frame, context], axis=1)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike, exclude: Sequence[str] = (), **columns: Any) -> LoggedFeedback:
        """Read a parquet file written by :meth:`to_parquet` (column roles restored from its metadata), any parquet
        file whose column roles are given as in :meth:`from_dataframe`, or, with neither, one that follows the
        column names: ``action, reward`` and the optional ``position, pscore, user_id, timestamp``; every other
        column is context. ``exclude`` names columns that are not context either (e.g. a key that groups the
        cross-fitting folds, which must not become a feature)."""
        import pyarrow.parquet as pq

        if isinstance(exclude, str):
            raise _fail("exclude", "a list of column names", f"the string {exclude!r} (write [{exclude!r}])")
        table = pq.read_table(path)
        unknown = [name for name in exclude if name not in table.column_names]
        if unknown:
            raise _fail("exclude", f"columns of the file (it has {table.column_names[:20]})", f"{unknown}")
        stored = table.schema.metadata or {}
        if not columns and b"causalrec" in stored:
            import json

            roles = json.loads(stored[b"causalrec"])
            action_context = roles.pop("action_context", None)
            if action_context is not None:
                roles["action_context"] = np.asarray(action_context, dtype=np.float64)
            columns = roles
        if not columns:
            columns = {"context": [c for c in table.column_names if c not in _RESERVED]}
            roles = ("pscore", "position", "user_id", "timestamp")
            columns.update({role: role for role in roles if role in table.column_names})
        if exclude and columns.get("context"):
            columns = {**columns, "context": [c for c in columns["context"] if c not in set(exclude)]}
        return cls.from_dataframe(table.to_pandas(), **columns)

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write atomically; column roles, n_actions, n_positions and action features travel in the metadata."""
        import io
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.to_dataframe(), preserve_index=False)
        roles: dict[str, Any] = {
            "action": "action",
            "reward": "reward",
            "position": "position",
            "pscore": "pscore" if self.pscore is not None else None,
            "user_id": "user_id" if self.user_id is not None else None,
            "timestamp": "timestamp" if self.timestamp is not None else None,
            "context": list(self.context_names),
            "n_actions": self.n_actions,
            "n_positions": self.n_positions,
            "metadata": {k: v for k, v in self.metadata.items() if _json_safe(v)},
        }
        if self.action_context is not None:
            roles["action_context"] = self.action_context.tolist()
        metadata = dict(table.schema.metadata or {})
        metadata[b"causalrec"] = json.dumps(roles).encode()
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(metadata), buffer)
        return write_atomic(path, buffer.getvalue())

    # ------------------------------------------------------------------ Open Bandit Pipeline dicts
    @classmethod
    def from_obp_dict(cls, bandit_feedback: Mapping[str, Any], **metadata: Any) -> LoggedFeedback:
        """Build from an Open-Bandit-Pipeline-style dict (``action, reward, pscore, position, context,
        action_context, n_rounds, n_actions``); positions are 0-based as in OBP."""
        if not isinstance(bandit_feedback, Mapping):
            raise _fail("bandit_feedback", "a mapping (dict)", type(bandit_feedback).__name__)
        for key in ("action", "reward"):
            if key not in bandit_feedback:
                raise _fail(key, "a key of the bandit feedback dict", f"keys {sorted(bandit_feedback)}")
        feedback = cls(
            action=bandit_feedback["action"],
            reward=bandit_feedback["reward"],
            n_actions=bandit_feedback.get("n_actions"),
            position=bandit_feedback.get("position"),
            pscore=bandit_feedback.get("pscore"),
            context=bandit_feedback.get("context"),
            action_context=bandit_feedback.get("action_context"),
            metadata=metadata,
        )
        n_rounds = bandit_feedback.get("n_rounds")
        if n_rounds is not None and int(n_rounds) != feedback.n_rounds:
            raise _fail("n_rounds", f"equal to the length of 'action' ({feedback.n_rounds})", f"{n_rounds}")
        return feedback

    def to_obp_dict(self) -> dict[str, Any]:
        """An Open-Bandit-Pipeline-style dict of writable copies."""
        return {
            "n_rounds": self.n_rounds,
            "n_actions": self.n_actions,
            "action": self.action.copy(),
            "position": self.position.copy(),
            "reward": self.reward.copy(),
            "pscore": None if self.pscore is None else self.pscore.copy(),
            "context": self.context.copy(),
            "action_context": None if self.action_context is None else self.action_context.copy(),
        }


_RESERVED = {"action", "reward", "position", "pscore", "user_id", "timestamp"}


def _name_context_column(raw: Any, names: Sequence[str] | None, error: ValidationError) -> None:
    """Re-raise a context error for the first offending column, by name, when the columns can be told apart.

    ``error`` came from the whole matrix, which can say "dtype object" but not which column holds the strings;
    a user with a categorical column needs its name and what to do about it."""
    if error.field != "context":
        return
    frame = raw if isinstance(raw, pd.DataFrame) else None
    if frame is None:
        array = np.asarray(raw, dtype=object)
        if array.ndim != 2:
            return
        frame = pd.DataFrame(array)
    if names is None and isinstance(raw, pd.DataFrame):
        names = [str(c) for c in raw.columns]
    named = names is not None and not isinstance(names, str) and len(names) == frame.shape[1]
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        field_name = f"context.{names[position]}" if named else f"context[:, {position}]"
        try:
            values = as_numeric(column, field_name, None, owner=_OWNER)
        except ValidationError as column_error:
            row = column_error.row
            missing = row is not None and bool(pd.isna(column.iloc[row]))
            expected = ("numeric without missing values (fill or drop them first)" if missing
                        else "numeric (encode categories first, e.g. one-hot with pandas.get_dummies)")
            found = f"a missing value ({column.iloc[row]!r})" if missing else column_error.found
            raise ValidationError(field_name, expected, found, row, owner=_OWNER) from None
        check_finite(values.astype(np.float64), field_name, owner=_OWNER)


def _json_safe(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None
