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
