"""Evaluation policies as action distributions, and the policies that turn model scores into them.

An action distribution gives, for every logged round ``i`` and slot ``l``, the probability ``pi(a | x_i, l)`` of
each item. Off-policy estimators only ever need two views of it:

* ``prob_of(action, position)``: the probability of the logged (action, position) of each round (importance
  weights);
* ``support(position)``: the (round, action, probability) triples of each round at its logged slot, to average a
  reward model over the target policy (direct method). Triples may repeat a (round, action); sums stay right.

Three concrete forms cover the cases without dense ``n x A x L`` arrays:

* :class:`SparseDistribution`: explicit triples per round (top-k, sampled policies, long-format input);
* :class:`TableDistribution`: a few distribution tables ``(T, A, L)`` and the table index of every round
  (uniform random: ``T = 1``; a policy that changes by day: ``T = n_days``; per-round dense: ``T = n``);
* :class:`MixtureDistribution`: a convex combination of the above (epsilon-greedy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from causalrec._arrays import as_index, as_index_below, as_numeric, check_finite
from causalrec._checks import positive_integer
from causalrec.exceptions import ValidationError

_OWNER = "ActionDistribution"
SUM_TOLERANCE = 1e-6


def _fail(field: str, expected: str, found: str, row: int | None = None) -> ValidationError:
    return ValidationError(field, expected, found, row, owner=_OWNER)


class ActionDistribution(ABC):
    """Probabilities of items per round and slot; see the module docstring."""

    n_rounds: int
    n_actions: int
    n_positions: int

    @abstractmethod
    def prob_of(self, action: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Probability of ``(action[i], position[i])`` in round ``i``, shape ``(n_rounds,)``."""

    @abstractmethod
    def support(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rounds, actions, probs)`` with positive probability of each round at slot ``position[i]``."""

    @abstractmethod
    def take(self, rows: np.ndarray) -> ActionDistribution:
        """The distribution of the given rounds, in that order."""

    def to_dense(self, max_cells: int = 50_000_000) -> np.ndarray:
        """Dense ``(n_rounds, n_actions, n_positions)`` array, for small problems and tests only."""
        cells = self.n_rounds * self.n_actions * self.n_positions
        if cells > max_cells:
            raise _fail("to_dense", f"at most {max_cells} cells", f"{cells} cells (use prob_of/support instead)")
        dense = np.zeros((self.n_rounds, self.n_actions, self.n_positions))
        for slot in range(self.n_positions):
            rounds, actions, probs = self.support(np.full(self.n_rounds, slot))
            np.add.at(dense, (rounds, actions, np.full(rounds.shape, slot)), probs)
        return dense

    def _check_shape(self, action: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if action.shape != (self.n_rounds,) or position.shape != (self.n_rounds,):
            raise _fail(
                "action/position",
                f"arrays of length n_rounds = {self.n_rounds} (the distribution's rounds)",
                f"shapes {action.shape} and {position.shape}",
            )
        return as_index_below(action, "action", self.n_actions, owner=_OWNER), self._check_position(position)

    def _check_position(self, position: np.ndarray) -> np.ndarray:
        """One slot per round, each in ``[0, n_positions)``: a slot past the end would be read in the next
        round's cells (and a negative one wrap around) instead of failing."""
        position = np.asarray(position)
        if position.shape != (self.n_rounds,):
            raise _fail("position", f"an array of length n_rounds = {self.n_rounds} (one slot per round)",
                        f"shape {position.shape}")
        return as_index_below(position, "position", self.n_positions, owner=_OWNER)


@dataclass(frozen=True, eq=False)
class TableDistribution(ActionDistribution):
    """Rounds share distribution tables: ``table[table_index[i], a, l] = pi(a | round i, slot l)``."""

    table: np.ndarray
    table_index: np.ndarray
    _copy: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = np.asarray(self.table, dtype=np.float64)
        if table.ndim == 2:
            table = table[:, :, None]
        if table.ndim != 3:
            raise _fail("table", "an array of shape (n_tables, n_actions, n_positions)", f"shape {table.shape}")
        index = np.asarray(self.table_index)
        if index.ndim != 1 or index.dtype.kind not in "iu":
            raise _fail("table_index", "a 1-D integer array", f"shape {index.shape}, dtype {index.dtype}")
        if len(index) and (index.min() < 0 or index.max() >= table.shape[0]):
            row = int(np.flatnonzero((index < 0) | (index >= table.shape[0]))[0])
            raise _fail("table_index", f"in [0, {table.shape[0]})", f"{index[row]}", row)
        _check_probabilities(table, "table")
        table = table.copy() if self._copy else table.view()
        table.flags.writeable = False
        index = index.astype(np.int64)
        index.flags.writeable = False
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "table_index", index)
        object.__setattr__(self, "n_rounds", int(index.shape[0]))
        object.__setattr__(self, "n_actions", int(table.shape[1]))
        object.__setattr__(self, "n_positions", int(table.shape[2]))

    @classmethod
    def constant(cls, probabilities: np.ndarray, n_rounds: int) -> TableDistribution:
        """The same ``(n_actions,)`` or ``(n_actions, n_positions)`` distribution in every round."""
        return cls(np.asarray(probabilities, dtype=np.float64)[None], np.zeros(n_rounds, dtype=np.int64))

    @classmethod
    def from_dense(cls, dense: np.ndarray, copy: bool = True) -> TableDistribution:
        """One table per round from an ``(n, A)`` or ``(n, A, L)`` array (OBP's ``action_dist`` layout).

        ``copy=False`` wraps a read-only view of a float64 array instead of copying it (for arrays of several
        GB): the distribution is then only as immutable as your array, so do not modify it afterwards.
        """
        dense = np.asarray(dense, dtype=np.float64)
        return cls(dense, np.arange(dense.shape[0]), _copy=copy)

    def prob_of(self, action: np.ndarray, position: np.ndarray) -> np.ndarray:
        action, position = self._check_shape(np.asarray(action), np.asarray(position))
        return self.table[self.table_index, action, position]

    def support(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = self._check_position(position)
        # Group rounds by (table, slot): one nonzero pattern per group, repeated over its rounds.
        key = self.table_index * self.n_positions + position
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        ends = np.r_[starts[1:], len(order)]
        rounds, actions, probs = [], [], []
        for start, end in zip(starts, ends, strict=True):
            table_id, slot = divmod(int(sorted_key[start]), self.n_positions)
            column = self.table[table_id, :, slot]
            nonzero = np.flatnonzero(column)
            group = order[start:end]
            rounds.append(np.repeat(group, len(nonzero)))
            actions.append(np.tile(nonzero, len(group)))
            probs.append(np.tile(column[nonzero], len(group)))
        if not rounds:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        return np.concatenate(rounds), np.concatenate(actions), np.concatenate(probs)

    def take(self, rows: np.ndarray) -> TableDistribution:
        # The table is already a read-only array of this distribution: share it rather than copy it.
        return TableDistribution(self.table, self.table_index[np.asarray(rows)], _copy=False)


@dataclass(frozen=True, eq=False)
class SparseDistribution(ActionDistribution):
    """Explicit ``(round, action, position, prob)`` entries; (round, position) pairs without entries are not
    allowed: every round needs a full distribution at every slot."""

    rounds: np.ndarray
    actions: np.ndarray
    positions: np.ndarray
    probs: np.ndarray
    n_rounds: int
    n_actions: int
    n_positions: int = 1

    def __post_init__(self) -> None:
        # Indices must be integer-valued (a round 1.4 or an action 'a' is refused, never truncated); a missing value
        # of a nullable column is refused with its row.
        rounds = as_index(self.rounds, "round", None, owner=_OWNER)
        actions = as_index(self.actions, "action", None, owner=_OWNER)
        positions = as_index(self.positions, "position", None, owner=_OWNER)
        probs = as_numeric(self.probs, "prob", None, owner=_OWNER).astype(np.float64)
        lengths = {len(rounds), len(actions), len(positions), len(probs)}
        if len(lengths) != 1:
            raise _fail("entries", "round/action/position/prob arrays of equal length", f"lengths {sorted(lengths)}")
        for name, values, upper in (
            ("round", rounds, self.n_rounds),
            ("action", actions, self.n_actions),
            ("position", positions, self.n_positions),
        ):
            bad = (values < 0) | (values >= upper)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise _fail(name, f"in [0, {upper})", f"{values[row]}", row)
        bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1 + SUM_TOLERANCE)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise _fail("prob", "a probability in [0, 1]", f"{probs[row]!r}", row)
        cell = rounds * self.n_positions + positions
        totals = np.bincount(cell, weights=probs, minlength=self.n_rounds * self.n_positions)
        off = np.abs(totals - 1) > SUM_TOLERANCE
        if off.any():
            flat = int(np.flatnonzero(off)[0])
            row, slot = divmod(flat, self.n_positions)
            found = f"sum {totals[flat]:.6g} at round {row}, position {slot}"
            if totals[flat] == 0:
                found += " (no entries)"
            empty_slots = np.flatnonzero(np.bincount(positions, minlength=self.n_positions) == 0)
            if empty_slots.size and empty_slots.size < self.n_positions:
                # Usually 1-based positions: the logs' slots run to n_positions - 1 and the target skips slot 0.
                found += (f"; no round has an entry at position {empty_slots[0]} (positions are 0-based: 0 is the "
                          "first slot)")
            raise _fail("prob", "summing to 1 over actions for every (round, position)", found, row)
        # Sort by (round, position, action) so that lookups are binary searches.
        key = (rounds * self.n_positions + positions) * self.n_actions + actions
        order = np.argsort(key, kind="stable")
        for name, values in (("rounds", rounds), ("actions", actions), ("positions", positions), ("probs", probs)):
            values = values[order]
            values.flags.writeable = False
            object.__setattr__(self, name, values)
        object.__setattr__(self, "_keys", key[order])

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, n_rounds: int, n_actions: int, n_positions: int | None = None
    ) -> SparseDistribution:
        """From long format with columns ``round, action, position, prob`` (``position`` optional), one row per
        (round, action, position)."""
        required = ["round", "action", "prob"]
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise _fail("columns", "round, action, [position,] prob", f"missing {missing} in {list(frame.columns)}")
        if "position" not in frame.columns and n_positions is not None and n_positions > 1:
            raise _fail("columns", f"round, action, position, prob (the logs have {n_positions} positions)",
                        f"{list(frame.columns)}")
        rounds = as_index(frame["round"], "round", None, owner=_OWNER)
        actions = as_index(frame["action"], "action", None, owner=_OWNER)
        positions = (as_index(frame["position"], "position", None, owner=_OWNER) if "position" in frame.columns
                     else np.zeros(len(frame), np.int64))
        if n_positions is None:
            n_positions = int(positions.max()) + 1 if len(positions) else 1
        # One row per (round, action, position): a repeated key is almost always a join that went wrong, and
        # summing it would silently change the policy (the constructor adds repeats up, for sampled policies).
        keys = pd.DataFrame({"round": rounds, "action": actions, "position": positions})
        repeated = keys.duplicated(keep="first").to_numpy()
        if repeated.any():
            row = int(np.flatnonzero(repeated)[0])
            raise _fail("round, action, position", "unique: one probability per (round, action, position) (add "
                        "repeated entries up first, e.g. groupby(...).prob.sum(), if that is what they mean)",
                        f"(round {rounds[row]}, action {actions[row]}, position {positions[row]}) repeated", row)
        return cls(
            rounds, actions, positions, frame["prob"].to_numpy(),
            n_rounds=n_rounds, n_actions=n_actions, n_positions=n_positions,
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"round": self.rounds, "action": self.actions, "position": self.positions, "prob": self.probs}
        )

    def prob_of(self, action: np.ndarray, position: np.ndarray) -> np.ndarray:
        action, position = self._check_shape(np.asarray(action), np.asarray(position))
        query = (np.arange(self.n_rounds) * self.n_positions + position) * self.n_actions + action
        keys = self._keys  # type: ignore[attr-defined]
        left = np.searchsorted(keys, query, side="left")
        right = np.searchsorted(keys, query, side="right")
        # Repeated entries for one (round, position, action) add up.
        cumulative = np.r_[0.0, np.cumsum(self.probs)]
        return cumulative[right] - cumulative[left]

    def support(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = self._check_position(position)
        keep = (self.positions == position[self.rounds]) & (self.probs > 0)
        return self.rounds[keep], self.actions[keep], self.probs[keep]

    def take(self, rows: np.ndarray) -> SparseDistribution:
        rows = np.asarray(rows, dtype=np.int64)
        # Entries of round r occupy [start[r], end[r]) because entries are sorted by round.
        starts = np.searchsorted(self.rounds, rows, side="left")
        ends = np.searchsorted(self.rounds, rows, side="right")
        counts = ends - starts
        new_rounds = np.repeat(np.arange(len(rows)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        picked = np.repeat(starts, counts) + offsets
        return SparseDistribution(
            new_rounds, self.actions[picked], self.positions[picked], self.probs[picked],
            n_rounds=len(rows), n_actions=self.n_actions, n_positions=self.n_positions,
        )


@dataclass(frozen=True, eq=False)
class MixtureDistribution(ActionDistribution):
    """``sum_c weight_c * component_c``: e.g. epsilon-greedy = (1 - eps) * greedy + eps * uniform."""

    components: tuple[ActionDistribution, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float64)
        if len(self.components) == 0 or len(weights) != len(self.components):
            raise _fail("weights", "one weight per component (at least one)", f"{len(weights)} weights")
        if (weights < 0).any() or abs(weights.sum() - 1) > SUM_TOLERANCE:
            raise _fail("weights", "non-negative and summing to 1", f"{weights.tolist()}")
        shapes = {(c.n_rounds, c.n_actions, c.n_positions) for c in self.components}
        if len(shapes) != 1:
            raise _fail("components", "the same (n_rounds, n_actions, n_positions)", f"{sorted(shapes)}")
        n_rounds, n_actions, n_positions = shapes.pop()
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "n_rounds", n_rounds)
        object.__setattr__(self, "n_actions", n_actions)
        object.__setattr__(self, "n_positions", n_positions)

    def prob_of(self, action: np.ndarray, position: np.ndarray) -> np.ndarray:
        return sum(w * c.prob_of(action, position) for w, c in zip(self.weights, self.components, strict=True))

    def support(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [c.support(position) for c, w in zip(self.components, self.weights, strict=True) if w > 0]
        weights = [w for w in self.weights if w > 0]
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([w * p[2] for p, w in zip(parts, weights, strict=True)]),
        )

    def take(self, rows: np.ndarray) -> MixtureDistribution:
        return MixtureDistribution(tuple(c.take(rows) for c in self.components), self.weights)


def _check_probabilities(table: np.ndarray, name: str) -> None:
    # Fast path without full-size temporaries (min/max propagate NaN); the slow path only locates an offender.
    # Entries >= 0 with sums of 1 are also <= 1, and NaN/inf propagate into the sums: min + sums suffice.
    low = table.min() if table.size else 0.0
    totals = np.einsum("tal->tl", table)  # the sum over actions; 4x faster than table.sum(axis=1) here
    if not (np.isfinite(low) and low >= 0 and np.isfinite(totals).all()):
        bad = ~np.isfinite(table) | (table < 0) | (table > 1 + SUM_TOLERANCE)
        index = np.argwhere(bad)[0]
        raise _fail(name, "probabilities in [0, 1]", f"{table[tuple(index)]!r} at (table, action, position) {tuple(index)}")
    off = np.abs(totals - 1) > SUM_TOLERANCE
    if off.any():
        table_id, slot = np.argwhere(off)[0]
        raise _fail(
            name,
            "summing to 1 over actions for every (round, position)",
            f"sum {totals[table_id, slot]:.6g} at position {slot}",
            int(table_id),
        )


# ---------------------------------------------------------------------------------------------- policies


def _scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValidationError("scores", "a 2-D array (n_rounds, n_actions)", f"shape {scores.shape}", owner="policy")
    check_finite(scores, "scores", owner="policy")
    return scores


def _ranking(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best items per round, best first; ties go to the lower item index (stable sort)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def uniform_random(n_rounds: int, n_actions: int, n_positions: int = 1) -> TableDistribution:
    """Every item equally likely at every slot."""
    return TableDistribution.constant(np.full((n_actions, n_positions), 1.0 / n_actions), n_rounds)


def greedy_top_k(scores: np.ndarray, n_positions: int = 1) -> SparseDistribution:
    """Deterministic ranking: the item ranked ``l`` by score fills slot ``l`` (ties: lower item index first)."""
    scores = _scores(scores)
    n_rounds, n_actions = scores.shape
    if not 1 <= n_positions <= n_actions:
        raise ValidationError("n_positions", f"in [1, n_actions = {n_actions}]", f"{n_positions}", owner="policy")
    ranked = _ranking(scores, n_positions)
    return SparseDistribution(
        np.repeat(np.arange(n_rounds), n_positions),
        ranked.reshape(-1),
        np.tile(np.arange(n_positions), n_rounds),
        np.ones(n_rounds * n_positions),
        n_rounds=n_rounds,
        n_actions=n_actions,
        n_positions=n_positions,
    )


def softmax(scores: np.ndarray, temperature: float = 1.0, n_positions: int = 1) -> TableDistribution:
    """``pi(a | x) proportional to exp(score / temperature)``, drawn independently at each slot."""
    if not temperature > 0:
        raise ValidationError("temperature", "a positive number", f"{temperature!r}", owner="policy")
    positive_integer("policy", "n_positions", n_positions)
    scores = _scores(scores)
    # Centre before dividing: a tiny temperature then sends the non-maximal scores to -inf (weight 0) instead of
    # overflowing every score to inf (inf - inf = NaN).
    with np.errstate(over="ignore"):
        scores = (scores - scores.max(axis=1, keepdims=True)) / temperature
    weights = np.exp(scores)
    probabilities = weights / weights.sum(axis=1, keepdims=True)
    return TableDistribution.from_dense(np.repeat(probabilities[:, :, None], n_positions, axis=2))


def epsilon_greedy(scores: np.ndarray, epsilon: float, n_positions: int = 1) -> ActionDistribution:
    """With probability ``1 - epsilon`` the greedy ranking, otherwise a uniformly random item at each slot."""
    if not 0 <= epsilon <= 1:
        raise ValidationError("epsilon", "in [0, 1]", f"{epsilon!r}", owner="policy")
    scores = _scores(scores)
    greedy = greedy_top_k(scores, n_positions)
    if epsilon == 0:
        return greedy
    uniform = uniform_random(scores.shape[0], scores.shape[1], n_positions)
    return MixtureDistribution((greedy, uniform), (1 - epsilon, epsilon))


def as_action_distribution(
    target: ActionDistribution | np.ndarray | pd.DataFrame | Sequence,
    n_rounds: int,
    n_actions: int,
    n_positions: int,
) -> ActionDistribution:
    """Accept an ActionDistribution, a dense ``(n, A[, L])`` array or a long DataFrame, and check its shape
    against the logs it will be evaluated on."""
    if isinstance(target, pd.DataFrame):
        target = SparseDistribution.from_frame(target, n_rounds, n_actions, n_positions)
    elif not isinstance(target, ActionDistribution):
        target = TableDistribution.from_dense(np.asarray(target, dtype=np.float64))
    if target.n_rounds != n_rounds:
        raise _fail("target", f"a distribution for each of the {n_rounds} logged rounds", f"{target.n_rounds} rounds")
    if target.n_actions != n_actions:
        raise _fail("target", f"a distribution over the {n_actions} actions of the logs", f"{target.n_actions} actions")
    if target.n_positions < n_positions:
        raise _fail(
            "target", f"a distribution for each of the {n_positions} positions of the logs", f"{target.n_positions}"
        )
    return target
