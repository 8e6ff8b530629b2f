"""``evaluate_policy``: the value of a target policy from logged feedback, with intervals and diagnostics."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._results import ResultMixin
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.ope.diagnostics import WeightDiagnostics, weight_diagnostics
from causalrec.ope.estimators import ESTIMATORS, Estimator, EstimatorInputs
from causalrec.ope.reward_model import cross_fit_rewards
from causalrec.policy import ActionDistribution, as_action_distribution

DEFAULT_ESTIMATORS = ("ips", "snips", "dm", "dr")


@dataclass(frozen=True)
class PolicyEstimate(ResultMixin):
    """One estimator's value with its standard error and ``1 - alpha`` interval (NaN when it has none)."""

    estimator: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    note: str = ""

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])


@dataclass(frozen=True)
class EvaluationResult(ResultMixin):
    """Estimates of one target policy's value, the diagnostics behind them and how they were made."""

    estimates: tuple[PolicyEstimate, ...]
    diagnostics: WeightDiagnostics
    n_rounds: int
    alpha: float
    ci: str
    reward_model: str | None = None
    metadata: dict = field(default_factory=dict)

    def __getitem__(self, estimator: str) -> PolicyEstimate:
        for estimate in self.estimates:
            if estimate.estimator == estimator:
                return estimate
        raise KeyError(f"no estimate named {estimator!r}; have {[e.estimator for e in self.estimates]}")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([e.to_dict() for e in self.estimates])

    def summary(self) -> str:
        header = (
            f"Off-policy evaluation: {self.n_rounds} logged rounds, {1 - self.alpha:.0%} {self.ci} intervals"
            + (f", reward model {self.reward_model} (cross-fitted)" if self.reward_model else "")
        )
        warnings_block = [f"WARNING: {w}" for w in self.diagnostics.warnings]
        with pd.option_context("display.width", 120):
            table = self.to_frame().drop(columns=["note"]).to_string(index=False, float_format=lambda v: f"{v:.6g}")
        notes = [f"{e.estimator}: {e.note}" for e in self.estimates if e.note]
        diag = self.diagnostics
        facts = (
            f"ESS {diag.ess:.1f} ({diag.ess_share:.1%}), max weight {diag.max_weight:.3g}, mean weight "
            f"{diag.mean_weight:.3f} [{diag.mean_weight_ci[0]:.3f}, {diag.mean_weight_ci[1]:.3f}], "
            f"{diag.n_positive_rewards} positive rewards"
        )
        return "\n".join([header, *warnings_block, table, facts, *notes])

    def to_dict(self) -> dict:
        payload = super().to_dict()
        # The JSON contract of the CLI: diagnostics carry ess, max_weight, mean_weight and warnings at top level.
        payload["diagnostics"]["warnings"] = list(self.diagnostics.warnings)
        return payload


def _resolve_estimators(estimators: Sequence[str | Estimator]) -> list[Estimator]:
    resolved = []
    for item in estimators:
        if isinstance(item, Estimator):
            resolved.append(item)
        elif isinstance(item, str) and item.lower() in ESTIMATORS:
            resolved.append(ESTIMATORS[item.lower()]())
        else:
            raise ValidationError(
                "estimators", f"names among {sorted(ESTIMATORS)} or Estimator instances", repr(item), owner="evaluate_policy"
            )
    return resolved


def importance_weights(feedback: LoggedFeedback, target: ActionDistribution) -> np.ndarray:
    """``pi_e(a_i, l_i | x_i) / pscore_i`` for every logged round."""
    if feedback.pscore is None:
        raise ValidationError(
            "pscore",
            "present in the logs to weight them (or estimate it with causalrec.exposure first)",
            "None",
            owner="evaluate_policy",
        )
    return target.prob_of(feedback.action, feedback.position) / feedback.pscore


def unsupported_mass(feedback: LoggedFeedback, target: ActionDistribution) -> float:
    """Share of the target's mass, averaged over rounds, on (action, slot) pairs never logged."""
    logged = np.zeros(feedback.n_actions * feedback.n_positions, dtype=bool)
    logged[feedback.action * feedback.n_positions + feedback.position] = True
    rounds, actions, probs = target.support(feedback.position)
    outside = ~logged[actions * feedback.n_positions + feedback.position[rounds]]
    return float(probs[outside].sum() / feedback.n_rounds)


def evaluate_policy(
    feedback: LoggedFeedback,
    target: ActionDistribution | np.ndarray | pd.DataFrame,
    estimators: Sequence[str | Estimator] = DEFAULT_ESTIMATORS,
    reward_model=None,
    ci: str = "analytic",
    alpha: float = 0.05,
    n_folds: int = 3,
    random_state: int | None = None,
) -> EvaluationResult:
    """Estimate the value of ``target`` from ``feedback``.

    ``target`` is an :class:`~causalrec.policy.ActionDistribution` over the logged rounds (or a dense array /
    long DataFrame that converts to one). ``reward_model`` is any scikit-learn estimator (LightGBM by default),
    cross-fitted over ``n_folds``. Diagnostics are computed first and their warnings are raised, as
    :class:`~causalrec.exceptions.CausalrecWarning`, before the estimates are returned.
    """
    if not isinstance(feedback, LoggedFeedback):
        raise ValidationError("feedback", "a LoggedFeedback", type(feedback).__name__, owner="evaluate_policy")
    if not 0 < alpha < 1:
        raise ValidationError("alpha", "in (0, 1)", repr(alpha), owner="evaluate_policy")
    if ci != "analytic":
        raise ValidationError("ci", "'analytic'", repr(ci), owner="evaluate_policy")
    target = as_action_distribution(target, feedback.n_rounds, feedback.n_actions, feedback.n_positions)
    chosen = _resolve_estimators(estimators)

    weight = importance_weights(feedback, target)
    diagnostics = weight_diagnostics(weight, feedback.reward, unsupported_mass(feedback, target), alpha)
    for message in diagnostics.warnings:
        warnings.warn(message, CausalrecWarning, stacklevel=2)

    predictions = None
    if any(e.needs_reward_model for e in chosen):
        predictions = cross_fit_rewards(feedback, target, reward_model, n_folds, random_state)
    inputs = EstimatorInputs(
        reward=feedback.reward,
        weight=weight,
        q_logged=None if predictions is None else predictions.q_logged,
        q_target=None if predictions is None else predictions.q_target,
    )
    z = stats.norm.ppf(1 - alpha / 2)
    estimates = []
    for estimator in chosen:
        output = estimator.estimate(inputs)
        if output.influence is None:
            se = low = high = float("nan")
        else:
            se = float(output.influence.std(ddof=1) / np.sqrt(len(output.influence)))
            low, high = output.value - z * se, output.value + z * se
        estimates.append(PolicyEstimate(estimator.name, output.value, se, low, high, output.note))
    return EvaluationResult(
        estimates=tuple(estimates),
        diagnostics=diagnostics,
        n_rounds=feedback.n_rounds,
        alpha=alpha,
        ci=ci,
        reward_model=None if predictions is None else predictions.model,
        metadata={} if predictions is None else {"constant_reward_folds": predictions.n_constant_folds},
    )
