"""``causalrec uplift`` on a CSV written from the simulator, and the report section."""

from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from causalrec.cli import app
from causalrec.data.simulate import make_world
from causalrec.exceptions import CausalrecWarning

WORLD = dict(n_user_features=2, n_item_features=2, n_items=10, base_rate=0.1, relevance_scale=2.0,
             popularity_scale=0.5, effect_mean=2.5, effect_scale=0.1, effect_relevance_slope=-1.2,
             logging_noise=0.3, exposure_intercept=-0.5, exposure_slope=1.5)


@pytest.mark.filterwarnings("ignore::causalrec.exceptions.CausalrecWarning")
def test_uplift_command_writes_json_and_report(tmp_path):
    logs = make_world(random_state=1, **WORLD).sample_exposure(1500, random_state=2)
    path = tmp_path / "exposure.csv"
    logs.to_csv(path, index=False)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, [
        "uplift", "--data", str(path), "--treatment", "treatment", "--outcome", "outcome",
        "--confounders", "x_0,x_1,z_0,z_1", "--score", "score", "--estimator", "linear_dr", "--no-refute",
        "--holdout", "0.3", "--json", str(out), "--report", str(tmp_path / "report"),
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["effect"]["estimator"] == "linear_dr"
    low, high = payload["effect"]["ate_interval"]
    assert low < payload["effect"]["ate"] < high
    assert low <= logs["true_effect"].mean() <= high  # the simulator's true average effect of exposure
    assert {row["metric"] for row in payload["uplift_metrics"]} == {"auuc", "qini_coefficient", "uplift_at_0.3"}
    assert payload["n_holdout_rows"] + payload["n_fit_rows"] == len(logs)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["sections"][0]["title"] == "Effect of exposure"
    assert "Estimands" in report["sections"][0]["tables"]


def test_uplift_command_rejects_bad_input(tmp_path):
    result = CliRunner().invoke(app, ["uplift", "--data", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["uplift", "--dataset", "nope"])
    assert result.exit_code == 2


def _one_line(output: str) -> str:
    return " ".join(output.split())  # rich wraps long messages at the console width


def test_uplift_command_refuses_options_the_dataset_would_ignore(tmp_path):
    # Hillstrom's treatment and confounders are built in: these options used to be dropped without a word.
    for options, named in ((["--treatment", "history", "--confounders", "recency"], "--treatment and --confounders"),
                           (["--confounders", "recency"], "--confounders"),
                           (["--data", str(tmp_path / "rows.csv")], "--data")):
        result = CliRunner().invoke(app, ["uplift", "--dataset", "hillstrom", *options, "--estimator", "linear_dr",
                                          "--no-refute", "--holdout", "0"])
        assert result.exit_code == 2, result.output
        assert f"{named} cannot be used with --dataset hillstrom" in _one_line(result.output)


def test_uplift_command_refuses_a_negative_holdout_and_too_few_folds(tmp_path):
    logs = make_world(random_state=1, **WORLD).sample_exposure(300, random_state=2)
    path = tmp_path / "exposure.csv"
    logs.to_csv(path, index=False)
    base = ["uplift", "--data", str(path), "--treatment", "treatment", "--outcome", "outcome",
            "--confounders", "x_0,x_1", "--estimator", "linear_dr", "--no-refute"]
    result = CliRunner().invoke(app, [*base, "--holdout", "-0.2"])
    assert result.exit_code == 2, result.output
    assert "--holdout must be in [0, 1); got -0.2" in _one_line(result.output)
    for cv in ("0", "1"):
        result = CliRunner().invoke(app, [*base, "--cv", cv])
        assert result.exit_code == 2, result.output
        assert f"field 'cv' must be an integer >= 2 (cross-fitting folds); found {cv}" in _one_line(result.output)


def test_uplift_command_refuses_too_few_refutation_simulations_before_fitting(tmp_path, monkeypatch):
    """--simulations below 2 used to fail only after the estimate (and its uplift metrics) had been computed."""
    import causalrec.effects as effects

    def never(*args, **kwargs):
        raise AssertionError("the effect was estimated although the refuters cannot run")

    monkeypatch.setattr(effects, "estimate_effect", never)
    logs = make_world(random_state=1, **WORLD).sample_exposure(300, random_state=2)
    path = tmp_path / "exposure.csv"
    logs.to_csv(path, index=False)
    base = ["uplift", "--data", str(path), "--treatment", "treatment", "--outcome", "outcome",
            "--confounders", "x_0,x_1", "--estimator", "linear_dr"]
    for simulations in ("0", "1"):
        result = CliRunner().invoke(app, [*base, "--simulations", simulations])
        assert result.exit_code == 2, (result.output, result.exception)
        assert f"--simulations {simulations}: expected an integer >= 2" in _one_line(result.output)


def test_uplift_command_prints_each_warning_once_without_a_source_line(tmp_path):
    # Randomised exposure with a constant effect: 'auto' finds no CATE model better than a constant, and says so.
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x_0": rng.normal(size=1500), "x_1": rng.normal(size=1500)})
    frame["t"] = rng.integers(0, 2, len(frame))
    frame["y"] = 0.5 * frame.x_1 + frame.t + rng.normal(size=len(frame))
    frame.to_csv(tmp_path / "table.csv", index=False)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, [
            "uplift", "--data", str(tmp_path / "table.csv"), "--treatment", "t", "--outcome", "y",
            "--confounders", "x_0,x_1", "--candidates", "linear_dml,linear_dr", "--cv", "2", "--no-refute",
        ])
    assert result.exit_code == 0, result.output
    # Outside pytest an escaped warning prints as "uplift.py:81: CausalrecWarning: ..." beside the summary's copy.
    assert not [w for w in escaped if issubclass(w.category, CausalrecWarning)]
    output = " ".join(result.output.split())
    assert output.count("no CATE model beats a constant effect") == 1
    assert "WARNING: no CATE model beats a constant effect" in output
    assert "CausalrecWarning" not in output and ".py:" not in output  # not Python's warning line
