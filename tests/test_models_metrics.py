"""Ranking and calibration metrics against hand computations and known-calibration oracles."""

import math

import numpy as np
import pytest

from causalrec.exceptions import ValidationError
from causalrec.models.metrics import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    log_loss,
    log_loss_difference,
    ranking_metrics,
    summarize_runs,
    target_ranks,
)


def test_ndcg_recall_mrr_of_a_hand_ranked_row():
    # Ranking by score: item 1 (0.9), item 2 (0.5), item 3 (0.3), item 0 (0.1); relevant items 2 and 3.
    scores = np.array([[0.1, 0.9, 0.5, 0.3]])
    metrics = ranking_metrics(scores, [[2, 3]], ks=(1, 2, 3))
    ideal = 1 + 1 / math.log2(3)
    assert metrics["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert metrics["ndcg@2"] == pytest.approx((1 / math.log2(3)) / ideal)
    assert metrics["ndcg@1"] == 0.0
    assert metrics["recall@2"] == pytest.approx(0.5)
    assert metrics["recall@3"] == pytest.approx(1.0)
    assert metrics["hit@1"] == 0.0 and metrics["hit@2"] == 1.0
    assert metrics["mrr"] == pytest.approx(0.5)


def test_ideal_dcg_is_cut_at_k_when_there_are_more_targets_than_k():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    metrics = ranking_metrics(scores, [[0, 1, 2, 3]], ks=(2,))
    assert metrics["ndcg@2"] == pytest.approx(1.0)
    assert metrics["recall@2"] == pytest.approx(0.5)


def test_ties_never_favour_the_target():
    n_items = 7
    constant = np.zeros((1, n_items))
    _, ranks = target_ranks(constant, [[0]])
    assert ranks.tolist() == [n_items]  # worst possible, although item 0 has the lowest index
    _, ranks = target_ranks(constant, [[0, 4]])
    assert sorted(ranks.tolist()) == [n_items - 1, n_items]
    # A target tied with one non-target ranks behind it.
    scores = np.array([[1.0, 3.0, 3.0, 0.0]])
    _, ranks = target_ranks(scores, [[1]])
    assert ranks.tolist() == [2]
    assert ranking_metrics(constant, [[0]], ks=(5,))["hit@5"] == 0.0


def test_one_target_per_row_as_a_flat_array_and_rows_without_targets():
    scores = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    per_row = ranking_metrics(scores, [[2], [2], []], ks=(1,), per_row=True)
    assert per_row["hit@1"][:2].tolist() == [1.0, 0.0] and np.isnan(per_row["hit@1"][2])
    assert per_row["n_rows"] == 2
    flat = ranking_metrics(scores[:2], np.array([2, 2]), ks=(1,))
    assert flat["mrr"] == pytest.approx((1 + 1 / 3) / 2)


def test_excluded_candidates_are_removed_but_may_not_be_targets():
    scores = np.array([[3.0, 2.0, 1.0]])
    assert target_ranks(scores, [[2]], exclude=[[0, 1]])[1].tolist() == [1]
    with pytest.raises(ValidationError, match="exclude"):
        target_ranks(scores, [[2]], exclude=[[2]])


def test_non_finite_scores_and_bad_targets_are_rejected():
    with pytest.raises(ValidationError, match="finite"):
        ranking_metrics(np.array([[np.nan, 1.0]]), [[0]])
    with pytest.raises(ValidationError, match="targets"):
        ranking_metrics(np.array([[0.0, 1.0]]), [[2]])


def test_log_loss_and_brier_by_hand():
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    # Integer weights are repeated rows: weights (3, 1) equal the unweighted loss of [1, 1, 1, 0].
    assert log_loss([1, 0], [0.8, 0.4], sample_weight=[3, 1]) == pytest.approx(
        log_loss([1, 1, 1, 0], [0.8, 0.8, 0.8, 0.4]))
    assert log_loss([1, 0], [0.8, 0.4], sample_weight=[0, 2]) == pytest.approx(-math.log(0.6))
    with pytest.raises(ValidationError, match="sample_weight"):
        log_loss([1, 0], [0.8, 0.4], sample_weight=[-1, 2])
    with pytest.raises(ValidationError, match="sample_weight"):
        log_loss([1, 0], [0.8, 0.4], sample_weight=[1])
    assert brier_score([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)


def test_paired_log_loss_difference_by_hand_and_on_a_known_signal():
    y, p, q = [1, 0, 0], [0.8, 0.4, 0.1], [0.5, 0.5, 0.5]
    d = [math.log(0.5) - math.log(0.8), math.log(0.5) - math.log(0.6), math.log(0.5) - math.log(0.9)]
    mean = sum(d) / 3
    se = math.sqrt(sum((v - mean) ** 2 for v in d) / 2 / 3)
    result = log_loss_difference(y, p, q, alpha=0.1)
    assert result["difference"] == pytest.approx(log_loss(y, p) - log_loss(y, q))
    assert result["difference"] == pytest.approx(mean) and result["se"] == pytest.approx(se)
    assert result["ci_low"] == pytest.approx(mean - 1.6448536269514722 * se)
    assert (result["n"], result["n_positive"], result["alpha"]) == (3, 1, 0.1)
    # The true probabilities beat the base rate; swapped, the base rate beats them; each interval excludes 0.
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.01, 0.6, 5000)
    outcome = (rng.random(5000) < truth).astype(float)
    constant = np.full(5000, outcome.mean())
    assert log_loss_difference(outcome, truth, constant)["ci_high"] < 0
    assert log_loss_difference(outcome, constant, truth)["ci_low"] > 0
    with pytest.raises(ValidationError, match="field 'probability' must be one value per outcome"):
        log_loss_difference(y, p, q[:2])
    with pytest.raises(ValidationError, match="field 'alpha'"):
        log_loss_difference(y, p, q, alpha=1.0)


def test_ece_by_hand():
    # Bin [0.1, 0.2): predicted 0.1, observed 0.5; bin [0.9, 1]: predicted 0.9, observed 1.
    ece = expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9], n_bins=10)
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert expected_calibration_error([1], [1.0]) == 0.0  # p = 1 lands in the last bin


def test_ece_oracles_calibrated_and_miscalibrated_predictors():
    rng = np.random.default_rng(0)
    probability = rng.random(200_000)
    outcome = (rng.random(probability.shape) < probability).astype(float)
    for strategy in ("uniform", "quantile"):
        assert expected_calibration_error(outcome, probability, 10, strategy) < 0.01
        # Squaring the probabilities keeps the ranking but not the calibration: E|p - p^2| = 1/6.
        assert expected_calibration_error(outcome, probability**2, 10, strategy) > 0.12
    summary = calibration_metrics(outcome, probability)
    assert summary["mean_probability"] == pytest.approx(summary["mean_outcome"], abs=0.01)


def test_calibration_inputs_are_validated():
    with pytest.raises(ValidationError) as error:
        log_loss([0, 2], [0.5, 0.5])
    assert error.value.field == "y_true"
    with pytest.raises(ValidationError) as error:
        expected_calibration_error([0, 1], [0.5, 1.5])
    assert error.value.field == "probability"
    with pytest.raises(ValidationError) as error:
        expected_calibration_error([0, 1], [0.5, 0.5], strategy="other")
    assert error.value.field == "strategy"


def test_summarize_runs_mean_and_sample_std():
    summary = summarize_runs([{"ndcg@10": 0.1, "name": "x"}, {"ndcg@10": 0.3, "name": "y"}])
    assert summary["ndcg@10"]["mean"] == pytest.approx(0.2)
    assert summary["ndcg@10"]["std"] == pytest.approx(math.sqrt(0.02))
    assert "name" not in summary


def _reference_ranks(scores, targets, exclude):
    """Pessimistic ranks by brute force, among each row's non-excluded items only."""
    ranks = []
    for row, row_targets in enumerate(targets):
        candidates = [item for item in range(scores.shape[1]) if item not in set(exclude[row])]
        for target in sorted(set(row_targets)):
            ahead = 0
            for item in candidates:
                if item == target:
                    continue
                if item in row_targets:  # another relevant item: ahead when higher, or tied with a lower index
                    ahead += scores[row, item] > scores[row, target] or (
                        scores[row, item] == scores[row, target] and item < target)
                else:  # a non-relevant item: ahead when higher or tied
                    ahead += scores[row, item] >= scores[row, target]
            ranks.append(1 + ahead)
    return ranks


def test_excluded_items_never_count_against_a_target_scored_minus_infinity():
    scores = np.array([[0.0, -np.inf, 1.0, 2.0]])
    assert target_ranks(scores, [[1]], exclude=[[2, 3]])[1].tolist() == [2]  # candidates are items 0 and 1
    assert ranking_metrics(scores, [[1]], ks=(1,), exclude=[[2, 3]])["mrr"] == pytest.approx(0.5)
    assert target_ranks(np.array([[-np.inf, -np.inf, 5.0]]), [[0]], exclude=[[2]])[1].tolist() == [2]


def test_ranks_match_a_brute_force_reference_with_ties_infinities_and_exclusions():
    rng = np.random.default_rng(0)
    n_rows, n_items = 23, 9
    scores = rng.integers(0, 3, size=(n_rows, n_items)).astype(float)
    scores[rng.random(scores.shape) < 0.2] = -np.inf
    targets, exclude = [], []
    for _ in range(n_rows):
        items = rng.permutation(n_items)
        n_targets, n_excluded = rng.integers(0, 4), rng.integers(0, 5)
        targets.append(items[:n_targets].tolist())
        exclude.append(items[n_targets:n_targets + n_excluded].tolist())
    expected = _reference_ranks(scores, targets, exclude)
    for chunk_size in (1, 4, 256):
        _, ranks = target_ranks(scores, targets, exclude=exclude, chunk_size=chunk_size)
        assert ranks.tolist() == expected


@pytest.mark.parametrize("field", ["targets", "exclude"])
@pytest.mark.parametrize("bad", [-1, -3, 0.7, 1.9, 4, 7, np.nan, "1"])
def test_target_and_exclude_ids_must_be_integers_in_the_catalogue(field, bad):
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    targets, exclude = [[1], [2]], [[0], [3]]
    if field == "targets":
        targets = [[1], [0, bad]]
    else:
        exclude = [[0], [3, bad]]
    with pytest.raises(ValidationError) as error:
        ranking_metrics(scores, targets, ks=(1,), exclude=exclude)
    assert error.value.field == field and error.value.row == 1
    with pytest.raises(ValidationError) as error:
        target_ranks(scores, targets, exclude=exclude)
    assert error.value.field == field and error.value.row == 1
    # Whole floats are indices: 2.0 is item 2.
    assert target_ranks(scores, [[1.0], [2.0]], exclude=[[0.0], [3.0]])[1].tolist() == [1, 1]
    assert target_ranks(scores, np.array([1.0, 2.0]))[1].tolist() == [2, 2]


def test_quantile_ece_does_not_depend_on_row_order_under_ties():
    rng = np.random.default_rng(1)
    probability = rng.choice([0.05, 0.2, 0.5, 0.9], size=300, p=[0.6, 0.2, 0.15, 0.05])
    outcome = (rng.random(300) < probability).astype(float)
    first = expected_calibration_error(outcome, probability, 10, "quantile")
    for _ in range(20):
        order = rng.permutation(300)
        assert expected_calibration_error(outcome[order], probability[order], 10, "quantile") == pytest.approx(
            first, abs=1e-12)
    # Independent check: every distinct prediction is its own bin here (quantile edges fall between the values).
    reference = sum(abs(outcome[probability == p].sum() - probability[probability == p].sum())
                    for p in np.unique(probability)) / 300
    assert first == pytest.approx(reference, abs=1e-12)


def test_quantile_ece_of_a_constant_prediction():
    assert expected_calibration_error([0, 0, 1, 1], np.full(4, 0.5), 2, "quantile") == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error([0, 1, 0, 1], np.full(4, 0.5), 2, "quantile") == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(2)
    outcome = np.sort((rng.random(2000) < 0.05).astype(float))
    for constant in (outcome.mean(), 0.3):
        prediction = np.full(len(outcome), constant)
        quantile = expected_calibration_error(outcome, prediction, 10, "quantile")
        assert quantile == pytest.approx(abs(outcome.mean() - constant), abs=1e-12)
        assert quantile == pytest.approx(expected_calibration_error(outcome, prediction, 10, "uniform"), abs=1e-12)


def test_quantile_ece_by_hand():
    # Sorted predictions 0.1 0.1 0.2 0.4 0.4 0.8; the 1/3 and 2/3 quantiles (linear) are 0.1 + 2/3 * 0.1 and 0.4.
    # Bins (.., e1], (e1, e2], (e2, ..): {0.1, 0.1}, {0.2, 0.4, 0.4}, {0.8}; outcomes 0 1 | 0 1 0 | 1.
    probability = [0.1, 0.4, 0.8, 0.2, 0.4, 0.1]
    outcome = [0, 1, 1, 0, 0, 1]
    expected = (abs(1 - 0.2) + abs(1 - 1.0) + abs(1 - 0.8)) / 6
    assert expected_calibration_error(outcome, probability, 3, "quantile") == pytest.approx(expected)
