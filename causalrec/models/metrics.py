"""Ranking metrics over the full catalogue and calibration metrics of predicted probabilities.

Ranking: every item of the catalogue is a candidate (no sampled negatives, which inflate and reorder results).
Ties are broken *pessimistically*: a relevant item ranks behind every non-relevant item with the same score,
and relevant items tied with each other are ordered by item index. A model that gives every item the same
score therefore gets the worst possible rank, never a lucky one; ties can only hurt the model being measured.

Relevance is binary: a row's targets are the items it bought (a basket can hold several). For a row with target
set ``T`` and pessimistic 1-based ranks ``r_t``:

* ``recall@k = #{t : r_t <= k} / |T|`` and ``hit@k = 1[min_t r_t <= k]``;
* ``ndcg@k = sum_{t : r_t <= k} 1 / log2(r_t + 1) / sum_{i=1}^{min(|T|, k)} 1 / log2(i + 1)``;
* ``mrr = 1 / min_t r_t`` (reciprocal rank of the first relevant item, no cut-off).

Every metric is averaged over rows with at least one target.

Calibration: ``log_loss``, ``brier_score`` and the expected calibration error
``ECE = sum_b (n_b / n) |mean(y in b) - mean(p in b)|`` over bins of the predicted probability.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from causalrec._arrays import item_indices, quantile_bins
from causalrec._checks import open_unit_interval
from causalrec.exceptions import ValidationError

_OWNER = "metrics"
TIE_POLICY = "pessimistic: a relevant item ranks behind every non-relevant item with an equal score"


def _as_item_lists(values, field: str, n_rows: int, n_items: int) -> list[np.ndarray]:
    """Per-row item indices (``targets`` or ``exclude``), each validated by
    :func:`causalrec._arrays.item_indices`, unique ascending."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype != object:
        values = [np.array([value]) for value in values]
    if len(values) != n_rows:
        raise ValidationError(field, f"one item set per row of scores ({n_rows})", f"{len(values)}", owner=_OWNER)
    return [np.unique(item_indices(items, field, row, _OWNER, n_items)) for row, items in enumerate(values)]


def target_ranks(
    scores: np.ndarray,
    targets: Sequence[Sequence[int]] | np.ndarray,
    exclude: Sequence[Sequence[int]] | None = None,
    chunk_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic 1-based rank of every target item among the candidate items of its row.

    ``scores`` is ``(n_rows, n_items)``; ``targets`` gives each row's relevant items (a list of arrays, or a 1-D
    array with one target per row). ``exclude`` removes items from a row's candidates (e.g. items already seen
    when the seen-item policy excludes them): they never count against a target, whatever its score (-inf
    included); an excluded target is an error because it could never be ranked. Item indices must be
    integer-valued in ``[0, n_items)``. Returns ``(row_of_target, rank)`` over all (row, target) pairs, rows in
    order, items ascending.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValidationError("scores", "a 2-D array (n_rows, n_items)", f"shape {scores.shape}", owner=_OWNER)
    if np.isnan(scores).any() or np.isposinf(scores).any():
        row = int(np.flatnonzero(np.isnan(scores).any(axis=1) | np.isposinf(scores).any(axis=1))[0])
        raise ValidationError("scores", "finite (NaN would make ties look like wins)", "NaN or +inf", row, owner=_OWNER)
    n_rows, n_items = scores.shape
    target_lists = _as_item_lists(targets, "targets", n_rows, n_items)
    exclude_lists = None
    if exclude is not None:
        exclude_lists = _as_item_lists(exclude, "exclude", n_rows, n_items)
        for row, items in enumerate(exclude_lists):
            if np.isin(target_lists[row], items).any():
                raise ValidationError(
                    "exclude", "disjoint from the row's targets", "an excluded target item", row, owner=_OWNER
                )

    rows_out, ranks_out = [], []
    item_index = np.arange(n_items)
    for start in range(0, n_rows, chunk_size):
        stop = min(start + chunk_size, n_rows)
        pair_rows = np.concatenate(
            [np.full(len(target_lists[row]), row, dtype=np.int64) for row in range(start, stop)]
        )
        if not len(pair_rows):
            continue
        pair_items = np.concatenate(target_lists[start:stop])
        is_target = np.zeros((stop - start, n_items), dtype=bool)
        is_target[pair_rows - start, pair_items] = True
        candidate = np.ones((stop - start, n_items), dtype=bool)
        if exclude_lists is not None:
            for row in range(start, stop):
                candidate[row - start, exclude_lists[row]] = False
        row_scores = scores[pair_rows]
        target_score = scores[pair_rows, pair_items][:, None]
        relevant = is_target[pair_rows - start]
        counted = candidate[pair_rows - start]
        greater = ((row_scores > target_score) & counted).sum(axis=1)
        equal = (row_scores == target_score) & counted
        tied_other = (equal & ~relevant).sum(axis=1)
        tied_relevant_before = (equal & relevant & (item_index[None, :] < pair_items[:, None])).sum(axis=1)
        rows_out.append(pair_rows)
        ranks_out.append(1 + greater + tied_other + tied_relevant_before)
    if not rows_out:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows_out), np.concatenate(ranks_out).astype(np.int64)


def ranking_metrics(
    scores: np.ndarray,
    targets: Sequence[Sequence[int]] | np.ndarray,
    ks: Iterable[int] = (10, 20),
    exclude: Sequence[Sequence[int]] | None = None,
    per_row: bool = False,
) -> dict:
    """NDCG@k, recall@k, hit@k and MRR over the full catalogue with pessimistic ties (module docstring).

    Returns a dict ``{"ndcg@10": ..., "recall@10": ..., "hit@10": ..., "mrr": ..., "n_rows": ...}`` averaged over
    rows with at least one target; with ``per_row=True`` the values are per-row arrays (NaN for rows without
    targets), useful for paired comparisons and bootstrap intervals.
    """
    scores = np.asarray(scores)
    n_rows = scores.shape[0]
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValidationError("ks", "positive cut-offs", f"{ks}", owner=_OWNER)
    pair_rows, ranks = target_ranks(scores, targets, exclude)
    n_targets = np.bincount(pair_rows, minlength=n_rows)
    has_target = n_targets > 0
    result: dict[str, np.ndarray] = {}
    discount = 1.0 / np.log2(ranks + 1.0)
    for k in ks:
        inside = ranks <= k
        hits = np.bincount(pair_rows, weights=inside, minlength=n_rows)
        dcg = np.bincount(pair_rows, weights=discount * inside, minlength=n_rows)
        ideal_cum = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))]
        idcg = ideal_cum[np.minimum(n_targets, k)]
        result[f"ndcg@{k}"] = np.divide(dcg, idcg, out=np.full(n_rows, np.nan), where=has_target)
        result[f"recall@{k}"] = np.divide(hits, n_targets, out=np.full(n_rows, np.nan), where=has_target)
        result[f"hit@{k}"] = np.where(has_target, (hits > 0).astype(np.float64), np.nan)
    best = np.full(n_rows, np.iinfo(np.int64).max)
    np.minimum.at(best, pair_rows, ranks)
    result["mrr"] = np.where(has_target, 1.0 / best, np.nan)
    if per_row:
        return {**result, "n_rows": int(has_target.sum())}
    summary = {name: float(np.mean(values[has_target])) if has_target.any() else float("nan")
               for name, values in result.items()}
    summary["n_rows"] = int(has_target.sum())
    return summary


# ---------------------------------------------------------------------------------------------- calibration
def _binary_inputs(y_true, probability) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    probability = np.asarray(probability, dtype=np.float64).reshape(-1)
    if y_true.shape != probability.shape:
        raise ValidationError("probability", f"one value per outcome ({y_true.shape[0]})", f"{probability.shape[0]}",
                              owner=_OWNER)
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ValidationError("y_true", "binary outcomes (0 or 1)", "other values", owner=_OWNER)
    if not (np.isfinite(probability).all() and (probability >= 0).all() and (probability <= 1).all()):
        raise ValidationError("probability", "probabilities in [0, 1]", "a value outside", owner=_OWNER)
    return y_true, probability


def _row_log_losses(y_true: np.ndarray, probability: np.ndarray, eps: float) -> np.ndarray:
    probability = np.clip(probability, eps, 1 - eps)
    return -(y_true * np.log(probability) + (1 - y_true) * np.log1p(-probability))


def log_loss_difference(y_true, probability, baseline_probability, alpha: float = 0.05,
                        eps: float = 1e-15) -> dict[str, float]:
    """Paired comparison of two probability models on the same held-out rows: ``log_loss(probability) -
    log_loss(baseline_probability)`` (negative: the model is better) with its standard error ``sd(d_i) / sqrt(n)``
    over the per-row differences ``d_i`` and a normal ``1 - alpha`` interval. With few positive outcomes the
    interval is wide, and it says so where a bare pair of log losses would not."""
    from scipy import stats

    y_true, probability = _binary_inputs(y_true, probability)
    _, baseline_probability = _binary_inputs(y_true, baseline_probability)
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    differences = _row_log_losses(y_true, probability, eps) - _row_log_losses(y_true, baseline_probability, eps)
    n = len(differences)
    difference = float(differences.mean())
    se = float(differences.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = float(stats.norm.ppf(1 - alpha / 2))
    return {"difference": difference, "se": se, "ci_low": difference - z * se, "ci_high": difference + z * se,
            "alpha": alpha, "n": n, "n_positive": int(np.sum(y_true > 0))}


def log_loss(y_true, probability, eps: float = 1e-15, sample_weight=None) -> float:
    """Mean negative log-likelihood of binary outcomes; probabilities are clipped to ``[eps, 1 - eps]``.

    ``sample_weight`` (non-negative, one per outcome, positive total) gives the weighted mean, e.g. importance
    weights ``pi_e / pi_b`` for the loss under another policy's action distribution."""
    y_true, probability = _binary_inputs(y_true, probability)
    losses = _row_log_losses(y_true, probability, eps)
    if sample_weight is None:
        return float(losses.mean())
    weight = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weight.shape != losses.shape or not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
        raise ValidationError("sample_weight", f"{losses.shape[0]} finite non-negative weights with a positive sum",
                              f"shape {weight.shape}, sum {weight.sum() if weight.size else 0.0}", owner=_OWNER)
    return float(weight @ losses / weight.sum())


def brier_score(y_true, probability) -> float:
    """Mean squared difference between outcome and probability."""
    y_true, probability = _binary_inputs(y_true, probability)
    return float(np.mean((probability - y_true) ** 2))


def expected_calibration_error(y_true, probability, n_bins: int = 10, strategy: str = "uniform") -> float:
    """``sum_b (n_b / n) |mean(y in b) - mean(p in b)|``.

    ``strategy="uniform"`` uses ``n_bins`` equal-width bins of ``[0, 1]`` (a probability of exactly 1 falls in
    the last bin); ``"quantile"`` uses bins with about equal numbers of predictions, which is the informative
    choice for rare outcomes (clicks), where equal-width bins put almost everything in the first bin.

    Quantile bins are assigned by value (:func:`causalrec._arrays.quantile_bins`): equal predictions always share
    a bin and the result does not depend on row order; heavy ties give fewer, larger bins (a constant
    prediction gives one bin, so its quantile ECE equals its uniform ECE, ``|mean(y) - p|``).
    """
    y_true, probability = _binary_inputs(y_true, probability)
    if n_bins < 1:
        raise ValidationError("n_bins", "a positive integer", repr(n_bins), owner=_OWNER)
    if strategy == "uniform":
        bins = np.minimum((probability * n_bins).astype(np.int64), n_bins - 1)
    elif strategy == "quantile":
        bins = quantile_bins(probability, n_bins)
    else:
        raise ValidationError("strategy", "'uniform' or 'quantile'", repr(strategy), owner=_OWNER)
    outcome_sum = np.bincount(bins, weights=y_true, minlength=n_bins)
    probability_sum = np.bincount(bins, weights=probability, minlength=n_bins)
    return float(np.abs(outcome_sum - probability_sum).sum() / len(probability))


def calibration_metrics(y_true, probability, n_bins: int = 10) -> dict[str, float]:
    """Log loss, Brier score, ECE (uniform and quantile bins), mean prediction and mean outcome."""
    y_true, probability = _binary_inputs(y_true, probability)
    return {
        "log_loss": log_loss(y_true, probability),
        "brier": brier_score(y_true, probability),
        "ece": expected_calibration_error(y_true, probability, n_bins, "uniform"),
        "ece_quantile": expected_calibration_error(y_true, probability, n_bins, "quantile"),
        "mean_probability": float(probability.mean()),
        "mean_outcome": float(y_true.mean()),
        "n": int(len(y_true)),
    }


def summarize_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float | list[float]]]:
    """Mean, sample standard deviation and values of every numeric metric over repeated runs (seeds)."""
    if not runs:
        return {}
    names = [name for name, value in runs[0].items() if isinstance(value, int | float | np.number)]
    summary = {}
    for name in names:
        values = np.array([float(run[name]) for run in runs])
        summary[name] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": values.tolist(),
        }
    return summary
