"""Uplift metrics against hand-computed values, independent reference formulas (scikit-uplift's and causalml's
documented definitions, written out here row by row), and the libraries themselves when installed."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from causalrec.effects.ranking import causal_dcg_at_k, causal_precision_at_k, ips_effect, top_k
from causalrec.effects.uplift_metrics import auuc, qini_coefficient, qini_curve, uplift_at_k, uplift_curve
from causalrec.exceptions import CausalrecWarning, ValidationError


def _rct(n: int, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    t = rng.integers(0, 2, n)
    effect = 0.15 * (x > 0)
    y = (rng.random(n) < 0.2 + t * effect).astype(int)
    score = x + 0.5 * rng.normal(size=n)
    if ties:
        score = np.round(score, 1)
    return y, t, score


# ------------------------------------------------------------------------------- reference formulas (row by row)
def _reference_curves(y, t, score):
    """Uplift and Qini curves at every row of the descending order (valid for untied scores)."""
    order = np.argsort(-score, kind="mergesort")
    n_t = n_c = y_t = y_c = 0.0
    uplift, qini = [0.0], [0.0]
    for i in order:
        if t[i]:
            n_t, y_t = n_t + 1, y_t + y[i]
        else:
            n_c, y_c = n_c + 1, y_c + y[i]
        n = n_t + n_c
        rate_t = y_t / n_t if n_t else 0.0
        rate_c = y_c / n_c if n_c else 0.0
        uplift.append((rate_t - rate_c) * n)
        qini.append(y_t - (y_c * n_t / n_c if n_c else 0.0))
    return np.array(uplift), np.array(qini)


def _reference_causalml_auuc(y, t, score):
    """causalml ``auuc_score(normalize=True)`` as causalml 0.15 builds it (``get_cumlift`` / ``get_cumgain``): the
    lift at row n is the treated minus the control mean of the first n rows (undefined while an arm is empty), a
    row 0 with lift 0 is prepended, undefined lifts are filled by pandas' linear ``interpolate()``, the gain
    ``lift * n`` is divided by ``|gain(N)|`` and summed over the N + 1 rows, then divided by N + 1."""
    order = np.argsort(-score, kind="mergesort")
    n_t = n_c = y_t = y_c = 0.0
    lift = [0.0]
    for i in order:
        if t[i]:
            n_t, y_t = n_t + 1, y_t + y[i]
        else:
            n_c, y_c = n_c + 1, y_c + y[i]
        lift.append(y_t / n_t - y_c / n_c if n_t > 0 and n_c > 0 else np.nan)
    lift = pd.Series(lift).interpolate().to_numpy()
    gain = lift * np.arange(len(lift))
    gain = gain / abs(gain[-1])
    return gain.sum() / len(gain)


def _trapezoid(x, y):
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _reference_normalised_area(x, curve, x_best, curve_best):
    """scikit-uplift's score: (area - baseline area) / (perfect area - baseline area); baseline from the perfect
    curve's end point."""
    baseline = x_best[-1] * curve_best[-1] / 2
    return (_trapezoid(x, curve) - baseline) / (_trapezoid(x_best, curve_best) - baseline)


# ------------------------------------------------------------------------------- tests
def test_curves_on_a_hand_computed_example():
    y, t, score = np.array([1, 0, 0, 1]), np.array([1, 0, 1, 0]), np.array([4.0, 3.0, 2.0, 1.0])
    np.testing.assert_allclose(uplift_curve(y, t, score).value, [0, 1, 2, 1.5, 0])
    np.testing.assert_allclose(qini_curve(y, t, score).value, [0, 1, 1, 1, 0])
    np.testing.assert_allclose(qini_curve(y, t, score).n_targeted, [0, 1, 2, 3, 4])


def test_curves_match_reference_formulas_on_untied_scores():
    y, t, score = _rct(500, 0)
    uplift_reference, qini_reference = _reference_curves(y, t, score)
    np.testing.assert_allclose(uplift_curve(y, t, score).value, uplift_reference, atol=1e-9)
    np.testing.assert_allclose(qini_curve(y, t, score).value, qini_reference, atol=1e-9)


def test_tied_scores_are_grouped_and_row_order_does_not_matter():
    y, t, score = _rct(400, 1, ties=True)
    assert len(np.unique(score)) < 100
    permutation = np.random.default_rng(5).permutation(len(y))
    for metric in (uplift_curve, qini_curve):
        a, b = metric(y, t, score), metric(y[permutation], t[permutation], score[permutation])
        np.testing.assert_allclose(a.value, b.value)
        assert len(a.value) == len(np.unique(score)) + 1
    for metric in (auuc, qini_coefficient):
        assert metric(y, t, score, n_bootstrap=0).value == pytest.approx(
            metric(y[permutation], t[permutation], score[permutation], n_bootstrap=0).value)


def test_perfect_normalisation_matches_scikit_uplift_definition():
    y, t, score = _rct(300, 2)
    # Perfect uplift ordering as scikit-uplift documents it, written out independently.
    control_responders = np.sum((y == 1) & (t == 0))
    treated_nonresponders = np.sum((y == 0) & (t == 1))
    perfect = 2 * (y == t) + (y if control_responders > treated_nonresponders else t)
    x_grid = np.arange(len(y) + 1)
    uplift_ref, _ = _reference_curves(y, t, score)
    # The perfect score has ties: a row-by-row curve read at the end of each tie group is the grouped curve.
    order = np.argsort(-perfect, kind="mergesort")
    ends = np.r_[np.flatnonzero(np.diff(perfect[order])), len(y) - 1] + 1
    best_ref = _reference_curves(y, t, perfect)[0][np.r_[0, ends]]
    expected = _reference_normalised_area(x_grid, uplift_ref, np.r_[0, ends], best_ref)
    assert auuc(y, t, score, normalize="perfect", n_bootstrap=0).value == pytest.approx(expected, rel=1e-9)
    _, qini_ref = _reference_curves(y, t, score)
    best_qini_score = y * t - y * (1 - t)
    order = np.argsort(-best_qini_score, kind="mergesort")
    ends = np.r_[np.flatnonzero(np.diff(best_qini_score[order])), len(y) - 1] + 1
    best_qini = _reference_curves(y, t, best_qini_score)[1][np.r_[0, ends]]
    expected_qini = _reference_normalised_area(x_grid, qini_ref, np.r_[0, ends], best_qini)
    assert qini_coefficient(y, t, score, normalize="perfect", n_bootstrap=0).value == pytest.approx(expected_qini, rel=1e-9)


def test_last_normalisation_matches_causalml_definition_on_untied_scores():
    y, t, score = _rct(400, 3)
    assert auuc(y, t, score, normalize="last", n_bootstrap=0).value == pytest.approx(
        _reference_causalml_auuc(y, t, score), rel=1e-9)


def test_last_normalisation_matches_causalml_reference_values_recorded_by_h2o():
    # H2O-3 AUUCTest.testAUUCNormalizedCompareCausalMl: causalml's normalised gains on these rows are
    # [0, 0, 0, 0, 1, 0.6, 0.28, 0.85333, 1.26, 1] (rows 1..10) and the AUUC is their sum / (10 + 1).
    y = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 1])
    t = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    score = np.array([0.1, -0.1, 0.2, 0.5, 0.55, 0.13, -0.2, 0.11, 0.3, 0.9])
    gains = np.array([0, 0, 0, 0, 1, 0.6, 0.28, 0.85333, 1.26, 1])
    assert auuc(y, t, score, normalize="last", n_bootstrap=0).value == pytest.approx(gains.sum() / 11, abs=1e-5)


def test_last_normalisation_interpolates_the_rows_where_an_arm_is_empty():
    # Rows by score: treated y=1, treated y=0, control y=0, treated y=1, control y=1. Lifts (causalml): rows 1-2
    # undefined, row 3: 0.5 - 0 = 0.5, row 4: 2/3, row 5: 2/3 - 1/2 = 1/6; rows 1-2 interpolate 0 -> 0.5 over
    # rows 0..3: 1/6, 1/3. Gains n * lift: 0, 1/6, 2/3, 3/2, 8/3, 5/6 -> sum / gain(5) / 6.
    y, t, score = np.array([1, 0, 0, 1, 1]), np.array([1, 1, 0, 1, 0]), np.array([5.0, 4, 3, 2, 1])
    gains = np.array([0, 1 / 6, 2 / 3, 3 / 2, 8 / 3, 5 / 6])
    expected = gains.sum() / (5 / 6) / 6
    assert auuc(y, t, score, normalize="last", n_bootstrap=0).value == pytest.approx(expected, rel=1e-12)


def test_random_normalisation_in_closed_form_and_near_zero_for_random_scores():
    y, t, score = np.array([1, 0, 0, 1]), np.array([1, 0, 1, 0]), np.array([4.0, 3.0, 2.0, 1.0])
    # Qini points 0,1,1,1,0 over n = 0..4: area 3, random line ends at 0 -> (3 - 0) / 16.
    assert qini_coefficient(y, t, score, n_bootstrap=0).value == pytest.approx(3 / 16)
    # Uplift points 0,1,2,1.5,0: area 0.5 + 1.5 + 1.75 + 0.75 = 4.5 -> 4.5 / 16.
    assert auuc(y, t, score, n_bootstrap=0).value == pytest.approx(4.5 / 16)
    rng = np.random.default_rng(4)
    y, t, _ = _rct(4000, 4)
    values = [qini_coefficient(y, t, rng.random(len(y)), n_bootstrap=0).value for _ in range(20)]
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(20) + 1e-3


def test_uplift_at_k_matches_scikit_uplift_definition():
    y, t, score = _rct(501, 6)
    order = np.argsort(-score, kind="mergesort")
    top = order[: int(len(y) * 0.3)]
    expected = y[top][t[top] == 1].mean() - y[top][t[top] == 0].mean()
    assert uplift_at_k(y, t, score, k=0.3, n_bootstrap=0).value == pytest.approx(expected)
    treated_top = order[t[order] == 1][: int((t == 1).sum() * 0.3)]
    control_top = order[t[order] == 0][: int((t == 0).sum() * 0.3)]
    expected_by_group = y[treated_top].mean() - y[control_top].mean()
    assert uplift_at_k(y, t, score, k=0.3, strategy="by_group", n_bootstrap=0).value == pytest.approx(expected_by_group)


def test_uplift_at_k_is_nan_when_the_top_k_lacks_an_arm():
    # The top 3 rows by score are all treated: the control mean, hence uplift@3, is undefined (scikit-uplift: NaN).
    y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    t = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    score = np.arange(8.0)[::-1]
    with pytest.warns(CausalrecWarning, match="no control row"):
        estimate = uplift_at_k(y, t, score, k=3, n_bootstrap=50, random_state=0)
    assert np.isnan(estimate.value) and "no control row" in estimate.note
    # No replicate has a control row among the top 3 either: none is counted as 0.
    assert estimate.n_undefined == 50 and np.isnan(estimate.ci_low) and np.isnan(estimate.ci_high)
    with pytest.warns(CausalrecWarning, match="no treated row"):
        assert np.isnan(uplift_at_k(y, 1 - t, score, k=3, n_bootstrap=0).value)


def test_uplift_at_k_bootstrap_leaves_out_replicates_with_an_empty_arm():
    # One control row (row 2) in the top 3: replicates that do not draw it have no control mean.
    y = np.array([1.0, 0, 1, 1, 0, 1, 0, 0, 1, 0])
    t = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 0])
    score = np.arange(10.0)[::-1]
    n_bootstrap, seed = 400, 3
    weights = np.random.default_rng(seed).multinomial(10, np.full(10, 0.1), size=n_bootstrap)
    top = np.zeros(10)
    top[:3] = 1.0
    values = []
    for w in weights * top:
        if (w * t).sum() > 0 and (w * (1 - t)).sum() > 0:
            values.append((w * t * y).sum() / (w * t).sum() - (w * (1 - t) * y).sum() / (w * (1 - t)).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        estimate = uplift_at_k(y, t, score, k=3, n_bootstrap=n_bootstrap, random_state=seed)
    assert estimate.value == pytest.approx(0.5 - 1.0)  # top 3: treated y = 1, 0; control y = 1
    assert estimate.n_undefined == n_bootstrap - len(values) > 0
    np.testing.assert_allclose([estimate.ci_low, estimate.ci_high], np.quantile(values, [0.025, 0.975]))


def test_uplift_at_k_refuses_a_k_that_selects_no_row_or_more_than_an_arm():
    y, t, score = np.array([1, 0, 1, 0, 1, 0, 1, 0]), np.array([1, 1, 0, 0, 0, 0, 0, 0]), np.arange(8.0)
    calls = [
        lambda: uplift_at_k(y, t, score, k=0.1, n_bootstrap=0),  # floor(0.8) = 0 rows
        lambda: uplift_at_k(y, t, score, k=3, strategy="by_group", n_bootstrap=0),  # 2 treated rows
        lambda: uplift_at_k(y, t, score, k=0.4, strategy="by_group", n_bootstrap=0),  # floor(0.8) treated rows
        lambda: uplift_at_k(y, t, score, k=True, n_bootstrap=0),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as error:
            call()
        assert error.value.field == "k"


def test_non_numeric_treatment_is_a_validation_error():
    y, score = np.array([1, 0, 1, 0, 1, 0, 1, 0]), np.arange(8.0)
    with pytest.raises(ValidationError) as error:
        qini_coefficient(y, np.array(["yes", "no"] * 4), score, n_bootstrap=0)
    assert error.value.field == "treatment"
    with pytest.raises(ValidationError) as error:
        auuc(["a"] * 8, np.array([1, 0] * 4), score, n_bootstrap=0)
    assert error.value.field == "outcome"


@pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-uplift calls a deprecated scikit-learn helper
def test_against_scikit_uplift_when_installed():
    metrics = pytest.importorskip("sklift.metrics")
    for ties in (False, True):
        y, t, score = _rct(600, 7, ties=ties)
        n, values = metrics.uplift_curve(y, score, t)
        np.testing.assert_allclose(uplift_curve(y, t, score).value, values)
        np.testing.assert_allclose(uplift_curve(y, t, score).n_targeted, n)
        n, values = metrics.qini_curve(y, score, t)
        np.testing.assert_allclose(qini_curve(y, t, score).value, values)
        assert auuc(y, t, score, normalize="perfect", n_bootstrap=0).value == pytest.approx(
            metrics.uplift_auc_score(y, score, t))
        assert qini_coefficient(y, t, score, normalize="perfect", n_bootstrap=0).value == pytest.approx(
            metrics.qini_auc_score(y, score, t))
    y, t, score = _rct(600, 8)
    for strategy in ("overall", "by_group"):
        assert uplift_at_k(y, t, score, k=0.2, strategy=strategy, n_bootstrap=0).value == pytest.approx(
            metrics.uplift_at_k(y, score, t, strategy=strategy, k=0.2))


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    y, t, score = _rct(2000, 9)
    first = qini_coefficient(y, t, score, n_bootstrap=200, random_state=1)
    again = qini_coefficient(y, t, score, n_bootstrap=200, random_state=1)
    other = qini_coefficient(y, t, score, n_bootstrap=200, random_state=2)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low < first.value < first.ci_high
    at_k = uplift_at_k(y, t, score, k=0.5, n_bootstrap=200, random_state=1)
    assert at_k.ci_low < at_k.value < at_k.ci_high
    # The true uplift among the top half by a score correlated with x > 0 is positive and near 0.15 * share.
    assert at_k.ci_high > 0.05


def test_bootstrap_interval_covers_the_truth_in_repeated_experiments():
    rng = np.random.default_rng(10)
    n, covered, trials = 1500, 0, 40
    truth_rate = 0.15  # effect of treatment among x > 0; ranking by x itself puts exactly those on top
    for trial in range(trials):
        x = rng.normal(size=n)
        t = rng.integers(0, 2, n)
        y = (rng.random(n) < 0.2 + t * truth_rate * (x > 0)).astype(int)
        top_share = 0.3  # all of the top 30% have x > 0
        estimate = uplift_at_k(y, t, x, k=top_share, n_bootstrap=300, random_state=trial)
        covered += estimate.ci_low <= truth_rate <= estimate.ci_high
    assert covered / trials >= 0.85


def test_invalid_inputs_fail_loudly():
    with pytest.raises(ValidationError, match="treatment"):
        uplift_curve([0, 1, 1], [0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValidationError, match="both treated and control"):
        qini_curve([0, 1, 1], [1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValidationError, match="binary"):
        auuc([0.5, 1, 1, 0], [0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], normalize="perfect")
    with pytest.raises(ValidationError, match="normalize"):
        auuc([0, 1, 1, 0], [0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], normalize="max")


# ------------------------------------------------------------------------------- causal ranking metrics
def test_causal_precision_and_dcg_match_a_loop_over_users():
    rng = np.random.default_rng(11)
    users = np.repeat(np.arange(30), 12)
    scores = rng.normal(size=len(users))
    effects = rng.normal(size=len(users))
    k = 4
    precision, dcg = [], []
    for user in range(30):
        rows = np.flatnonzero(users == user)
        top = rows[np.argsort(-scores[rows])][:k]
        precision.append(effects[top].sum() / k)
        dcg.append(np.sum(effects[top] / np.log2(np.arange(2, k + 2))))
    assert causal_precision_at_k(users, scores, effects, k=k).value == pytest.approx(np.mean(precision))
    assert causal_dcg_at_k(users, scores, effects, k=k).value == pytest.approx(np.mean(dcg))
    table = top_k(users, np.tile(np.arange(12), 30), scores, k=k)
    assert len(table) == 30 * k and table.groupby("user")["rank"].max().eq(k).all()


def test_ips_effect_is_unbiased_for_the_effect():
    rng = np.random.default_rng(12)
    n = 400_000
    propensity = rng.uniform(0.1, 0.9, n)
    exposure = (rng.random(n) < propensity).astype(int)
    p0, effect = 0.1 + 0.2 * propensity, 0.05 + 0.1 * (propensity > 0.5)
    outcome = (rng.random(n) < p0 + exposure * effect).astype(int)
    estimate = ips_effect(exposure, outcome, propensity)
    assert estimate.mean() == pytest.approx(effect.mean(), abs=4 * estimate.std() / np.sqrt(n))
