"""Hillstrom's randomised e-mail experiment: the difference in means is the truth for every e-mail arm.

Skipped when the reference data are not in ``CAUSALREC_DATA_DIR``.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from lightgbm import LGBMClassifier, LGBMRegressor

from causalrec.effects import estimate_effect
from causalrec.effects.examples import HILLSTROM_CONFOUNDERS, hillstrom_arm
from causalrec.effects.uplift_metrics import qini_coefficient

pytestmark = pytest.mark.data

# Difference in visit rates against no e-mail with its 95% interval (shared/data README: arm means 0.18276,
# 0.15140, 0.10617 over 21,307 / 21,387 / 21,306 customers).
RANDOMISED = {"mens": (0.0700, 0.0832), "womens": (0.0389, 0.0516)}
PUBLISHED_VISIT_RATE = {"mens": 0.18276, "womens": 0.15140, "none": 0.10617}


def _light_nuisances():
    """Smaller LightGBM nuisances than the defaults keep these 43k-row fits fast (visit has little signal)."""
    options = dict(n_estimators=60, learning_rate=0.1, num_leaves=7, min_child_samples=50, n_jobs=1, verbose=-1)
    return {"outcome_model": LGBMRegressor(**options), "propensity_model": LGBMClassifier(**options)}


def _arm(arm):
    try:
        return hillstrom_arm(arm)
    except FileNotFoundError as error:
        pytest.skip(f"Hillstrom data not available: {error}")


@pytest.mark.parametrize("arm", ["mens", "womens"])
def test_observational_estimate_recovers_the_randomised_ate(arm):
    rows = _arm(arm)
    before = rows.copy()
    result = estimate_effect(rows, treatment="email", outcome="visit", confounders=HILLSTROM_CONFOUNDERS,
                             estimator="linear_dr", cv=2, random_state=0, **_light_nuisances())
    low, high = RANDOMISED[arm]
    assert low <= result.ate <= high
    # The naive difference is the randomised estimate itself; it must agree with the published arm means.
    assert low < result.naive_difference < high
    assert result.naive_difference == pytest.approx(PUBLISHED_VISIT_RATE[arm] - PUBLISHED_VISIT_RATE["none"], abs=1e-5)
    # Random assignment: the cross-fitted propensity model finds no signal.
    auc, se = result.diagnostics["propensity_auc"], result.diagnostics["propensity_auc_se"]
    assert abs(auc - 0.5) < max(3 * se, 0.01)
    assert rows.equals(before)


def test_qini_of_the_cate_model_on_held_out_customers_has_an_interval():
    rows = _arm("mens")
    # A third of the customers keeps the test fast: fit on 20%, score the ranking on another 13%.
    split = np.random.default_rng(0).random(len(rows))
    result = estimate_effect(rows[split < 0.2], treatment="email", outcome="visit",
                             confounders=HILLSTROM_CONFOUNDERS, estimator="linear_dr", cv=2, random_state=0,
                             **_light_nuisances())
    held_out = rows[(split >= 0.2) & (split < 0.33)]
    metrics = result.uplift_metrics(held_out, n_bootstrap=100, random_state=1).set_index("metric")
    qini = metrics.loc["qini_coefficient"]
    assert qini.ci_low <= qini.value <= qini.ci_high and qini.ci_high - qini.ci_low > 0
    outcome, email = held_out["visit"].to_numpy(float), held_out["email"].to_numpy(int)
    # The email was randomised: ranking the same customers at random has an expected Qini of 0, which its
    # bootstrap interval must hold.
    shuffled = qini_coefficient(outcome, email, np.random.default_rng(2).random(len(held_out)), n_bootstrap=100,
                                random_state=1)
    assert shuffled.ci_low < 0 < shuffled.ci_high
    # The reported value is the Qini of the model's CATE ranking of those customers; with the "perfect" scale it
    # is scikit-uplift's qini_auc_score (the reference implementation) when that is installed.
    assert qini.value == pytest.approx(qini_coefficient(outcome, email, result.cate(held_out), n_bootstrap=0).value)
    try:
        from sklift.metrics import qini_auc_score
    except ImportError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-uplift calls a deprecated scikit-learn helper
        reference = qini_auc_score(outcome, result.cate(held_out), email)
    ours = qini_coefficient(outcome, email, result.cate(held_out), normalize="perfect", n_bootstrap=0).value
    assert ours == pytest.approx(reference)
    json.dumps(result.to_dict())
