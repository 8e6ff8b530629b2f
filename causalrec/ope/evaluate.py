"""``evaluate_policy`` and ``compare_policies``: policy values and paired uplifts from logged feedback, with
intervals and diagnostics.

One evaluation shares its work: importance weights, the cross-fitted reward model's predictions and the bootstrap
resampling weights are computed once and used by every estimator.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._arrays import check_finite
from causalrec._checks import non_negative, open_unit_interval
from causalrec._results import ResultMixin
from causalrec._text import confidence_level, split_names
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.ope.diagnostics import WeightDiagnostics, weight_diagnostics
from causalrec.ope.estimators import (
    ESTIMATORS,
    DoublyRobustWithShrinkage,
    Estimator,
    EstimatorInputs,
    EstimatorOutput,
)
from causalrec.ope.inference import (
    BOOTSTRAP_METHODS,
    ScoreTest,
    interval_quantile,
    percentile_interval,
    resampled_means,
    score_interval,
    variance_degrees_of_freedom,
)
from causalrec.ope.reward_model import CrossFittedRewardModel, fit_reward_model
from causalrec.ope.tuning import AutoEstimator
from causalrec.policy import ActionDistribution, TableDistribution, as_action_distribution

DEFAULT_ESTIMATORS = ("auto", "ips", "snips", "dm", "dr")
LOGGING = "logging"
_OWNER = "evaluate_policy"
TargetLike = ActionDistribution | np.ndarray | pd.DataFrame | Callable[[LoggedFeedback], ActionDistribution]


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
        return pd.DataFrame([self._row()])


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
        return pd.DataFrame([e._row() for e in self.estimates],
                            columns=[f.name for f in dataclasses.fields(PolicyEstimate)])

    def summary(self) -> str:
        header = (
            f"Off-policy evaluation: {self.n_rounds} logged rounds, {confidence_level(self.alpha)} {self.ci} intervals"
            + (", reward model: precomputed predictions" if self.reward_model == "precomputed"
               else f", reward model {self.reward_model} (cross-fitted)" if self.reward_model else "")
            + (f", pscore {self.metadata['pscore_source']}" if self.metadata.get("pscore_source") else "")
        )
        warnings_block = [f"WARNING: {w}" for w in self.diagnostics.warnings]
        with pd.option_context("display.width", 120):
            table = self.to_frame().drop(columns=["note"]).to_string(index=False, float_format=lambda v: f"{v:.6g}")
        notes = [f"{e.estimator}: {e.note}" for e in self.estimates if e.note]
        diag = self.diagnostics
        facts = (
            f"ESS {diag.ess:.1f} ({diag.ess_share:.1%}), max weight {diag.max_weight:.3g}, mean weight "
            f"{diag.mean_weight:.3f} [{diag.mean_weight_ci[0]:.3f}, {diag.mean_weight_ci[1]:.3f}], "
            f"{diag.n_positive_rewards} positive rewards (effectively {diag.effective_positive_rewards:.1f} behind "
            "the estimate)"
        )
        fit = diag.reward_model_fit
        if fit is not None:
            facts += (f"; reward model held-out {fit.metric.replace('_', ' ')} {fit.held_out:.4g} vs {fit.constant:.4g} "
                      f"for a constant (skill {fit.skill:+.3f})")
        return "\n".join([header, *warnings_block, table, facts, *notes])

    def to_dict(self) -> dict:
        payload = super().to_dict()
        payload["diagnostics"]["warnings"] = list(self.diagnostics.warnings)
        return payload


# ------------------------------------------------------------------------------------------- shared inputs


def _resolve_estimators(estimators: Sequence[str | Estimator] | str | Estimator) -> list[Estimator]:
    """Estimator objects from names or instances; one name, one instance or a comma-separated string also work."""
    if isinstance(estimators, str):
        estimators = split_names(estimators)
    elif isinstance(estimators, Estimator):
        estimators = [estimators]
    resolved = []
    for item in estimators:
        if isinstance(item, Estimator):
            resolved.append(item)
        elif isinstance(item, str) and item.lower() == "auto":
            resolved.append(AutoEstimator())
        elif isinstance(item, str) and item.lower() in ESTIMATORS:
            resolved.append(ESTIMATORS[item.lower()]())
        else:
            raise ValidationError(
                "estimators", f"names among {['auto', *sorted(ESTIMATORS)]} or Estimator instances", repr(item),
                owner=_OWNER,
            )
    if not resolved:
        raise ValidationError("estimators", f"at least one of {['auto', *sorted(ESTIMATORS)]}", "an empty list",
                              owner=_OWNER)
    names = [e.name for e in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError("estimators", "distinct names", f"repeated {duplicates}", owner=_OWNER)
    return resolved


def importance_weights(feedback: LoggedFeedback, target: ActionDistribution) -> np.ndarray:
    """``pi_e(a_i, l_i | x_i) / pscore_i`` for every logged round."""
    if feedback.pscore is None:
        raise ValidationError(
            "pscore", "present in the logs to weight them (or estimate it with causalrec.exposure first)", "None",
            owner=_OWNER,
        )
    return target.prob_of(feedback.action, feedback.position) / feedback.pscore


def unsupported_mass(feedback: LoggedFeedback, target: ActionDistribution) -> float:
    """Share of the target's mass, averaged over rounds, on (action, slot) pairs never logged."""
    logged = np.zeros(feedback.n_actions * feedback.n_positions, dtype=bool)
    logged[feedback.action * feedback.n_positions + feedback.position] = True
    if isinstance(target, TableDistribution) and target.table.shape[0] * target.n_positions > feedback.n_rounds // 4:
        # Nearly one table per round (e.g. OBP's dense array): blocks of rounds, one slot at a time.
        outside = ~logged.reshape(feedback.n_actions, feedback.n_positions)
        total = 0.0
        for start in range(0, feedback.n_rounds, 16384):
            stop = min(start + 16384, feedback.n_rounds)
            index, position = target.table_index[start:stop], feedback.position[start:stop]
            for value in np.unique(position):
                rows = index[position == value]
                total += float((target.table[rows, :, value] @ outside[:, value]).sum())
        return total / feedback.n_rounds
    if isinstance(target, TableDistribution):
        # Per (table, slot) group: mass outside the logged pairs, counted once per round of the group.
        # (At most n / 4 groups here, so counting them is cheaper than sorting the rounds.)
        counts = np.bincount(target.table_index * target.n_positions + feedback.position,
                             minlength=target.table.shape[0] * target.n_positions)
        groups = np.flatnonzero(counts)
        counts = counts[groups]
        tables, slots = np.divmod(groups, target.n_positions)
        outside = ~logged.reshape(feedback.n_actions, feedback.n_positions)[:, slots].T
        mass = (target.table[tables, :, slots] * outside).sum(axis=1)
        return float((mass * counts).sum() / feedback.n_rounds)
    rounds, actions, probs = target.support(feedback.position)
    outside = ~logged[actions * feedback.n_positions + feedback.position[rounds]]
    return float(probs[outside].sum() / feedback.n_rounds)


_REWARD_BLOCK_BYTES = 2 << 20


def _check_finite_rewards(q: np.ndarray, first_round: int = 0) -> None:
    """``estimated_rewards`` (a block of its rows from ``first_round`` on) must be finite: one pass without
    temporaries (NaN/inf propagate into the sum); the element-wise check, which names the row, only when the sum is
    not finite (it may also overflow on large finite values)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(q.sum()):
            return
    check_finite(q.reshape(len(q), -1), "estimated_rewards", owner=_OWNER, row_offset=first_round)


def _rewards_from_array(
    feedback: LoggedFeedback, target: ActionDistribution, estimated_rewards: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``q_logged`` and ``q_target`` from precomputed predictions (n, A) or (n, A, L) (OBP's layout)."""
    q = np.asarray(estimated_rewards, dtype=np.float64)
    if q.ndim == 2:
        q = q[:, :, None]
    expected = (feedback.n_rounds, feedback.n_actions)
    if q.ndim != 3 or q.shape[:2] != expected or q.shape[2] not in (1, feedback.n_positions):
        raise ValidationError(
            "estimated_rewards", f"an array of shape {expected} or {(*expected, feedback.n_positions)}",
            f"shape {q.shape}", owner=_OWNER,
        )
    slot = feedback.position if q.shape[2] > 1 else np.zeros(feedback.n_rounds, dtype=np.int64)
    q_target = np.zeros(feedback.n_rounds)
    if not isinstance(target, TableDistribution):
        _check_finite_rewards(q)
        rounds, actions, probs = target.support(feedback.position)
        np.add.at(q_target, rounds, probs * q[rounds, actions, slot[rounds]])
        return q[np.arange(feedback.n_rounds), feedback.action, slot], q_target
    q_logged = np.empty(feedback.n_rounds)
    table, n_positions = target.table, target.n_positions
    # Few shared tables: one contiguous (table, slot) -> actions matrix makes each row's lookup a row gather.
    by_slot = None
    if table.shape[0] * n_positions <= max(feedback.n_rounds // 4, 1):
        by_slot = np.ascontiguousarray(table.transpose(0, 2, 1)).reshape(-1, feedback.n_actions)
    # Blocks of rows small enough to stay in cache: the finiteness check and the lookups below read each block of
    # ``q`` once from memory (bounded memory too).
    block = max(1, _REWARD_BLOCK_BYTES // (q.shape[1] * q.shape[2] * q.itemsize))
    for start in range(0, feedback.n_rounds, block):
        stop = min(start + block, feedback.n_rounds)
        q_block = q[start:stop]
        _check_finite_rewards(q_block, start)
        index, position, q_slot = target.table_index[start:stop], feedback.position[start:stop], slot[start:stop]
        q_logged[start:stop] = q_block[np.arange(stop - start), feedback.action[start:stop], q_slot]
        for value in range(feedback.n_positions):  # one slot at a time: plain strided slices, no index broadcasting
            rows = np.flatnonzero(position == value)
            if not len(rows):
                continue
            if by_slot is not None:
                probabilities = np.take(by_slot, index[rows] * n_positions + value, axis=0)
            else:
                probabilities = table[index[rows], :, value]
            q_rows = q_block[rows, :, q_slot[rows[0]]]  # q's slot is the round's slot, or 0 for (n, A) input
            q_target[start + rows] = np.einsum("ij,ij->i", probabilities, q_rows)
    return q_logged, q_target


@dataclass(frozen=True)
class _Prepared:
    feedback: LoggedFeedback
    target: ActionDistribution
    inputs: EstimatorInputs
    diagnostics: WeightDiagnostics
    reward_model: str | None
    metadata: dict
    groups: np.ndarray | None = None  # cross-fitting fold labels per round, when the caller gave some


def with_estimated_pscore(feedback: LoggedFeedback, pscore_model="auto", random_state=None):
    """Logs that lack ``pscore`` get one estimated by :mod:`causalrec.exposure`; the estimate says how."""
    from causalrec.exposure import estimate_logging_propensities

    estimate = estimate_logging_propensities(feedback, method=pscore_model, random_state=random_state)
    warnings.warn(
        f"the logs carry no pscore: it was estimated ({estimate.method}); the estimates below rest on that "
        "exposure model", CausalrecWarning, stacklevel=4,
    )
    return estimate.feedback, {"pscore_source": f"estimated: {estimate.method}",
                               "pscore_diagnostics": estimate.diagnostics}


def _recorded_pscore_source(feedback: LoggedFeedback) -> dict:
    """The source of a pscore the logs carry when it was estimated before (e.g. by ``causalrec exposure
    --write-logs``), so that results do not pass it as logged; empty for a logged pscore."""
    source = feedback.metadata.get("pscore_source")
    return {"pscore_source": str(source)} if source else {}


def _fold_groups(feedback: LoggedFeedback, fold_groups) -> np.ndarray | None:
    """The cross-fitting group label of every round: an array as given, or ``"user_id"`` for the logs' users."""
    if fold_groups is None:
        return None
    if isinstance(fold_groups, str):
        if fold_groups != "user_id":
            raise ValidationError("fold_groups", "an array with one label per round, or 'user_id'", repr(fold_groups),
                                  owner=_OWNER)
        if feedback.user_id is None:
            raise ValidationError("fold_groups", "'user_id' only for logs that carry user ids",
                                  "logs without user_id", owner=_OWNER)
        return feedback.user_id
    groups = np.asarray(fold_groups)
    if groups.shape != (feedback.n_rounds,):
        raise ValidationError("fold_groups", f"one label per round, shape ({feedback.n_rounds},)",
                              f"shape {groups.shape}", owner=_OWNER)
    return groups


def _prepare(
    feedback, target, needs_rewards, reward_model, estimated_rewards, n_folds, random_state, alpha, warn=True,
    pscore_model="auto", fold_groups=None, fitted: CrossFittedRewardModel | None = None,
) -> _Prepared:
    """Weights, diagnostics and (when needed) reward predictions of one target; ``fitted`` is a reward model
    already cross-fitted on these logs (shared by the targets of a comparison)."""
    if not isinstance(feedback, LoggedFeedback):
        raise ValidationError("feedback", "a LoggedFeedback", type(feedback).__name__, owner=_OWNER)
    metadata: dict = {}
    if feedback.pscore is None:
        if pscore_model is None:
            raise ValidationError(
                "pscore", "present in the logs, or pscore_model= to estimate it (causalrec.exposure)", "None",
                owner=_OWNER,
            )
        feedback, metadata = with_estimated_pscore(feedback, pscore_model, random_state)
    else:
        metadata.update(_recorded_pscore_source(feedback))
    if callable(target) and not isinstance(target, ActionDistribution):
        target = target(feedback)
    target = as_action_distribution(target, feedback.n_rounds, feedback.n_actions, feedback.n_positions)
    weight = importance_weights(feedback, target)
    diagnostics = weight_diagnostics(weight, feedback.reward, unsupported_mass(feedback, target), alpha)
    if warn:
        for message in diagnostics.warnings:
            warnings.warn(message, CausalrecWarning, stacklevel=3)
    groups = _fold_groups(feedback, fold_groups)
    q_logged = q_target = None
    model_name = None
    if needs_rewards:
        if estimated_rewards is not None:
            q_logged, q_target = _rewards_from_array(feedback, target, estimated_rewards)
            model_name = "precomputed"
        else:
            shared = fitted is not None
            if not shared:
                fitted = fit_reward_model(feedback, reward_model, n_folds, random_state, groups=groups)
            predictions = fitted.predictions(target)
            q_logged, q_target, model_name = predictions.q_logged, predictions.q_target, predictions.model
            metadata["constant_reward_folds"] = predictions.n_constant_folds
            diagnostics = diagnostics.with_reward_model(fitted.held_out_fit)
            if warn and not shared:  # the caller of a shared model warns once for all targets
                for message in fitted.held_out_fit.warnings:
                    warnings.warn(message, CausalrecWarning, stacklevel=3)
            if groups is not None:
                metadata["fold_groups"] = int(len(np.unique(groups)))
    inputs = EstimatorInputs(feedback.reward, weight, q_logged, q_target)
    return _Prepared(feedback, target, inputs, diagnostics, model_name, metadata, groups)


# ------------------------------------------------------------------------------------------- estimates


def _reward_decomposition(estimator: Estimator, inputs: EstimatorInputs) -> tuple[np.ndarray, np.ndarray] | None:
    """``(intercept, slope)`` with ``influence = intercept + slope * reward`` (means held fixed), for every
    estimator with an interval on rewards in [0, 1] except ``auto`` (whose interval adds the distance to plain
    DR); None otherwise.

    The doubly robust family's terms are affine in the reward too, with the cross-fitted reward model's
    predictions held fixed (DR: intercept ``qbar - w qhat``, slope ``w``); its callers join that score interval
    with the Wald one (``wald_too``, see :class:`causalrec.ope.inference.ScoreTest`), since the predictions do
    vary across rows. Its Student-t Wald interval alone missed from above: on the selection simulator
    (``benchmarks/selection_simulator.py``, 3 worlds of 200 logs of 10,000 rounds) the Bonferroni intervals of
    the DR uplifts covered every true uplift in 90.5-94% of the logs with a LightGBM reward model and 91-97.5%
    with a logistic one (nominal 95%; each miss a low estimate with a low variance); the union in 99-100% and
    99-100%, with as many winners declared (99.5-100% where one exists) and no false winner where all values are
    equal. One greedy policy's value (``benchmarks/ope_coverage.py``): 94.0% -> 95.7%."""
    if isinstance(estimator, AutoEstimator) or not estimator.has_interval:
        return None
    reward = inputs.reward
    if reward.size == 0 or reward.min() < 0 or reward.max() > 1:
        return None
    zero = estimator.statistics(replace(inputs, reward=np.zeros_like(reward)))
    change = estimator.statistics(replace(inputs, reward=np.ones_like(reward))) - zero
    # Affine in the reward: the observed statistics are zero + reward * change (no third pass over the rows).
    means = zero.mean(axis=0) + reward @ change / len(reward)
    with np.errstate(divide="ignore", invalid="ignore"):  # undefined (all weights zero): None below
        gradient = estimator.gradient(means)
        value = float(estimator.combine(means))
        intercept = value + (zero - means) @ gradient
        slope = change @ gradient
    if not (np.isfinite(intercept).all() and np.isfinite(slope).all()):
        return None
    return intercept, slope


_SCORE_NOTE = ("score interval (test inversion): not symmetric; it reaches towards the rewards that unseen, heavily "
               "weighted rounds could add, and stays within [0, 1]")
_SCORE_WALD_NOTE = _SCORE_NOTE.replace("(test inversion):", "(test inversion) joined with the Wald interval:")


def _within(low: float, high: float, smallest: float, largest: float) -> tuple[float, float]:
    """An interval intersected with the range its quantity can take; left as it is when they do not meet (an
    estimate far outside the range, e.g. IPS above 1 from one heavy click, is shown with its own interval)."""
    if high < smallest or low > largest:
        return low, high
    return max(low, smallest), min(high, largest)


def _point_and_analytic(
    estimator: Estimator, inputs: EstimatorInputs, alpha: float, dm_bias_bound: float | None, score: bool = True,
    decomposition=None,
):
    """``decomposition``: the caller's :func:`_reward_decomposition` of these inputs, when it already has one."""
    output = estimator.estimate(inputs)
    note = output.note
    if output.influence is None:
        return output.value, float("nan"), float("nan"), float("nan"), note, None
    se = float(output.influence.std(ddof=1) / np.sqrt(len(output.influence)))
    if decomposition is None and score:
        decomposition = _reward_decomposition(estimator, inputs)
    if decomposition is not None:
        low, high = score_interval(output.value, output.influence, *decomposition, alpha / 2,
                                   wald_too=estimator.needs_reward_model)
        # Rewards in [0, 1] (the score interval's condition): the policy value is in [0, 1] too.
        low, high = _within(low, high, 0.0, 1.0)
        kind = _SCORE_WALD_NOTE if estimator.needs_reward_model else _SCORE_NOTE
        return output.value, se, low, high, "; ".join(filter(None, (note, kind))), output
    z = interval_quantile(output.influence, alpha)
    if not estimator.has_interval:
        if dm_bias_bound is None:
            return output.value, float("nan"), float("nan"), float("nan"), note, output
        note = (
            f"interval = sampling interval widened by the user's bias bound +-{dm_bias_bound:g} on the reward model"
        )
        half = z * se + dm_bias_bound
        return output.value, se, output.value - half, output.value + half, note, output
    return output.value, se, output.value - z * se, output.value + z * se, note, output


def evaluate_policy(
    feedback: LoggedFeedback,
    target: TargetLike,
    estimators: Sequence[str | Estimator] | str = DEFAULT_ESTIMATORS,
    reward_model=None,
    estimated_rewards: np.ndarray | None = None,
    ci: str = "analytic",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    bootstrap_method: str = "poisson",
    refit_reward_model: bool = False,
    dm_bias_bound: float | None = None,
    pscore_model="auto",
    n_folds: int = 3,
    random_state: int | None = None,
    n_jobs: int | None = None,
    fold_groups=None,
) -> EvaluationResult:
    """Estimate the value of ``target`` from ``feedback``.

    Parameters
    ----------
    target
        An :class:`~causalrec.policy.ActionDistribution` over the logged rounds, a dense ``(n, A[, L])`` array, a
        long DataFrame (``round, action, position, prob``), or a callable ``feedback -> ActionDistribution``.
    estimators
        Names (``auto, ips, snips, dm, dr, sndr, switch-dr, dr-os``) or :class:`Estimator` instances; one name
        or a comma-separated string (``"ips,dr"``) also works.
        ``auto`` tunes the DR-with-shrinkage threshold without ground truth (SLOPE) and reports its choice; it
        leans towards the reward model, which helps on sparse clicks and heavy weights and can cost accuracy
        against plain ``dr`` where the logs are rich (see :class:`~causalrec.ope.tuning.AutoEstimator`).
    reward_model, estimated_rewards
        A scikit-learn estimator cross-fitted over ``n_folds`` (LightGBM by default), or precomputed predictions
        ``q(x_i, a, l)`` of shape ``(n, A)`` / ``(n, A, L)``.
    ci
        ``"analytic"`` (delta-method Wald intervals, the default) or ``"bootstrap"`` (percentile intervals from
        ``n_bootstrap`` resamples shared by all estimators; ``refit_reward_model`` refits the reward model in
        every resample, which is slow but accounts for its variance).
    dm_bias_bound
        DM gets an interval only when you bound its reward model's bias: the interval is then widened by it.
    pscore_model
        Used only when the logs carry no ``pscore``: how :func:`causalrec.exposure.estimate_logging_propensities`
        estimates it (``"auto"``, ``"features"``, ``"scores"`` or a classifier); ``None`` refuses such logs. The
        result's metadata records the estimated source and a warning says so.
    fold_groups
        Rounds that must share a cross-fitting fold of the reward model: one label per round, or ``"user_id"``
        for the logs' users (no user is then scored by a model trained on their other rounds). The refit
        bootstrap always keeps the copies of a resampled round in one fold.
    n_jobs
        Threads for the bootstrap (default: the CPU count, at most 8); the result does not depend on it.
    """
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    if dm_bias_bound is not None:
        dm_bias_bound = non_negative(_OWNER, "dm_bias_bound", dm_bias_bound)
    if refit_reward_model and (ci != "bootstrap" or estimated_rewards is not None):
        raise ValidationError(
            "refit_reward_model", "used with ci='bootstrap' and a reward model to refit (not with precomputed "
            "estimated_rewards, which no resample can refit)",
            f"ci={ci!r}" + (", estimated_rewards given" if estimated_rewards is not None else ""), owner=_OWNER,
        )
    if ci not in ("analytic", "bootstrap"):
        raise ValidationError("ci", "'analytic' or 'bootstrap'", repr(ci), owner=_OWNER)
    if bootstrap_method not in BOOTSTRAP_METHODS:
        raise ValidationError("bootstrap_method", f"one of {BOOTSTRAP_METHODS}", repr(bootstrap_method), owner=_OWNER)
    if ci == "bootstrap" and n_bootstrap < 50:
        raise ValidationError("n_bootstrap", "at least 50 for a percentile interval", repr(n_bootstrap), owner=_OWNER)
    chosen = _resolve_estimators(estimators)
    needs_rewards = any(e.needs_reward_model for e in chosen)
    prepared = _prepare(
        feedback, target, needs_rewards, reward_model, estimated_rewards, n_folds, random_state, alpha,
        pscore_model=pscore_model, fold_groups=fold_groups,
    )
    rows = []
    for estimator in chosen:
        # With ci="bootstrap" the analytic limits are replaced below: skip the score interval's extra passes.
        value, se, low, high, note, _ = _point_and_analytic(estimator, prepared.inputs, alpha, dm_bias_bound,
                                                            score=ci == "analytic")
        rows.append([estimator.name, value, se, low, high, note])
    if ci == "bootstrap":
        replicates = _bootstrap(chosen, prepared, n_bootstrap, bootstrap_method, refit_reward_model, reward_model,
                                n_folds, random_state, n_jobs)
        low, high = percentile_interval(replicates, alpha)
        for index, (estimator, row) in enumerate(zip(chosen, rows, strict=True)):
            if estimator.has_interval or dm_bias_bound is not None:
                bound = 0.0 if estimator.has_interval else dm_bias_bound
                row[2] = float(np.nanstd(replicates[:, index], ddof=1))
                row[3], row[4] = float(low[index]) - bound, float(high[index]) + bound
    metadata = dict(prepared.metadata)
    if ci == "bootstrap":
        metadata.update(n_bootstrap=n_bootstrap, bootstrap_method=bootstrap_method, refit_reward_model=refit_reward_model)
    return EvaluationResult(
        estimates=tuple(PolicyEstimate(*row) for row in rows),
        diagnostics=prepared.diagnostics,
        n_rounds=prepared.feedback.n_rounds,
        alpha=alpha,
        ci=ci,
        reward_model=prepared.reward_model,
        metadata=metadata,
    )


def _bootstrap(chosen, prepared, n_bootstrap, method, refit, reward_model, n_folds, random_state, n_jobs=None):
    """(B, n_estimators) replicate values, one shared set of resampling weights for all estimators."""
    rng = np.random.default_rng(random_state)
    if refit:
        # Each replicate refits the cross-fitted reward model on its own resample: a loop over fits, by nature.
        # The copies of a drawn round share a fold (its label, or the caller's group of it): row-wise folds
        # would train on one copy and score another.
        feedback, target, groups = prepared.feedback, prepared.target, prepared.groups
        replicates = np.full((n_bootstrap, len(chosen)), np.nan)
        for b in range(n_bootstrap):
            rows = rng.integers(0, feedback.n_rounds, feedback.n_rounds)
            resampled = _prepare(feedback.take(rows), target.take(rows), True, reward_model, None, n_folds,
                                 int(rng.integers(2**31)), 0.05, warn=False,
                                 fold_groups=rows if groups is None else groups[rows])
            for index, estimator in enumerate(chosen):
                replicates[b, index] = estimator.estimate(resampled.inputs).value
        return replicates
    blocks = [e.statistics(prepared.inputs) for e in chosen]
    widths = [block.shape[1] for block in blocks]
    means = resampled_means(blocks, n_bootstrap, rng, method, n_jobs=n_jobs)
    replicates = np.empty((n_bootstrap, len(chosen)))
    offsets = np.cumsum([0, *widths])
    with np.errstate(divide="ignore", invalid="ignore"):
        for index, estimator in enumerate(chosen):
            replicates[:, index] = estimator.combine(means[:, offsets[index] : offsets[index + 1]])
    return replicates


# ------------------------------------------------------------------------------------------- paired uplift


@dataclass(frozen=True)
class PolicyComparison(ResultMixin):
    """Values of several candidate policies and their paired differences against a baseline on the same logs.

    ``differences`` holds, per candidate, the estimated uplift ``V(candidate) - V(baseline)`` with its standard
    error and interval; the interval is ``1 - alpha`` per comparison, or simultaneous over all candidates with
    ``adjust="bonferroni"``. ``lower_bound`` is the one-sided bound at the same level, and ``p_value`` tests a
    zero difference with the test the interval inverts; ``df`` is the Student-t reference of the Wald interval (the
    score interval takes its degrees of freedom at each tested value). ``interval`` says which: ``"score"`` for the
    weighting estimators (IPS, clipped IPS, SNIPS) on rewards in [0, 1], a test-inversion interval that tests each
    value with the variance the difference would have there (:func:`causalrec.ope.inference.score_interval`; with
    heavy importance weights it stretches towards the rewards a few unseen heavy rows could add);
    ``"score+wald"`` for the doubly robust family on rewards in [0, 1], the union of that interval (with the reward
    model's predictions held fixed) and the Wald one; and ``"wald"`` (Student-t) for ``auto`` and
    for rewards outside [0, 1]. ``se`` and ``z`` are the Wald ones in every case.
    """

    baseline: str
    estimator: str
    values: pd.DataFrame
    differences: pd.DataFrame
    diagnostics: dict[str, WeightDiagnostics]
    alpha: float
    adjust: str
    n_rounds: int
    pscore_source: str = "logged"

    def to_frame(self) -> pd.DataFrame:
        return self.differences

    def summary(self) -> str:
        lines = [
            f"Paired comparison against {self.baseline!r} on {self.n_rounds} rounds, estimator {self.estimator}, "
            f"{confidence_level(self.alpha)} intervals ({self.adjust} adjustment), pscore {self.pscore_source}",
            self.values.to_string(index=False, float_format=lambda v: f"{v:.6g}"),
            "",
            self.differences.to_string(index=False, float_format=lambda v: f"{v:.6g}"),
        ]
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)

    @property
    def warnings(self) -> tuple[str, ...]:
        """The shared reward model's warning once, then each candidate's own warnings under its name."""
        shared = dict.fromkeys(w for d in self.diagnostics.values() if d.reward_model_fit is not None
                               for w in d.reward_model_fit.warnings)
        named = [f"{name}: {w}" for name, d in self.diagnostics.items() for w in d.warnings if w not in shared]
        return (*shared, *named)

    def _reliable(self, policy: str) -> bool:
        """Whether the uplift of ``policy`` rests on reliable estimates: its own and a target baseline's."""
        baseline = self.diagnostics.get(self.baseline)
        return bool(self.diagnostics[policy].reliable) and (baseline is None or bool(baseline.reliable))

    def to_dict(self) -> dict:
        from causalrec._results import to_jsonable

        return {
            "baseline": self.baseline,
            "estimator": self.estimator,
            "alpha": self.alpha,
            "adjust": self.adjust,
            "n_rounds": self.n_rounds,
            "pscore_source": self.pscore_source,
            "estimates": to_jsonable(self.values),
            # With each candidate's reliability flag (and the baseline's, when it is a target) and its ESS, which
            # the planning layer reads.
            "comparisons": to_jsonable(self.differences.assign(
                reliable=[self._reliable(p) for p in self.differences["policy"]],
                ess=[float(self.diagnostics[p].ess) for p in self.differences["policy"]])),
            "diagnostics": {k: v.to_dict() for k, v in self.diagnostics.items()},
            "warnings": list(self.warnings),
        }


def compare_policies(
    feedback: LoggedFeedback,
    targets: Mapping[str, TargetLike],
    baseline: str,
    estimator: str | Estimator = "auto",
    reward_model=None,
    estimated_rewards: Mapping[str, np.ndarray] | None = None,
    alpha: float = 0.05,
    adjust: str = "none",
    pscore_model="auto",
    n_folds: int = 3,
    random_state: int | None = None,
    fold_groups=None,
) -> PolicyComparison:
    """Estimate every policy in ``targets`` and its uplift over ``targets[baseline]`` on the same logs.

    The difference of two estimates on the same rounds is paired: its influence terms are the difference of the
    two policies' influence terms, so the common noise of the logs cancels and the interval is much narrower than
    one built from two separate intervals. With ``estimator="auto"`` one shrinkage threshold is tuned (SLOPE) on
    each difference itself.

    ``baseline="logging"`` (when no target has that name) compares with the policy that produced the logs: its
    value is the mean logged reward, exactly unbiased on-policy, with per-round terms ``r_i``.
    ``fold_groups`` keeps rounds with equal labels in one cross-fitting fold, as in :func:`evaluate_policy`.
    """
    alpha = open_unit_interval("compare_policies", "alpha", alpha)
    if not isinstance(targets, Mapping) or not targets:
        raise ValidationError("targets", "a non-empty mapping of policy name -> target",
                              f"{type(targets).__name__}"[:100], owner="compare_policies")
    if baseline not in targets and baseline != LOGGING:
        raise ValidationError(
            "baseline", f"one of the target names {sorted(targets)} or {LOGGING!r}", repr(baseline), owner="compare_policies"
        )
    if adjust not in ("none", "bonferroni"):
        raise ValidationError("adjust", "'none' or 'bonferroni'", repr(adjust), owner="compare_policies")
    if not isinstance(estimator, str | Estimator) or (isinstance(estimator, str) and "," in estimator):
        raise ValidationError("estimator", "one estimator name or instance (the paired differences use one)",
                              repr(estimator), owner="compare_policies")
    (template,) = _resolve_estimators([estimator])
    source: dict = {}
    if isinstance(feedback, LoggedFeedback) and feedback.pscore is None and pscore_model is not None:
        feedback, source = with_estimated_pscore(feedback, pscore_model, random_state)  # once for all targets
    elif isinstance(feedback, LoggedFeedback):
        source = _recorded_pscore_source(feedback)
    prepared, fitted = {}, None
    for name, target in targets.items():
        rewards = None if estimated_rewards is None else estimated_rewards.get(name)
        if template.needs_reward_model and rewards is None and fitted is None and isinstance(feedback, LoggedFeedback):
            # One cross-fit for every candidate: the same fold models score all of them.
            fitted = fit_reward_model(feedback, reward_model, n_folds, random_state,
                                      groups=_fold_groups(feedback, fold_groups))
            for message in fitted.held_out_fit.warnings:
                warnings.warn(message, CausalrecWarning, stacklevel=2)
        prepared[name] = _prepare(feedback, target, template.needs_reward_model, reward_model, rewards, n_folds,
                                  random_state, alpha, pscore_model=None, fold_groups=fold_groups, fitted=fitted)
    # Bonferroni over the comparisons made: every target against the logging policy, or all but the baseline.
    n_candidates = len(targets) if baseline not in targets else max(len(targets) - 1, 1)
    level = alpha / n_candidates if adjust == "bonferroni" else alpha
    values, differences = [], []
    on_policy = baseline not in prepared
    base_inputs = None if on_policy else prepared[baseline].inputs
    if on_policy:
        reward = feedback.reward
        se_logging = float(reward.std(ddof=1) / np.sqrt(len(reward)))
        z_single = interval_quantile(reward, alpha)
        values.append({"policy": LOGGING, "estimator": "on-policy mean", "value": float(reward.mean()),
                       "se": se_logging, "ci_low": float(reward.mean() - z_single * se_logging),
                       "ci_high": float(reward.mean() + z_single * se_logging), "ess": float(len(reward)),
                       "reliable": True})
    # Each policy's terms split into intercept + slope * reward once: its value's score interval and its paired
    # differences use the same split.
    splits = {name: _reward_decomposition(template, item.inputs) for name, item in prepared.items()}
    base_split = (0.0, 1.0) if on_policy else splits[baseline]  # the logging policy's terms are the rewards
    for name, item in prepared.items():
        value, se, low, high, note, _ = _point_and_analytic(template, item.inputs, alpha, None,
                                                            score=splits[name] is not None,
                                                            decomposition=splits[name])
        values.append({"policy": name, "estimator": template.name, "value": value, "se": se, "ci_low": low,
                       "ci_high": high, "ess": item.diagnostics.ess, "reliable": item.diagnostics.reliable})
        if name == baseline:
            continue
        difference, influence, chosen_note = _paired_difference(template, item.inputs, base_inputs,
                                                                (name, baseline))
        n = len(influence)
        se_difference = float(influence.std(ddof=1) / np.sqrt(n))
        degrees = variance_degrees_of_freedom(influence)
        decomposition = None if splits[name] is None or base_split is None else (
            splits[name][0] - base_split[0], splits[name][1] - base_split[1])
        if decomposition is None:
            z = float(stats.t.ppf(1 - level / 2, degrees))
            z_one_sided = float(stats.t.ppf(1 - level, degrees))
            low, high = difference - z * se_difference, difference + z * se_difference
            lower_bound = difference - z_one_sided * se_difference
            p_value = float(2 * stats.t.sf(abs(difference) / se_difference, degrees)) if se_difference > 0 else np.nan
            interval = "wald"
        else:
            test = ScoreTest(difference, influence, *decomposition, wald_too=template.needs_reward_model)
            # Rewards in [0, 1]: a difference of two policy values is in [-1, 1].
            low, high = _within(*test.interval(level / 2), -1.0, 1.0)
            lower_bound = _within(test.lower_bound(level), high, -1.0, 1.0)[0]
            p_value = test.p_value(0.0)
            interval = "score+wald" if template.needs_reward_model else "score"
        differences.append({
            "policy": name, "baseline": baseline, "estimator": template.name, "difference": difference,
            "se": se_difference, "ci_low": low, "ci_high": high, "lower_bound": lower_bound,
            "z": difference / se_difference if se_difference > 0 else np.nan,
            "p_value": p_value,
            "df": degrees,
            "interval": interval,
            "note": chosen_note,
        })
    return PolicyComparison(
        baseline=baseline, estimator=template.name, values=pd.DataFrame(values), differences=pd.DataFrame(differences),
        diagnostics={name: item.diagnostics for name, item in prepared.items()}, alpha=alpha, adjust=adjust,
        n_rounds=feedback.n_rounds, pscore_source=source.get("pscore_source", "logged"),
    )


def _paired_difference(template: Estimator, candidate: EstimatorInputs, baseline: EstimatorInputs | None,
                       names: tuple[str, str] = ("candidate", "baseline")):
    """Value and influence terms of ``V(candidate) - V(baseline)`` with one estimator; ``baseline=None`` is the
    logging policy, whose per-round terms are the logged rewards. ``names`` name the two in errors."""
    if isinstance(template, AutoEstimator):
        return template.tune_difference(candidate, baseline)
    first = template.estimate(candidate)
    second = (EstimatorOutput(float(candidate.reward.mean()), candidate.reward) if baseline is None
              else template.estimate(baseline))
    for name, output in zip(names, (first, second), strict=True):
        if output.influence is None:
            # Self-normalised estimators are undefined when every importance weight is zero.
            raise ValidationError(f"targets[{name!r}]", f"a policy whose {template.name} estimate is defined on these "
                                  "logs (it needs weight on some logged actions)", output.note or "undefined",
                                  owner="compare_policies")
    return first.value - second.value, first.influence - second.influence, ""


__all__ = [
    "DEFAULT_ESTIMATORS", "DoublyRobustWithShrinkage", "EvaluationResult", "PolicyComparison", "PolicyEstimate",
    "compare_policies", "evaluate_policy", "importance_weights", "unsupported_mass",
]
