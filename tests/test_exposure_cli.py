"""``causalrec exposure``: logging propensities and position bias of logs (simulated, with the truth known; the
Open Bandit sample) and debiased training on Coat, through the command line with its JSON, report and errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from causalrec import LoggedFeedback, policy, simulate
from causalrec.cli import app
from causalrec.exposure import simulate_position_based_clicks

runner = CliRunner()


@pytest.fixture(scope="module")
def world():
    return simulate.make_world(n_users=300, n_items=12, n_positions=3, random_state=0)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_logs_with_the_old_rankers_scores_recover_the_true_propensities_and_examination(world, tmp_path):
    logs = world.sample_logs(20_000, random_state=1)
    logs.with_pscore(None).to_parquet(tmp_path / "logs.parquet")
    np.save(tmp_path / "old_scores.npy", world.logging_scores[logs.user_id])
    before = _digest(tmp_path / "logs.parquet")
    out, written = tmp_path / "exposure.json", tmp_path / "with_pscore.parquet"
    result = runner.invoke(app, ["exposure", "--logs", str(tmp_path / "logs.parquet"), "--scores",
                                 str(tmp_path / "old_scores.npy"), "--write-logs", str(written), "--json", str(out),
                                 "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, (result.output, result.exception)
    assert _digest(tmp_path / "logs.parquet") == before  # the input is read, never rewritten
    payload = json.loads(out.read_text())
    assert payload["logging_propensity"]["method"].startswith("scores")
    assert (payload["n_rounds"], payload["n_actions"], payload["n_positions"]) == (20_000, 12, 3)
    # The written logs carry the estimate; the simulator logged the truth, so compare.
    estimated = LoggedFeedback.from_parquet(written)
    assert estimated.metadata["pscore_source"].startswith("estimated by causalrec.exposure: scores")
    assert np.median(np.abs(np.log(estimated.pscore / logs.pscore))) < 0.05
    np.testing.assert_array_equal(estimated.action, logs.action)
    # A logger that is not uniform: position bias by intervention harvesting (its accuracy: the next tests).
    assert payload["examination"]["method"].startswith("harvest") and "harvesting" in payload["examination_note"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Logging propensity diagnostics" in html and "Examination by position" in html
    # Off-policy evaluation from the written file lands on the simulator's exact value.
    target = policy.softmax(world.relevance, temperature=0.5, n_positions=3)
    per_round = policy.softmax(world.relevance[logs.user_id], temperature=0.5, n_positions=3)
    parts = []
    for slot in range(3):
        rounds, actions, probs = per_round.support(np.full(logs.n_rounds, slot))
        parts.append(pd.DataFrame({"round": rounds, "action": actions, "position": slot, "prob": probs}))
    frame = pd.concat(parts, ignore_index=True)
    frame.to_parquet(tmp_path / "target.parquet")
    evaluated = runner.invoke(app, ["evaluate", "--logs", str(written), "--target", str(tmp_path / "target.parquet"),
                                    "--estimators", "snips", "--json", str(tmp_path / "ope.json")])
    assert evaluated.exit_code == 0, evaluated.output
    evaluation = json.loads((tmp_path / "ope.json").read_text())
    assert evaluation["metadata"]["pscore_source"].startswith("estimated by causalrec.exposure: scores")
    assert "pscore estimated by causalrec.exposure" in " ".join(evaluated.output.split())
    snips = evaluation["estimates"][0]
    assert abs(snips["value"] - world.policy_value(target)) < 3 * snips["se"]


THETA = (1.0 + np.arange(4)) ** -0.7  # examination per slot of the position-based model
GAMMA = np.linspace(0.05, 0.6, 20)  # attractiveness per item


def _examination_rows(payload):
    rows = payload["examination"]["positions"]
    return [(row["examination"], row["se"], THETA[row["position"]] / THETA[0]) for row in rows[1:]]


def test_a_uniform_logger_gets_the_click_rate_ratio_and_no_correlation(tmp_path):
    clicks = simulate_position_based_clicks(40_000, THETA, GAMMA, ranked=False, random_state=3)
    clicks.with_pscore(np.full(clicks.n_rounds, 1 / clicks.n_actions)).to_parquet(tmp_path / "logs.parquet")
    out = tmp_path / "exposure.json"
    result = runner.invoke(app, ["exposure", "--logs", str(tmp_path / "logs.parquet"), "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    payload = json.loads(out.read_text())
    assert payload["examination"]["method"].startswith("randomized")
    assert payload["logging_propensity"]["diagnostics"]["correlation_with_logged_pscore"] is None
    assert payload["logging_propensity"]["method"].startswith("marginal")
    rows = _examination_rows(payload)
    assert all(abs(estimate - truth) < 4 * se for estimate, se, truth in rows), rows


def test_a_ranker_that_puts_good_items_on_top_gets_harvesting_not_the_click_rate_ratio(tmp_path):
    # No recorded pscore and slots that follow quality: the click rate per slot mixes examination with quality.
    clicks = simulate_position_based_clicks(40_000, THETA, GAMMA, ranked=True, random_state=4)
    clicks.to_parquet(tmp_path / "logs.parquet")
    outputs = {}
    for choice in ("auto", "randomized"):
        outputs[choice] = tmp_path / f"{choice}.json"
        result = runner.invoke(app, ["exposure", "--logs", str(tmp_path / "logs.parquet"), "--examination", choice,
                                     "--json", str(outputs[choice])])
        assert result.exit_code == 0, (result.output, result.exception)
    auto = json.loads(outputs["auto"].read_text())
    assert auto["examination"]["method"].startswith("harvest")
    rows = _examination_rows(auto)
    assert all(abs(estimate - truth) < 4 * se for estimate, se, truth in rows), rows
    confounded = _examination_rows(json.loads(outputs["randomized"].read_text()))
    assert confounded[-1][0] < 0.6 * confounded[-1][2]  # what auto avoided: the bottom slot's bias exaggerated


def test_open_bandit_random_logs(tmp_path):
    # Open Bandit sample (CAUSALREC_DATA_DIR): the logged pscore of the random logger is 1/80 for every round.
    out = tmp_path / "obd.json"
    result = runner.invoke(app, ["exposure", "--dataset", "obd", "--campaign", "men", "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    payload = json.loads(out.read_text())
    assert payload["source"] == {"dataset": "obd", "campaign": "men", "behavior": "random"}
    quantiles = payload["logging_propensity"]["pscore_quantiles"]
    assert 0.5 / 34 < quantiles["median"] < 2 / 34  # 34 items in the men campaign, one per slot
    assert payload["examination"]["method"].startswith("randomized")
    assert sum(row["n_rounds"] for row in payload["examination"]["positions"]) == payload["n_rounds"]
    assert "Position bias: auto: the logged pscore is one number" in " ".join(result.output.split())


def test_coat_trains_naive_and_weighted_models_and_reports_the_published_numbers(coat, tmp_path, monkeypatch):
    import causalrec.exposure.ratings as ratings

    monkeypatch.setattr(ratings, "DEFAULT_GRID", {"n_factors": [16, 32], "l2": [0.3]})  # seconds, not half a minute
    out = tmp_path / "coat.json"
    result = runner.invoke(app, ["exposure", "--dataset", "coat", "--propensity", "shipped", "--json", str(out),
                                 "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, (result.output, result.exception)
    payload = json.loads(out.read_text())
    assert payload["published"]["MF-IPS"] == 1.093 and payload["propensity_source"].startswith("shipped with Coat")
    mse = {row["training"]: row["mcar_mse"] for row in payload["table"]}
    assert mse["ips"] < mse["naive"] and payload["difference"]["ci_high"] < 0
    assert payload["n_test"] == len(coat.test_ratings())
    html = (tmp_path / "report" / "report.html").read_text()
    assert "MSE on the random (MCAR) ratings" in html and "Schnabel et al., ICML 2016" in html


def test_errors_name_the_option(tmp_path):
    world = simulate.make_world(n_users=20, n_items=4, n_positions=2, random_state=0)
    logs = tmp_path / "logs.parquet"
    world.sample_logs(200, random_state=1).to_parquet(logs)
    cases = [
        (["exposure"], "give --logs, or --dataset obd / coat"),
        (["exposure", "--logs", str(logs), "--dataset", "obd"], "give --logs or --dataset, not both"),
        (["exposure", "--dataset", "movielens"], "unknown --dataset 'movielens'; available: obd, coat"),
        (["exposure", "--logs", str(logs), "--examination", "cascade"],
         "--examination: expected one of auto, em, harvest, randomized, none; found 'cascade'"),
        (["exposure", "--dataset", "coat", "--write-logs", str(tmp_path / "x.parquet")],
         "--write-logs " + str(tmp_path / "x.parquet") + ": this applies to logs (--logs or --dataset obd)"),
        (["exposure", "--logs", str(logs), "--write-logs", str(logs)], "would replace --logs"),
        (["exposure", "--logs", str(logs), "--method", "magic"], "field 'method' must be one of"),
        (["exposure", "--logs", str(logs), "--method", "scores"], "field 'scores' must be the old ranker's scores"),
    ]
    for arguments, expected in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output, result.exception)
        assert expected in " ".join(result.output.split()), (arguments, result.output)
