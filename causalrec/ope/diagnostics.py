"""Evidence for trusting an off-policy estimate, computed from the importance weights and the logs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._results import ResultMixin

# A weight distribution whose effective sample size falls below this share of n is dominated by a few rounds.
MIN_ESS_SHARE = 0.01
MIN_POSITIVE_REWARDS = 10
# The mean-weight check warns at this level, not at the user's alpha: at 5% it would cry wolf on every 20th
# correct evaluation.
MEAN_WEIGHT_WARNING_LEVEL = 0.001


@dataclass(frozen=True)
class RewardModelFit(ResultMixin):
    """How well the cross-fitted reward model predicts the logged rewards it never saw, against a constant.

    ``held_out`` is the mean loss (log loss for a classifier's click probabilities, squared error otherwise) of
    the out-of-fold predictions ``q(x_i, a_i, l_i)``; ``constant`` the same loss of each fold's training mean,
    the model that knows nothing about contexts or actions. ``skill = 1 - held_out / constant``: above 0 the model has learned
    something that generalises; at or below 0 its predictions are noise around the mean, and the direct method
    (and ``auto`` when it shrinks toward it) then rests on that noise.
    """

    model: str
    metric: str
    held_out: float
    constant: float
    skill: float
    n_folds: int
    n_constant_folds: int
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_frame(self) -> pd.DataFrame:
        rows = self._row(exclude=("warnings",))
        return pd.DataFrame({"diagnostic": list(rows), "value": list(rows.values())})


def reward_model_fit(
    reward: np.ndarray, q_logged: np.ndarray, fold_mean: np.ndarray, model: str, n_folds: int,
    n_constant_folds: int, log_loss: bool,
) -> RewardModelFit:
    """Compare the out-of-fold predictions ``q_logged`` with the training folds' means ``fold_mean``: by log loss
    (0/1 rewards predicted as probabilities) or squared error (anything else, e.g. a regressor's predictions)."""
    if log_loss:
        def loss(prediction: np.ndarray) -> float:
            p = np.clip(prediction, 1e-15, 1 - 1e-15)
            return float(-np.mean(reward * np.log(p) + (1 - reward) * np.log1p(-p)))
    else:
        def loss(prediction: np.ndarray) -> float:
            return float(np.mean(np.square(reward - prediction)))
    held_out, constant = loss(q_logged), loss(fold_mean)
    skill = 1 - held_out / constant if constant > 0 else (0.0 if held_out == 0 else -np.inf)
    metric = "log_loss" if log_loss else "squared_error"
    messages = []
    if skill <= 0:
        messages.append(
            f"the reward model ({model}) predicts the held-out rewards no better than a constant ({metric.replace('_', ' ')} "
            f"{held_out:.5g} vs {constant:.5g} for the training folds' mean): DM, and auto when it leans on the "
            "model, rest on noise; prefer the weighting estimators or a simpler reward model"
        )
    return RewardModelFit(model, metric, held_out, constant, float(skill), n_folds, n_constant_folds, tuple(messages))


@dataclass(frozen=True)
class WeightDiagnostics(ResultMixin):
    """Diagnostics of one target policy on one set of logs.

    ``ess`` is Kish's effective sample size ``(sum w)^2 / sum w^2``; ``mean_weight`` should be 1 when the
    pscores are right and the target is a distribution (its interval excluding 1 hints at wrong pscores or a
    target that puts mass where the logs have none); ``unsupported_mass`` is the share of the target's mass on
    (action, slot) pairs that never occur in the logs; ``n_positive_rewards`` counts the outcomes behind the
    estimate and ``effective_positive_rewards`` how many of them effectively carry it (Kish's count over their
    weights; fewer than 10 is a warning). ``reliable`` says whether the weights support an estimate (no weight
    warning).

    ``reward_model_fit`` (when a reward model was cross-fitted) is its held-out fit against a constant; its warning
    joins ``warnings`` but leaves ``reliable`` alone, since the weighting estimators do not use the model.
    """

    n_rounds: int
    ess: float
    ess_share: float
    max_weight: float
    mean_weight: float
    mean_weight_ci: tuple[float, float]
    weight_quantiles: dict[str, float]
    unsupported_mass: float
    n_positive_rewards: int
    reliable: bool
    #: Kish's effective number of the positive rewards behind the estimate, ``(sum w)^2 / sum w^2`` over their weights
    effective_positive_rewards: float = float("nan")
    warnings: tuple[str, ...] = field(default_factory=tuple)
    reward_model_fit: RewardModelFit | None = None

    def with_reward_model(self, fit: RewardModelFit) -> WeightDiagnostics:
        """These diagnostics with the reward model's held-out fit (and its warning) added."""
        return replace(self, reward_model_fit=fit, warnings=(*self.warnings, *fit.warnings))

    def to_frame(self) -> pd.DataFrame:
        rows = {
            "n_rounds": self.n_rounds,
            "ess": self.ess,
            "ess_share": self.ess_share,
            "max_weight": self.max_weight,
            "mean_weight": self.mean_weight,
            "mean_weight_ci_low": self.mean_weight_ci[0],
            "mean_weight_ci_high": self.mean_weight_ci[1],
            **{f"weight_{k}": v for k, v in self.weight_quantiles.items()},
            "unsupported_mass": self.unsupported_mass,
            "n_positive_rewards": self.n_positive_rewards,
            "effective_positive_rewards": self.effective_positive_rewards,
            "reliable": self.reliable,
        }
        if self.reward_model_fit is not None:
            rows.update({f"reward_model_{k}": v for k, v in self.reward_model_fit.to_dict().items()
                         if k in ("held_out", "constant", "skill")})
        return pd.DataFrame({"diagnostic": list(rows), "value": list(rows.values())})

    def summary(self) -> str:
        lines = [super().summary()]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def weight_diagnostics(
    weight: np.ndarray, reward: np.ndarray, unsupported_mass: float, alpha: float = 0.05
) -> WeightDiagnostics:
    n = len(weight)
    total, squares = weight.sum(), np.square(weight).sum()
    ess = float(total**2 / squares) if squares > 0 else 0.0
    mean_weight = float(weight.mean())
    standard_error = weight.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
    half_width = stats.norm.ppf(1 - alpha / 2) * standard_error
    warning_half_width = stats.norm.ppf(1 - MEAN_WEIGHT_WARNING_LEVEL / 2) * standard_error
    quantiles = dict(zip(("q50", "q90", "q99"), np.quantile(weight, [0.5, 0.9, 0.99]).tolist(), strict=True))
    n_positive = int((reward > 0).sum())
    messages = []
    if ess < MIN_ESS_SHARE * n:
        messages.append(
            f"effective sample size is {ess:.1f} of {n} rounds ({ess / n:.2%}): a few rounds carry the estimate"
        )
    if unsupported_mass > 1e-9:
        messages.append(
            f"{unsupported_mass:.1%} of the target policy's mass is on (action, position) pairs absent from the "
            "logs: importance-weighting estimators cannot see them and are biased"
        )
    if abs(mean_weight - 1) > warning_half_width:
        messages.append(
            f"mean importance weight {mean_weight:.3f} differs from 1 beyond sampling error (99.9% level): check the pscores "
            "and that the target is defined for the logged rounds"
        )
    positive_weight = weight[reward > 0]
    weighted_positive = int(np.sum(positive_weight > 0))
    # Kish's count over the positive rewards' weights: an epsilon-greedy target gives every logged click a weight,
    # but its estimate rests on the few clicks its greedy part matched.
    positive_squares = float(np.square(positive_weight).sum())
    effective_positive = float(positive_weight.sum() ** 2 / positive_squares) if positive_squares > 0 else 0.0
    if effective_positive < MIN_POSITIVE_REWARDS:
        spread = ("" if effective_positive > weighted_positive - 0.5
                  else f" (of the {weighted_positive} with non-zero weight; their weights are uneven)")
        messages.append(
            f"only {effective_positive:.1f} positive rewards effectively carry the estimate{spread}: it rests on "
            "very few outcomes"
        )
    return WeightDiagnostics(
        n_rounds=n,
        ess=ess,
        ess_share=ess / n,
        max_weight=float(weight.max()),
        mean_weight=mean_weight,
        mean_weight_ci=(float(mean_weight - half_width), float(mean_weight + half_width)),
        weight_quantiles=quantiles,
        unsupported_mass=float(unsupported_mass),
        n_positive_rewards=n_positive,
        reliable=not messages,
        effective_positive_rewards=effective_positive,
        warnings=tuple(messages),
    )
