"""Logging propensities when the logs lack them: ``estimate_logging_propensities``.

The pscore of a logged round is ``pi_0(a_i | x_i, l_i)``, the logging policy's probability of the logged action at
the logged slot. When it was not recorded, it is estimated from what the logs and the old system still offer:

* ``"scores"``: the old ranker's scores ``s(x, a)`` for every candidate. The logging policy is modelled as a
  calibrated function of score, rank and slot: a conditional logit over the round's candidates (McFadden 1974),
  mixed with uniform exploration,

  ``pi_0(a | x, l) = (1 - eps_l) softmax_a(beta_l s(x, a) + gamma_{l, rank(a | x)}) + eps_l / C(x)``

  with a slope ``beta_l`` (an inverse temperature), one effect ``gamma_{l, r}`` per leading rank ``r <
  rank_buckets`` (a ranker that puts its top item at slot 0 is a large ``gamma_{0, 0}``), the exploration share
  ``eps_l`` and ``C(x)`` candidates (scores of ``-inf`` mark non-candidates). Parameters are per slot and fit by
  maximum likelihood of the logged actions. A softmax or epsilon-greedy logger is inside this family.
* ``"features"`` (or any scikit-learn classifier): a multiclass model of the logged action given the context and
  the slot, ``P(a | x, l)``, with ``n_actions`` classes (default: multinomial logistic regression on standardised
  features; LightGBM's ``LGBMClassifier`` or any classifier with ``predict_proba`` can be passed instead).
* ``"marginal"``: the action frequencies per slot, for logs without context (a context-free logger).

Every method is *cross-fitted*: the rounds are split into ``n_folds`` folds and each round's probabilities come
from a model fit on the other folds, so a round's propensity is never predicted by a model that saw it
(overfit in-sample propensities are too confident on the logged action, which shrinks importance weights).
``"auto"`` picks ``scores`` when scores are given, else ``features`` when the logs have context columns and the
features model's held-out log loss of the logged actions is below that of the per-slot frequencies (a context-free
logger such as uniform exploration is described by the frequencies; a classifier would only add noise to the
weights), else ``marginal``; ``parameters`` records that choice.

The estimate carries its diagnostics (:mod:`causalrec.exposure.diagnostics`): held-out log loss against the
marginal frequencies, calibration of all (round, candidate) probabilities, the balance check
``mean((1 / C_i) / pscore_i) = 1``, clipping and the effective sample size the weights imply. The input logs are
never modified: ``.feedback`` is a copy with the estimated pscore (``LoggedFeedback.with_pscore``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import clone

from causalrec._checks import finite_number
from causalrec._results import ResultMixin, to_jsonable
from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.exposure import diagnostics as diag
from causalrec.policy import ActionDistribution

logger = logging.getLogger(__name__)
_OWNER = "estimate_logging_propensities"
METHODS = ("auto", "scores", "features", "marginal")
# Estimated probabilities are raised to at least this value so that every pscore is a valid probability in (0, 1].
PROPENSITY_FLOOR = 1e-9
MARGINAL_SMOOTHING = 0.5


@dataclass(frozen=True, eq=False, repr=False)
class PropensityEstimate(ResultMixin):
    """Estimated logging propensities and the evidence for trusting them.

    Attributes
    ----------
    pscore : array (n_rounds,)
        Estimated probability of each logged (action, slot) under the logging policy, in (0, 1], after clipping.
    method : str
        What was used (``"scores (conditional logit)"``, ``"features (LogisticRegression)"``, ...).
    feedback : LoggedFeedback
        A copy of the input logs carrying ``pscore`` (``metadata["pscore_source"]`` says where it came from).
    diagnostics : dict
        Calibration, balance, clipping and effective-sample-size facts (:mod:`causalrec.exposure.diagnostics`).
    action_probabilities : array (n_rounds, n_actions)
        Cross-fitted probability of every action in every round at its logged slot (before clipping).
    parameters : dict
        Fitted parameters of the ``scores`` model on all rounds (slope, rank effects, exploration per slot);
        for ``method="auto"`` without scores, the held-out log loss of the features model and of the per-slot
        frequencies, and which one it chose.
    warnings : tuple of str
        Plain-language problems found by the diagnostics (also emitted as :class:`CausalrecWarning`).
    """

    pscore: np.ndarray
    method: str
    feedback: LoggedFeedback
    diagnostics: dict
    action_probabilities: np.ndarray | None = None
    parameters: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def n_rounds(self) -> int:
        return int(self.pscore.shape[0])

    def __repr__(self) -> str:
        return f"PropensityEstimate(method={self.method!r}, n_rounds={self.n_rounds}, warnings={len(self.warnings)})"

    def importance_weights(self, target: ActionDistribution) -> np.ndarray:
        """``pi_e(a_i | x_i, l_i) / pscore_i`` for a target over the logged rounds."""
        return target.prob_of(self.feedback.action, self.feedback.position) / self.pscore

    def effective_sample_size(self, target: ActionDistribution) -> float:
        """Kish's effective sample size of the importance weights of ``target`` under these propensities."""
        return diag.kish_effective_sample_size(self.importance_weights(target))

    def to_frame(self) -> pd.DataFrame:
        rows = {k: v for k, v in self.diagnostics.items() if not isinstance(v, list | dict | tuple)}
        for key, value in self.diagnostics.items():
            if isinstance(value, tuple) and len(value) == 2:
                rows[f"{key}_low"], rows[f"{key}_high"] = value
        return pd.DataFrame({"diagnostic": list(rows), "value": [to_jsonable(v) for v in rows.values()]})

    def to_dict(self) -> dict:
        quantiles = np.quantile(self.pscore, [0.0, 0.01, 0.5, 0.99, 1.0])
        return {
            "method": self.method,
            "n_rounds": self.n_rounds,
            "pscore_quantiles": dict(zip(("min", "q01", "median", "q99", "max"), quantiles.tolist(), strict=True)),
            "diagnostics": to_jsonable(self.diagnostics),
            "parameters": to_jsonable(self.parameters),
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        header = f"Estimated logging propensities: {self.method}, {self.n_rounds} rounds"
        return "\n".join([header, *[f"WARNING: {w}" for w in self.warnings], diag.diagnostics_text(self.to_frame())])


# --------------------------------------------------------------------------------------------- scores model
class ScorePropensityModel:
    """Conditional logit of the logged action on the old ranker's scores and ranks, with uniform exploration,
    one parameter set per slot (formula in the module docstring). scikit-learn style: ``fit`` returns self.

    Parameters
    ----------
    rank_buckets : int
        Ranks ``0 .. rank_buckets - 1`` get their own effect ``gamma``; lower ranks share the reference level.
    exploration : bool
        Fit the uniform-exploration share ``eps`` (else ``eps = 0``).
    l2 : float
        Ridge penalty on the rank effects (keeps them finite when a rank is never logged at a slot).
    """

    def __init__(self, rank_buckets: int = 3, exploration: bool = True, l2: float = 1e-4):
        self.rank_buckets = rank_buckets
        self.exploration = exploration
        self.l2 = l2

    @staticmethod
    def _prepare(scores: np.ndarray, rank_buckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Masked scores (0 for non-candidates), additive mask (-inf for non-candidates), the items at the
        leading ``rank_buckets`` ranks of each row, and the number of candidates per row."""
        candidate = np.isfinite(scores)
        masked = np.where(candidate, scores, 0.0)
        mask = np.where(candidate, 0.0, -np.inf)
        n_top = min(rank_buckets, scores.shape[1])
        # Ties are broken by item index (stable sort), as the policies of causalrec.policy do.
        top = np.argsort(-np.where(candidate, scores, -np.inf), axis=1, kind="stable")[:, :n_top]
        n_candidates = candidate.sum(axis=1)
        # A rank beyond the row's candidates points at a non-candidate: its effect must not apply.
        top = np.where(np.arange(n_top)[None, :] < n_candidates[:, None], top, -1)
        return masked, mask, top, n_candidates

    def fit(self, scores: np.ndarray, action: np.ndarray, position: np.ndarray, n_positions: int,
            scale: float | None = None, start: dict | None = None) -> ScorePropensityModel:
        """Maximum-likelihood fit per slot; ``start`` (another fit's :meth:`parameters`) warm-starts it."""
        scores = np.asarray(scores, dtype=np.float64)
        finite = scores[np.isfinite(scores)]
        self.scale_ = float(scale) if scale is not None else float(finite.std() if finite.std() > 0 else 1.0)
        masked, mask, top, n_candidates = self._prepare(scores / self.scale_, self.rank_buckets)
        self.n_positions_ = int(n_positions)
        self.slope_ = np.zeros(n_positions)
        self.rank_effect_ = np.zeros((n_positions, self.rank_buckets))
        self.exploration_ = np.zeros(n_positions)
        self.converged_ = np.ones(n_positions, dtype=bool)
        for slot in range(n_positions):
            rows = np.flatnonzero(position == slot)
            if len(rows) == 0:
                continue  # a slot with no logged round keeps the uniform policy (slope 0, no rank effect)
            initial = None
            if start is not None:
                eps = min(max(start["exploration"][slot], 1e-6), 1 - 1e-6)
                initial = np.r_[start["slope_per_score_unit"][slot] * self.scale_, start["rank_effects"][slot],
                                np.log(eps / (1 - eps))]
            theta, converged = self._fit_slot(masked[rows], mask[rows], top[rows], n_candidates[rows], action[rows],
                                              initial)
            self.slope_[slot] = theta[0]
            self.rank_effect_[slot] = theta[1 : 1 + self.rank_buckets]
            self.exploration_[slot] = expit(theta[-1]) if self.exploration else 0.0
            self.converged_[slot] = converged
        return self

    def _utility(self, slope, effects, masked, mask, top) -> np.ndarray:
        utility = slope * masked + mask
        rows = np.arange(masked.shape[0])
        for b in range(top.shape[1]):
            valid = top[:, b] >= 0
            utility[rows[valid], top[valid, b]] += effects[..., b] if np.ndim(effects) == 1 else effects[valid, b]
        return utility

    def _fit_slot(self, masked, mask, top, n_candidates, action, initial):
        rows = np.arange(len(action))
        logged_score = masked[rows, action]
        n_top = top.shape[1]
        logged_is_top = top == action[:, None]  # (n, n_top)
        n_params = 2 + self.rank_buckets

        def loss_and_gradient(theta):
            beta, gamma, eta = theta[0], theta[1 : 1 + self.rank_buckets], theta[-1]
            eps = expit(eta) if self.exploration else 0.0
            utility = self._utility(beta, gamma[:n_top], masked, mask, top)
            utility -= utility.max(axis=1, keepdims=True)
            prob = np.exp(utility)
            prob /= prob.sum(axis=1, keepdims=True)
            prob_logged = prob[rows, action]
            mixture = np.maximum((1 - eps) * prob_logged + eps / n_candidates, 1e-300)
            loss = -np.mean(np.log(mixture)) + self.l2 * np.sum(gamma**2)
            share = (1 - eps) * prob_logged / mixture
            gradient = np.zeros(n_params)
            expected_score = np.einsum("ij,ij->i", prob, masked)
            gradient[0] = -np.mean(share * (logged_score - expected_score))
            for b in range(n_top):
                valid = top[:, b] >= 0
                expected = np.where(valid, prob[rows, np.maximum(top[:, b], 0)], 0.0)
                gradient[1 + b] = -np.mean(share * (logged_is_top[:, b] - expected))
            gradient[1 : 1 + self.rank_buckets] += 2 * self.l2 * gamma
            if self.exploration:
                gradient[-1] = -np.mean((1.0 / n_candidates - prob_logged) / mixture) * eps * (1 - eps)
            return loss, gradient

        starts = [initial] if initial is not None else [
            np.r_[1.0, np.zeros(self.rank_buckets), np.log(0.05 / 0.95)],
            np.r_[0.1, np.zeros(self.rank_buckets), 0.0],
        ]
        best = None
        for start in starts:
            result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B",
                              options={"maxiter": 500, "gtol": 1e-7})
            if best is None or result.fun < best.fun:
                best = result
        return best.x, bool(best.success)

    def predict_proba(self, scores: np.ndarray, position: np.ndarray) -> np.ndarray:
        """``pi_0(a | x_i, l_i)`` for every action of every row, shape ``(n, n_actions)``."""
        masked, mask, top, n_candidates = self._prepare(np.asarray(scores, dtype=np.float64) / self.scale_,
                                                        self.rank_buckets)
        position = np.asarray(position)
        effects = self.rank_effect_[position][:, : top.shape[1]]
        utility = self._utility(self.slope_[position][:, None], effects, masked, mask, top)
        utility -= utility.max(axis=1, keepdims=True)
        prob = np.exp(utility)
        prob /= prob.sum(axis=1, keepdims=True)
        eps = self.exploration_[position][:, None]
        return np.where(np.isfinite(mask), (1 - eps) * prob + eps / n_candidates[:, None], 0.0)

    def parameters(self) -> dict:
        """Slope per slot in the scores' own units, rank effects and exploration shares."""
        return {
            "slope_per_score_unit": (self.slope_ / self.scale_).tolist(),
            "rank_effects": self.rank_effect_.tolist(),
            "exploration": self.exploration_.tolist(),
            "converged": self.converged_.tolist(),
        }


# --------------------------------------------------------------------------------------------- helpers
def _check_scores(scores, score_index, feedback: LoggedFeedback) -> np.ndarray:
    table = np.asarray(scores, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != feedback.n_actions:
        raise ValidationError("scores", f"a 2-D array with one column per action ({feedback.n_actions})",
                              f"shape {table.shape}", owner=_OWNER)
    if np.isnan(table).any() or np.isposinf(table).any():
        row = int(np.flatnonzero(np.isnan(table).any(axis=1) | np.isposinf(table).any(axis=1))[0])
        raise ValidationError("scores", "finite, or -inf for a non-candidate", "NaN or +inf", row, owner=_OWNER)
    if score_index is None:
        if table.shape[0] != feedback.n_rounds:
            raise ValidationError("scores", f"one row per logged round ({feedback.n_rounds}) or a score_index",
                                  f"{table.shape[0]} rows", owner=_OWNER)
        per_round = table
    else:
        index = np.asarray(score_index)
        if index.shape != (feedback.n_rounds,) or index.dtype.kind not in "iu":
            raise ValidationError("score_index", f"an integer array of length n_rounds = {feedback.n_rounds}",
                                  f"shape {index.shape}, dtype {index.dtype}", owner=_OWNER)
        bad = (index < 0) | (index >= table.shape[0])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValidationError("score_index", f"row numbers of scores in [0, {table.shape[0]})", f"{index[row]}",
                                  row, owner=_OWNER)
        per_round = table[index]
    logged = per_round[np.arange(feedback.n_rounds), feedback.action]
    if not np.isfinite(logged).all():
        row = int(np.flatnonzero(~np.isfinite(logged))[0])
        raise ValidationError("scores", "finite for the logged action (a logged action must be a candidate)",
                              "-inf", row, owner=_OWNER)
    return per_round


def _folds(n_rounds: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    if not isinstance(n_folds, int | np.integer) or not 2 <= n_folds <= n_rounds:
        raise ValidationError("n_folds", f"an integer in [2, n_rounds = {n_rounds}]", repr(n_folds), owner=_OWNER)
    return rng.permutation(n_rounds) % n_folds


def _feature_matrix(feedback: LoggedFeedback, position_features: bool) -> np.ndarray:
    parts = [feedback.context]
    if position_features and feedback.n_positions > 1:
        parts.append(np.eye(feedback.n_positions)[feedback.position])
    return np.hstack(parts)


def _default_classifier(random_state):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=random_state))


def _classifier_name(classifier) -> str:
    steps = getattr(classifier, "steps", None)
    final = steps[-1][1] if steps else classifier
    return type(final).__name__


def _cross_fit_classifier(classifier, features, feedback: LoggedFeedback, folds: np.ndarray) -> np.ndarray:
    probabilities = np.zeros((feedback.n_rounds, feedback.n_actions))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        labels = feedback.action[train]
        if len(np.unique(labels)) < 2:
            # One logged action in the training folds: a classifier cannot be fit; that action is certain there.
            probabilities[np.ix_(test, [labels[0]])] = 1.0
            continue
        model = clone(classifier).fit(features[train], labels)
        classes = np.asarray(model.classes_).astype(np.int64)
        probabilities[np.ix_(test, classes)] = model.predict_proba(features[test])
    return probabilities


def _cross_fit_marginal(feedback: LoggedFeedback, folds: np.ndarray) -> np.ndarray:
    counts = np.zeros((folds.max() + 1, feedback.n_positions, feedback.n_actions))
    np.add.at(counts, (folds, feedback.position, feedback.action), 1.0)
    out_of_fold = counts.sum(axis=0)[None] - counts
    smoothed = out_of_fold + MARGINAL_SMOOTHING
    smoothed /= smoothed.sum(axis=2, keepdims=True)
    return smoothed[folds, feedback.position]


def _features_or_marginal(feedback: LoggedFeedback, folds: np.ndarray, probabilities: np.ndarray,
                          label: str) -> tuple[np.ndarray, str, dict]:
    """``auto`` without scores: the features model, unless its held-out log loss of the logged actions is not below
    the per-slot action frequencies' (both cross-fitted on the same folds). A context-free logger, e.g. uniform
    exploration, is then described by the frequencies: the classifier would only add noise to the weights."""
    rows = np.arange(feedback.n_rounds)
    marginal = _cross_fit_marginal(feedback, folds)
    losses = {name: float(-np.mean(np.log(np.maximum(p[rows, feedback.action], PROPENSITY_FLOOR))))
              for name, p in (("features", probabilities), ("marginal", marginal))}
    choice = {"auto_candidates_held_out_log_loss": losses}
    if losses["features"] < losses["marginal"]:
        choice["auto_chose"] = "features"
        return probabilities, label, choice
    choice["auto_chose"] = "marginal"
    label = (f"marginal (action frequencies per slot; auto: the held-out log loss of {label}, "
             f"{losses['features']:.5g}, is not below theirs, {losses['marginal']:.5g})")
    return marginal, label, choice


def _frequency_inflation(feedback: LoggedFeedback, folds: np.ndarray, pscore: np.ndarray,
                         n_candidates: np.ndarray) -> float:
    """Upward bias of the balance statistic ``mean_i (1 / C_i) / p_i`` when ``p_i`` are out-of-fold action
    frequencies: ``E[1 / p_hat] ~ (1 / p) (1 + (1 - p) / (m p))`` for a frequency counted over ``m`` rounds (delta
    method), so under a correct context-free description the statistic is ``1 + mean_i w_i (1 - p_i) / (m_i p_i)``,
    ``m_i`` the rounds at round i's slot outside its fold (a uniform logger over 80 items, 10,000 rounds, 5 folds:
    1.0099; measured over 100 such logs: 1.0100, sd 0.0008, where the check against 1 warned in every one)."""
    counts = np.zeros((folds.max() + 1, feedback.n_positions))
    np.add.at(counts, (folds, feedback.position), 1.0)
    out_of_fold = (counts.sum(axis=0)[None] - counts)[folds, feedback.position]
    weight = (1.0 / n_candidates) / pscore
    return float(np.mean(weight * (1.0 - pscore) / (np.maximum(out_of_fold, 1.0) * pscore)))


def _calibration(feedback: LoggedFeedback, probabilities: np.ndarray, folds: np.ndarray) -> dict:
    """Held-out log loss against the cross-fitted per-slot action frequencies, and one-vs-rest calibration of the
    probabilities of every (round, candidate) cell."""
    candidate = probabilities > 0
    outcome = np.zeros_like(probabilities)
    outcome[np.arange(feedback.n_rounds), feedback.action] = 1.0
    flat_probability = np.clip(probabilities[candidate], 0.0, 1.0)
    flat_outcome = outcome[candidate]
    logged = np.maximum(probabilities[np.arange(feedback.n_rounds), feedback.action], PROPENSITY_FLOOR)
    marginal = _cross_fit_marginal(feedback, folds)[np.arange(feedback.n_rounds), feedback.action]
    marginal_log_loss = float(-np.mean(np.log(marginal)))
    log_loss = float(-np.mean(np.log(logged)))
    reliability = diag.reliability_table(flat_outcome, flat_probability)
    return {
        "log_loss": log_loss,
        "marginal_log_loss": marginal_log_loss,
        "log_loss_gain": marginal_log_loss - log_loss,
        "ece_quantile": diag.expected_calibration_error(reliability),
        "reliability": reliability,
    }


# --------------------------------------------------------------------------------------------- estimate
def estimate_logging_propensities(
    feedback: LoggedFeedback,
    method: Any = "auto",
    scores: np.ndarray | None = None,
    clip: float | None = None,
    random_state: int | None = None,
    *,
    score_index: np.ndarray | None = None,
    n_folds: int = 5,
    position_features: bool = True,
    rank_buckets: int | None = None,
    exploration: bool = True,
    warn: bool = True,
) -> PropensityEstimate:
    """Estimate ``pi_0(a_i | x_i, l_i)`` for every logged round (methods in the module docstring).

    Parameters
    ----------
    feedback : LoggedFeedback
        The logs; an existing ``pscore`` is ignored for the fit and only compared with the estimate.
    method : "auto", "scores", "features", "marginal" or a scikit-learn classifier
        A classifier (anything with ``fit`` / ``predict_proba`` / ``classes_``) is cross-fitted as the
        ``features`` model on ``[context, one-hot slot]``.
    scores : array (n_rounds, n_actions) or (n_rows, n_actions) with ``score_index``
        The old ranker's scores of every candidate (``-inf`` = not a candidate), e.g. one row per user and
        ``score_index=feedback.user_id``.
    clip : float, optional
        Lower bound on the estimated propensities (weights at most ``1 / clip``); its cost is reported as
        ``clipped_share`` and ``weight_mass_removed`` (bias statement in :mod:`causalrec.exposure.diagnostics`).
    random_state : int, optional
        Seed of the fold split and of the classifier.
    n_folds : int
        Cross-fitting folds (each round is predicted by a model that did not see it).
    position_features : bool
        Give the ``features`` model the slot (one-hot) when there are several slots.
    rank_buckets : int, optional
        Leading ranks with their own effect in the ``scores`` model (default: the number of slots).
    exploration : bool
        Fit a uniform-exploration share in the ``scores`` model.
    warn : bool
        Emit the diagnostics' warnings as :class:`~causalrec.exceptions.CausalrecWarning`.
    """
    if not isinstance(feedback, LoggedFeedback):
        raise ValidationError("feedback", "a LoggedFeedback", type(feedback).__name__, owner=_OWNER)
    if clip is not None:
        clip = finite_number(_OWNER, "clip", clip)
        if not 0 < clip <= 1:
            raise ValidationError("clip", "None or a lower bound in (0, 1]", repr(clip), owner=_OWNER)
    classifier = None
    chosen_by_auto = method == "auto"
    if isinstance(method, str):
        if method not in METHODS:
            raise ValidationError("method", f"one of {METHODS} or a scikit-learn classifier", repr(method),
                                  owner=_OWNER)
        if method == "auto":
            method = "scores" if scores is not None else ("features" if feedback.context.shape[1] else "marginal")
    elif hasattr(method, "fit") and hasattr(method, "predict_proba"):
        classifier, method = method, "features"
    else:
        raise ValidationError("method", f"one of {METHODS} or a classifier with fit/predict_proba",
                              type(method).__name__, owner=_OWNER)
    if method == "scores" and scores is None:
        raise ValidationError("scores", "the old ranker's scores (n_rounds, n_actions) for method='scores'", "None",
                              owner=_OWNER)
    if method == "features" and feedback.context.shape[1] == 0 and not (position_features and feedback.n_positions > 1):
        raise ValidationError("context", "at least one context column for method='features'", "0 columns",
                              owner=_OWNER)

    rng = np.random.default_rng(random_state)
    folds = _folds(feedback.n_rounds, n_folds, rng)
    parameters: dict = {}
    if method == "scores":
        per_round = _check_scores(scores, score_index, feedback)
        buckets = feedback.n_positions if rank_buckets is None else int(rank_buckets)
        finite = per_round[np.isfinite(per_round)]
        scale = float(finite.std()) if finite.std() > 0 else 1.0
        full = ScorePropensityModel(buckets, exploration).fit(
            per_round, feedback.action, feedback.position, feedback.n_positions, scale
        )
        parameters = full.parameters()
        probabilities = np.zeros((feedback.n_rounds, feedback.n_actions))
        for fold in range(n_folds):
            train, test = folds != fold, folds == fold
            # Warm-started at the all-rounds fit, which only speeds the optimiser: the optimum is the fold's own.
            model = ScorePropensityModel(buckets, exploration).fit(
                per_round[train], feedback.action[train], feedback.position[train], feedback.n_positions, scale,
                start=parameters,
            )
            probabilities[test] = model.predict_proba(per_round[test], feedback.position[test])
        label = "scores (conditional logit of score, rank and slot"
        label += ", with uniform exploration)" if exploration else ")"
    elif method == "features":
        classifier = _default_classifier(random_state) if classifier is None else classifier
        features = _feature_matrix(feedback, position_features)
        probabilities = _cross_fit_classifier(classifier, features, feedback, folds)
        label = f"features ({_classifier_name(classifier)} on context{' and slot' if features.shape[1] > feedback.context.shape[1] else ''})"
        if chosen_by_auto:
            probabilities, label, parameters = _features_or_marginal(feedback, folds, probabilities, label)
    else:
        probabilities = _cross_fit_marginal(feedback, folds)
        label = "marginal (action frequencies per slot)"

    raw = probabilities[np.arange(feedback.n_rounds), feedback.action]
    n_floored = int((raw < PROPENSITY_FLOOR).sum())
    pscore = np.clip(np.maximum(raw, PROPENSITY_FLOOR), None, 1.0)
    clipping = diag.clipping_facts(pscore, clip)
    if clip is not None:
        pscore = np.maximum(pscore, clip)
    n_candidates = np.maximum((probabilities > 0).sum(axis=1), 1)
    facts: dict = {"method": label, "n_rounds": feedback.n_rounds, "n_folds": int(n_folds)}
    facts.update(_calibration(feedback, probabilities, folds))
    expected = 1.0
    frequencies = method == "marginal" or parameters.get("auto_chose") == "marginal"
    if frequencies and clip is None:
        expected += _frequency_inflation(feedback, folds, pscore, n_candidates)
    facts.update(diag.balance_facts(pscore, n_candidates, expected=expected))
    facts.update(clipping)
    facts.update({"floor": PROPENSITY_FLOOR, "n_floored": n_floored})
    if feedback.pscore is not None:
        estimated, logged = np.log(pscore), np.log(feedback.pscore)
        # Undefined (None) when either side is constant, e.g. a uniform logger: the median log ratio still compares.
        varies = np.ptp(logged) > 0 and np.ptp(estimated) > 0
        facts["correlation_with_logged_pscore"] = float(np.corrcoef(estimated, logged)[0, 1]) if varies else None
        facts["median_abs_log_ratio_to_logged_pscore"] = float(np.median(np.abs(estimated - logged)))
    messages = diag.warnings_for(facts)
    if warn:
        for message in messages:
            warnings.warn(message, CausalrecWarning, stacklevel=2)
    logger.info("estimated logging propensities with %s on %d rounds", label, feedback.n_rounds)
    pscore.flags.writeable = False
    probabilities.flags.writeable = False
    return PropensityEstimate(
        pscore=pscore,
        method=label,
        feedback=feedback.with_pscore(pscore, source=f"estimated by causalrec.exposure: {label}"),
        diagnostics=facts,
        action_probabilities=probabilities,
        parameters=parameters,
        warnings=messages,
    )


__all__ = ["METHODS", "PropensityEstimate", "ScorePropensityModel", "estimate_logging_propensities"]
