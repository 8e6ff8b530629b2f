"""Cross-fitted reward models ``q(x, a, l)`` for the direct and doubly robust estimators.

The model is fit K times, each time on the rounds outside one fold, and predicts only the rounds of that fold:
no round is scored by a model that saw it, which removes the own-observation bias that in-sample reward models
add to DR. Folds are stratified on the reward when it is binary. A training split with a single reward class
(a campaign with a handful of clicks) cannot fit a classifier; that fold falls back to the constant training
mean, and the result records how many folds did.

"Never scored by a model that saw it" only holds if no other row is the same observation: in a bootstrap
resample a round appears several times, and row-wise folds would train on one copy and score another (a
flexible model then memorises the click it is asked to predict). ``groups`` keeps rows with equal labels in one
fold: the refit bootstrap passes each resampled row's original round, and users can pass user ids so that no
user is scored by a model trained on their other rounds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone, is_classifier
from sklearn.model_selection import KFold, StratifiedKFold

from causalrec.data.feedback import LoggedFeedback
from causalrec.exceptions import ValidationError
from causalrec.ope.diagnostics import RewardModelFit, reward_model_fit
from causalrec.policy import ActionDistribution

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardPredictions:
    """``q_logged[i] = q(x_i, a_i, l_i)`` and ``q_target[i] = sum_a pi_e(a | i) q(x_i, a, l_i)``, both from the
    model that did not see round ``i``; ``fold_mean[i]`` is that model's training mean reward (the constant
    model the fit is judged against)."""

    q_logged: np.ndarray
    q_target: np.ndarray
    n_folds: int
    n_constant_folds: int
    model: str
    fold_mean: np.ndarray


def default_reward_model(binary: bool, random_state: int | None = None):
    """A LightGBM model sized for click logs (few positives): shallow trees and strong regularisation."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    params = dict(
        n_estimators=100, learning_rate=0.05, num_leaves=15, min_child_samples=20, subsample=0.8,
        subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, random_state=random_state, verbose=-1, n_jobs=1,
    )
    return LGBMClassifier(**params) if binary else LGBMRegressor(**params)


def design_matrix(
    feedback: LoggedFeedback, rounds: np.ndarray, actions: np.ndarray, positions: np.ndarray
) -> sp.csr_matrix:
    """Features of (round, action, slot) triples: context, one-hot action, item features, one-hot slot."""
    n = len(rounds)
    blocks = [sp.csr_matrix(feedback.context[rounds])]
    blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), actions)), shape=(n, feedback.n_actions)))
    if feedback.action_context is not None:
        blocks.append(sp.csr_matrix(feedback.action_context[actions]))
    if feedback.n_positions > 1:
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), positions)), shape=(n, feedback.n_positions)))
    return sp.hstack(blocks, format="csr", dtype=np.float64)


def _predict(model, features: sp.csr_matrix, binary: bool) -> np.ndarray:
    if binary and hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(features)
        classes = list(getattr(model, "classes_", [0, 1]))
        return probabilities[:, classes.index(1.0) if 1.0 in classes else -1]
    return np.asarray(model.predict(features), dtype=np.float64)


def group_folds(
    groups, reward: np.ndarray, n_folds: int, stratify: bool, random_state: int | None = None
) -> np.ndarray:
    """Fold index of every row such that rows with equal ``groups`` labels share a fold.

    Groups are shuffled and dealt to the folds in turn; with ``stratify``, the groups that contain a positive
    reward are dealt as one deck and the others as another, so that every fold gets its share of the rare clicks
    (vectorised: no loop over groups, which matters for a million-row bootstrap).
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != len(reward):
        raise ValidationError("groups", f"one label per round, shape ({len(reward)},)", f"shape {groups.shape}",
                              owner="reward model")
    missing = np.asarray(pd.isna(groups), dtype=bool)
    if missing.any():
        raise ValidationError("groups", "labels without missing values", f"{int(missing.sum())} missing",
                              int(np.flatnonzero(missing)[0]), owner="reward model")
    labels, inverse = np.unique(groups, return_inverse=True)
    if len(labels) < n_folds:
        raise ValidationError("groups", f"at least n_folds = {n_folds} distinct labels", f"{len(labels)}",
                              owner="reward model")
    rng = np.random.default_rng(random_state)
    stratum = np.zeros(len(labels), dtype=np.int64)
    if stratify:
        np.maximum.at(stratum, inverse, (reward > 0).astype(np.int64))
    fold_of_group = np.empty(len(labels), dtype=np.int64)
    start = int(rng.integers(n_folds))  # where the dealing starts, so that fold 0 is not always the largest
    for value in np.unique(stratum):
        members = rng.permutation(np.flatnonzero(stratum == value))
        fold_of_group[members] = (start + np.arange(len(members))) % n_folds
        start = (start + len(members)) % n_folds
    return fold_of_group[inverse]


@dataclass(frozen=True)
class CrossFittedRewardModel:
    """A reward model fitted once per fold on the logs; it predicts any target policy's ``q_target``.

    ``models[k]`` was trained on the rounds outside fold ``k`` (``None``: that training split had a single reward
    class and the fold predicts its training mean). Fitting once and predicting every candidate policy keeps the
    work of a comparison of many policies at one cross-fit, and scores all of them with the same models, so the
    paired differences compare policies, not refits.
    """

    feedback: LoggedFeedback
    models: tuple
    fold_of_round: np.ndarray
    fold_mean: np.ndarray
    q_logged: np.ndarray
    binary: bool
    model: str

    @property
    def n_folds(self) -> int:
        return len(self.models)

    @property
    def n_constant_folds(self) -> int:
        return sum(fitted is None for fitted in self.models)

    @cached_property
    def held_out_fit(self) -> RewardModelFit:
        """The out-of-fold loss against the training folds' means (see :class:`RewardModelFit`)."""
        return reward_model_fit(self.feedback.reward, self.q_logged, self.fold_mean, self.model, self.n_folds,
                                self.n_constant_folds, log_loss=self.binary)

    def predict_target(self, target: ActionDistribution) -> np.ndarray:
        """``q_target[i] = sum_a pi_e(a | i) q(x_i, a, l_i)`` from the model that did not see round ``i``."""
        feedback = self.feedback
        support_rounds, support_actions, support_probs = target.support(feedback.position)
        support_positions = feedback.position[support_rounds]
        support_fold = self.fold_of_round[support_rounds]
        q_target = np.zeros(feedback.n_rounds)
        for fold, fitted in enumerate(self.models):
            in_fold = support_fold == fold
            if fitted is None:
                prediction = self.fold_mean[support_rounds[in_fold]]
            else:
                features = design_matrix(
                    feedback, support_rounds[in_fold], support_actions[in_fold], support_positions[in_fold]
                )
                prediction = _predict(fitted, features, self.binary)
            np.add.at(q_target, support_rounds[in_fold], support_probs[in_fold] * prediction)
        return q_target

    def predictions(self, target: ActionDistribution) -> RewardPredictions:
        return RewardPredictions(self.q_logged, self.predict_target(target), self.n_folds, self.n_constant_folds,
                                 self.model, self.fold_mean)


def fit_reward_model(
    feedback: LoggedFeedback,
    model=None,
    n_folds: int = 3,
    random_state: int | None = None,
    groups=None,
) -> CrossFittedRewardModel:
    """Cross-fit ``model`` (a scikit-learn estimator, cloned per fold; LightGBM by default) on the logs.

    ``groups``: optional label per round; rounds with equal labels stay in one fold (copies of one logged round
    in a bootstrap resample, or one user's rounds).
    """
    reward = feedback.reward
    binary = bool(np.isin(reward, (0.0, 1.0)).all())
    if model is None:
        model = default_reward_model(binary, random_state)
    elif not (callable(getattr(model, "fit", None)) and callable(getattr(model, "get_params", None))
              and (callable(getattr(model, "predict_proba", None)) or callable(getattr(model, "predict", None)))):
        raise ValidationError(
            "reward_model", "a scikit-learn-style estimator (fit, get_params, predict_proba or predict), or None for "
            "the default LightGBM", f"{type(model).__name__} {model!r}"[:200], owner="reward_model",
        )
    binary = binary and (is_classifier(model) or hasattr(model, "predict_proba"))
    n = feedback.n_rounds
    # With groups, group_folds checks that there are at least n_folds distinct labels.
    upper = n if groups is None else np.inf
    if isinstance(n_folds, bool) or not isinstance(n_folds, Integral) or not 2 <= n_folds <= upper:
        expected = "an integer >= 2" if groups is not None else f"an integer in [2, n_rounds = {n}]"
        raise ValidationError("n_folds", f"{expected} (cross-fitting needs a held-out fold for every round)",
                              repr(n_folds), owner="reward_model")
    rows = np.arange(n)
    n_positive = int((reward > 0).sum())
    stratify = binary and min(n_positive, n - n_positive) >= n_folds
    if groups is not None:
        fold_index = group_folds(groups, reward, n_folds, stratify, random_state)
        folds = [(np.flatnonzero(fold_index != fold), np.flatnonzero(fold_index == fold)) for fold in range(n_folds)]
    elif stratify:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
        folds = list(splitter.split(rows, reward))
    else:
        folds = list(KFold(n_splits=n_folds, shuffle=True, random_state=random_state).split(rows))

    logged_features = design_matrix(feedback, rows, feedback.action, feedback.position)
    q_logged = np.empty(n)
    fold_mean = np.empty(n)
    fold_of_round = np.empty(n, dtype=np.int64)
    models = []
    for fold, (train, test) in enumerate(folds):
        fold_of_round[test] = fold
        fold_mean[test] = reward[train].mean()
        if binary and np.unique(reward[train]).size < 2:
            models.append(None)
            q_logged[test] = fold_mean[test]
            continue
        fitted = clone(model).fit(logged_features[train], reward[train])
        models.append(fitted)
        q_logged[test] = _predict(fitted, logged_features[test], binary)
    result = CrossFittedRewardModel(feedback, tuple(models), fold_of_round, fold_mean, q_logged, binary,
                                    type(model).__name__)
    if result.n_constant_folds:
        logger.info("%d of %d folds had a single reward class; they used the training mean", result.n_constant_folds,
                    n_folds)
    return result


def cross_fit_rewards(
    feedback: LoggedFeedback,
    target: ActionDistribution,
    model=None,
    n_folds: int = 3,
    random_state: int | None = None,
    groups=None,
) -> RewardPredictions:
    """Cross-fit ``model`` (see :func:`fit_reward_model`) and predict ``q_logged`` / ``q_target`` for ``target``."""
    return fit_reward_model(feedback, model, n_folds, random_state, groups).predictions(target)
