"""A recommender world with exact ground truth, for tests and benchmarks of every causal layer.

The world (``make_world``) is a finite population of users and items with features. For user ``u`` and item
``a``:

* organic outcome probability (item *not* shown): ``p0(u, a) = sigmoid(base_logit + relevance(u, a))``;
* outcome probability when shown in the top slot: ``p1(u, a) = sigmoid(base_logit + relevance + lift(u, a))``,
  where ``lift`` is heterogeneous and partly negative (some exposures annoy or cannibalise);
* shown in slot ``l``, the user examines the slot with probability ``examination[l] = (1 + l) ** -position_bias``,
  so ``mu(u, a, l) = p0 + examination[l] * (p1 - p0)``, and the logged reward is ``Bernoulli(mu)``.

The logging policy ranks by a *noisy* copy of the relevance (the old ranker's scores), so exposure is confounded
by relevance: items it shows more often also convert more often organically. Each logged round draws a user and a
slot uniformly and an item from the logging policy at that slot; the exact logging probability is the pscore.

Ground truth returned by the world: ``policy_value`` of any action distribution (exact, no sampling), the effect
of exposure ``true_effect[u, a] = p1 - p0`` (slot 0) and per slot, and, for effect estimation,
``sample_exposure`` draws (user, item) pairs with a confounded exposure decision and both potential outcomes'
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from causalrec._arrays import as_index_below, as_numeric, check_finite
from causalrec._checks import positive_integer
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import ValidationError
from causalrec.policy import SUM_TOLERANCE, ActionDistribution, TableDistribution

_OWNER = "simulate"


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    return random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)


@dataclass(frozen=True, eq=False)
class SimulatedWorld:
    """A finite recommender population with exact outcome probabilities. Build it with :func:`make_world`."""

    user_features: np.ndarray
    item_features: np.ndarray
    relevance: np.ndarray
    organic_prob: np.ndarray
    exposed_prob: np.ndarray
    examination: np.ndarray
    logging_scores: np.ndarray
    logging_prob: np.ndarray
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("user_features", "item_features", "relevance", "organic_prob", "exposed_prob",
                     "examination", "logging_scores", "logging_prob"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            array.flags.writeable = False
            object.__setattr__(self, name, array)

    @property
    def n_users(self) -> int:
        return self.user_features.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_features.shape[0]

    @property
    def n_positions(self) -> int:
        return self.examination.shape[0]

    @property
    def true_effect(self) -> np.ndarray:
        """Effect of showing item ``a`` to user ``u`` in the top slot on the outcome: ``p1 - p0``, shape (U, A)."""
        return self.exposed_prob - self.organic_prob

    def expected_reward(self) -> np.ndarray:
        """``mu[u, a, l]``: probability of a positive reward when ``a`` is shown to ``u`` in slot ``l``."""
        return self.organic_prob[:, :, None] + self.examination[None, None, :] * self.true_effect[:, :, None]

    def logging_policy(self) -> TableDistribution:
        """The logging policy over the population (one round per user), the same at every slot."""
        table = np.repeat(self.logging_prob[:, :, None], self.n_positions, axis=2)
        return TableDistribution.from_dense(table)

    # ----------------------------------------------------------------------------------- ground truth
    def policy_value(
        self,
        target: ActionDistribution,
        users: np.ndarray | None = None,
        positions: np.ndarray | None = None,
    ) -> float:
        """Exact expected reward per logged impression under ``target``.

        With ``users`` omitted, ``target`` has one round per user of the population and the value averages
        over users and slots uniformly, which is what an unbiased estimator on :meth:`sample_logs` targets.
        With ``users`` (and ``positions``) given, ``target`` has one round per logged row and the value is the
        mean over those rows of the expected reward at their user and slot (the conditional truth).
        """
        # A target over other items or slots would be read at the wrong cells (a 1-slot table read at slot 1
        # returns the next round's distribution), so the shapes must match the world's.
        if not isinstance(target, ActionDistribution):
            raise ValidationError("target", "an ActionDistribution (causalrec.policy)", type(target).__name__,
                                  owner=_OWNER)
        if target.n_actions != self.n_items:
            raise ValidationError("target", f"a distribution over the world's {self.n_items} items",
                                  f"{target.n_actions} actions", owner=_OWNER)
        mu = self.expected_reward()
        if users is None:
            if target.n_rounds != self.n_users:
                raise ValidationError("target", f"{self.n_users} rounds (one per user)", f"{target.n_rounds}", owner=_OWNER)
            if target.n_positions != self.n_positions:
                raise ValidationError("target", f"a distribution over the world's {self.n_positions} slots",
                                      f"{target.n_positions} slots", owner=_OWNER)
            total = 0.0
            for slot in range(self.n_positions):
                rounds, actions, probs = target.support(np.full(target.n_rounds, slot))
                total += float(np.sum(probs * mu[rounds, actions, slot]))
            return total / (self.n_users * self.n_positions)
        users = as_index_below(users, "users", self.n_users, owner=_OWNER,
                               expected=f"a user index of the world, in [0, {self.n_users})")
        if positions is None:
            positions = np.zeros_like(users)
        else:
            n_slots = min(self.n_positions, target.n_positions)
            positions = as_index_below(positions, "positions", n_slots, owner=_OWNER, n_rows=len(users),
                                       expected=f"a slot of the world and of the target, in [0, {n_slots})")
        if target.n_rounds != len(users):
            raise ValidationError("target", f"{len(users)} rounds (one per row)", f"{target.n_rounds}", owner=_OWNER)
        rounds, actions, probs = target.support(positions)
        return float(np.sum(probs * mu[users[rounds], actions, positions[rounds]]) / len(users))

    # ----------------------------------------------------------------------------------- sampling
    def sample_logs(
        self,
        n_rounds: int,
        random_state: int | np.random.Generator | None = None,
        logging_prob: np.ndarray | None = None,
    ) -> LoggedFeedback:
        """Draw ``n_rounds`` logged impressions under the logging policy (or ``logging_prob`` of shape (U, A))."""
        n_rounds = positive_integer(_OWNER, "n_rounds", n_rounds)
        probabilities = self.logging_prob if logging_prob is None else self._check_logging_prob(logging_prob)
        rng = _rng(random_state)
        users = rng.integers(0, self.n_users, n_rounds)
        positions = rng.integers(0, self.n_positions, n_rounds)
        # Inverse-CDF sampling of one item per round from its user's distribution, vectorised.
        cumulative = np.cumsum(probabilities, axis=1)
        draws = rng.random(n_rounds) * cumulative[users, -1]
        actions = (cumulative[users] < draws[:, None]).sum(axis=1)
        actions = np.minimum(actions, self.n_items - 1)
        mu = self.organic_prob[users, actions] + self.examination[positions] * self.true_effect[users, actions]
        rewards = (rng.random(n_rounds) < mu).astype(np.float64)
        return LoggedFeedback(
            action=actions,
            reward=rewards,
            n_actions=self.n_items,
            position=positions,
            pscore=probabilities[users, actions],
            context=self.user_features[users],
            context_names=tuple(f"user_feature_{j}" for j in range(self.user_features.shape[1])),
            action_context=self.item_features,
            n_positions=self.n_positions,
            user_id=users,
            metadata={"source": "causalrec.simulate", "logging": "softmax of noisy relevance"},
        )

    def _check_logging_prob(self, logging_prob: np.ndarray) -> np.ndarray:
        # The logged pscore is read from this table while items are drawn from its rows normalised: a row that
        # does not sum to 1 would log propensities that differ from the probabilities actually sampled with.
        table = as_numeric(logging_prob, "logging_prob", None, ndim=2, owner=_OWNER).astype(np.float64)
        if table.shape != (self.n_users, self.n_items):
            raise ValidationError("logging_prob", f"an array of shape (n_users, n_items) = ({self.n_users}, "
                                  f"{self.n_items})", f"shape {table.shape}", owner=_OWNER)
        check_finite(table, "logging_prob", owner=_OWNER)
        if (table < 0).any():
            row = int(np.flatnonzero((table < 0).any(axis=1))[0])
            raise ValidationError("logging_prob", "non-negative probabilities", f"{table[row].min()!r}", row,
                                  owner=_OWNER)
        totals = table.sum(axis=1)
        off = np.abs(totals - 1.0) > SUM_TOLERANCE
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise ValidationError("logging_prob", "rows summing to 1 (one distribution over items per user)",
                                  f"a row sum of {totals[row]:.6g}", row, owner=_OWNER)
        return table

    def sample_exposure(self, n_rows: int, random_state: int | np.random.Generator | None = None) -> pd.DataFrame:
        """(user, item) pairs with a confounded exposure decision, the outcome, and the true effect.

        Exposure ``T ~ Bernoulli(e)`` with ``e = sigmoid(exposure_intercept + exposure_slope * logging score)``
        (the old ranker shows what it scores high); the outcome is ``Bernoulli(p0 + T * (p1 - p0))``. Columns:
        ``user, item, score, treatment, outcome, propensity, true_effect, p0, p1`` and the user (``x_*``) and
        item (``z_*``) features.
        """
        n_rows = positive_integer(_OWNER, "n_rows", n_rows)
        rng = _rng(random_state)
        users = rng.integers(0, self.n_users, n_rows)
        items = rng.integers(0, self.n_items, n_rows)
        score = self.logging_scores[users, items]
        propensity = expit(self.config["exposure_intercept"] + self.config["exposure_slope"] * score)
        treatment = (rng.random(n_rows) < propensity).astype(np.int64)
        p0 = self.organic_prob[users, items]
        effect = self.true_effect[users, items]
        outcome = (rng.random(n_rows) < p0 + treatment * effect).astype(np.int64)
        frame = pd.DataFrame(
            {
                "user": users,
                "item": items,
                "score": score,
                "treatment": treatment,
                "outcome": outcome,
                "propensity": propensity,
                "true_effect": effect,
                "p0": p0,
                "p1": p0 + effect,
            }
        )
        user_part = pd.DataFrame(self.user_features[users], columns=[f"x_{j}" for j in range(self.user_features.shape[1])])
        item_part = pd.DataFrame(self.item_features[items], columns=[f"z_{j}" for j in range(self.item_features.shape[1])])
        return pd.concat([frame, user_part, item_part], axis=1)


def make_world(
    n_users: int = 1000,
    n_items: int = 50,
    n_positions: int = 3,
    n_user_features: int = 5,
    n_item_features: int = 4,
    base_rate: float = 0.02,
    relevance_scale: float = 0.7,
    popularity_scale: float = 0.5,
    effect_mean: float = 0.6,
    effect_scale: float = 0.6,
    effect_relevance_slope: float = -0.4,
    position_bias: float = 1.0,
    logging_noise: float = 1.0,
    logging_temperature: float = 1.0,
    logging_epsilon: float = 0.1,
    exposure_intercept: float = -1.0,
    exposure_slope: float = 1.0,
    user_activity_scale: float = 0.0,
    random_state: int | np.random.Generator | None = None,
) -> SimulatedWorld:
    """Build a :class:`SimulatedWorld`; deterministic for a given ``random_state``.

    ``user_activity_scale`` adds a per-user offset to every logit (some users convert more than others whatever
    they are shown): it moves accuracy metrics computed across users without changing which item is best for a
    user. ``effect_relevance_slope < 0`` makes the lift of exposure shrink with relevance (people buy what they like
    anyway), so ranking by predicted outcome is a poor way to rank by effect. ``logging_epsilon`` mixes the
    logging softmax with a uniform choice, so every item has support. ``position_bias`` is the exponent of the
    examination curve ``(1 + l) ** -position_bias``.
    """
    config = {k: v for k, v in locals().items() if k != "random_state"}
    for name in ("n_users", "n_items", "n_positions", "n_user_features", "n_item_features"):
        positive_integer(_OWNER, name, config[name])
    for name, value in config.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise ValidationError(name, "a finite number", repr(value), owner=_OWNER)
    checks = {
        "n_items": n_items >= 2, "n_positions": n_positions <= n_items,
        "base_rate": 0 < base_rate < 1, "logging_temperature": logging_temperature > 0,
        "logging_epsilon": 0 <= logging_epsilon <= 1, "position_bias": position_bias >= 0,
        "user_activity_scale": user_activity_scale >= 0, "logging_noise": logging_noise >= 0,
        "popularity_scale": popularity_scale >= 0,
    }
    for name, valid in checks.items():
        if not valid:
            raise ValidationError(name, "a valid value (see make_world's docstring)", repr(config[name]), owner=_OWNER)
    rng = _rng(random_state)
    users = rng.normal(size=(n_users, n_user_features))
    items = rng.normal(size=(n_items, n_item_features))
    scale = np.sqrt(n_user_features * n_item_features)
    interaction = rng.normal(size=(n_user_features, n_item_features))
    effect_interaction = rng.normal(size=(n_user_features, n_item_features))
    popularity = rng.normal(scale=popularity_scale, size=n_items)
    activity = rng.normal(scale=user_activity_scale, size=(n_users, 1)) if user_activity_scale > 0 else 0.0

    relevance = relevance_scale * (users @ interaction @ items.T) / np.sqrt(scale) + popularity[None, :]
    lift = (
        effect_mean
        + effect_scale * (users @ effect_interaction @ items.T) / np.sqrt(scale)
        + effect_relevance_slope * relevance
    )
    base_logit = logit(base_rate) + activity
    organic = expit(base_logit + relevance)
    exposed = expit(base_logit + relevance + lift)
    examination = (1.0 + np.arange(n_positions)) ** -position_bias

    top_slot_prob = organic + examination[0] * (exposed - organic)
    logging_scores = logit(top_slot_prob) + rng.normal(scale=logging_noise, size=top_slot_prob.shape)
    shifted = (logging_scores - logging_scores.max(axis=1, keepdims=True)) / logging_temperature
    softmax = np.exp(shifted)
    softmax /= softmax.sum(axis=1, keepdims=True)
    logging_prob = (1 - logging_epsilon) * softmax + logging_epsilon / n_items
    return SimulatedWorld(
        user_features=users,
        item_features=items,
        relevance=relevance,
        organic_prob=organic,
        exposed_prob=exposed,
        examination=examination,
        logging_scores=logging_scores,
        logging_prob=logging_prob,
        config=config,
    )

