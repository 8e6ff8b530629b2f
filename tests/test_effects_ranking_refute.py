"""ips_effect's clipping and propensity checks; the E-value of the unobserved-common-cause refuter (binary outcomes
only, VanderWeele & Ding 2017)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from causalrec.effects import estimate_effect
from causalrec.effects.ranking import ips_effect
from causalrec.effects.refute import _e_value
from causalrec.exceptions import ValidationError


# ------------------------------------------------------------------------------- ips_effect
def test_ips_effect_clip_is_a_band_below_one_half():
    # p = 0.9 and 0.1 clipped to [0.2, 0.8]: exposed 1 / 0.8, unexposed -1 / (1 - 0.2).
    np.testing.assert_allclose(ips_effect([1, 0], [1.0, 1.0], [0.9, 0.1], clip=0.2), [1.25, -1.25])
    np.testing.assert_allclose(ips_effect([1, 0], [1.0, 1.0], [0.5, 0.25], clip=0.0), [2.0, -4 / 3])
    # clip = 0.8 is the same band written upside down: refused, not silently turned into p = 0.2 everywhere.
    with pytest.raises(ValidationError) as error:
        ips_effect([1, 0], [1.0, 1.0], [0.9, 0.1], clip=0.8)
    assert error.value.field == "clip"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"clip": 0.7}, "clip"),  # np.clip(p, 0.7, 0.3) would set every propensity to 0.3
        ({"clip": 0.5}, "clip"),
        ({"clip": -1.0}, "clip"),
        ({"clip": float("nan")}, "clip"),
        ({"propensity": [np.nan, 0.5]}, "propensity"),
        ({"propensity": [1.5, 0.5]}, "propensity"),
        ({"propensity": [0.5, 1.0], "clip": 0.0}, "propensity"),  # 1 - P = 0
        ({"outcome": [np.nan, 1.0]}, "outcome"),
        ({"exposure": ["yes", "no"]}, "exposure"),
    ],
)
def test_ips_effect_refuses_bad_clip_and_propensities(kwargs, field):
    arguments = {"exposure": [1, 0], "outcome": [1.0, 1.0], "propensity": [0.5, 0.5], **kwargs}
    with pytest.raises(ValidationError) as error:
        ips_effect(**arguments)
    assert error.value.field == field


# ------------------------------------------------------------------------------- E-value
def _rows(n: int, seed: int, binary: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    t = (rng.random(n) < 1 / (1 + np.exp(-0.5 * x1))).astype(int)
    if binary:
        y = (rng.random(n) < 0.2 + 0.1 * (x1 > 0) + 0.25 * t).astype(int)
    else:
        y = x1 + t * (1.0 + 0.5 * x2) + 0.5 * rng.normal(size=n)
    return pd.DataFrame({"t": t, "y": y, "x1": x1, "x2": x2})


def _unobserved(frame: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = estimate_effect(frame, "t", "y", confounders=["x1", "x2"], estimator="linear_dr", random_state=0)
        refutation = result.refute(methods=["unobserved_common_cause"], num_simulations=2)
    return result, refutation["unobserved_common_cause"]


def test_e_value_is_not_reported_for_a_continuous_outcome():
    # (mean_0 + ATE) / mean_0 is no risk ratio here: shifting Y by 100 would change it, not the effect.
    _, refutation = _unobserved(_rows(300, 0, binary=False))
    assert np.isnan(refutation.settings["e_value"])
    assert "not binary" in refutation.settings["e_value_note"] and "not binary" in refutation.reading


def test_e_value_of_a_binary_outcome_is_vanderweele_dings_formula():
    result, refutation = _unobserved(_rows(600, 1, binary=True))
    baseline = float(np.mean(result._nuisances.outcome_control))
    ratio = (baseline + result.ate) / baseline
    ratio = max(ratio, 1 / ratio)
    assert refutation.settings["e_value"] == pytest.approx(ratio + np.sqrt(ratio * (ratio - 1)))
    assert refutation.settings["e_value_note"] == ""


def test_e_value_matches_vanderweele_and_dings_published_example():
    # VanderWeele & Ding (2017, Ann Intern Med): an observed risk ratio of 3.9 has E-value 7.26.
    def stub(outcome, baseline, ate):
        return SimpleNamespace(_prepared=SimpleNamespace(frame=pd.DataFrame({"y": outcome}), outcome="y"),
                               _nuisances=SimpleNamespace(outcome_control=np.array([baseline])), ate=ate)

    value, note = _e_value(stub([0, 1, 1, 0], 0.1, 0.29))
    assert value == pytest.approx(7.26, abs=0.005) and note == ""
    value, note = _e_value(stub([0.5, 1.7, 2.0, 0.1], 0.1, 0.29))
    assert np.isnan(value) and "not binary" in note
