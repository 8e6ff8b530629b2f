"""Every command refuses an option that would be ignored in the mode it runs in (another data set's options, the
bootstrap's settings with analytic intervals, another metric's moments, ...), naming the option and where it
applies, before any work. An option passed at its default changes nothing and is accepted."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from causalrec import simulate
from causalrec.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    path = tmp_path_factory.mktemp("unused") / "logs.parquet"
    world = simulate.make_world(n_users=20, n_items=4, n_positions=2, random_state=0)
    world.sample_logs(200, random_state=1).to_parquet(path)
    return str(path)


FIXED_PLAN = ["plan", "--metric", "binary", "--baseline", "0.05", "--mde-rel", "0.02"]

CASES = [
    # exposure: Coat takes no log options; logs take no Coat options; files take no Open Bandit options
    (["exposure", "--dataset", "coat", "--method", "marginal", "--clip", "0.01"],
     "--method marginal, --clip 0.01: these apply to logs (--logs or --dataset obd); found with --dataset coat"),
    (["exposure", "--dataset", "coat", "--examination", "em"], "--examination em: this applies to logs"),
    (["exposure", "--dataset", "coat", "--campaign", "men"], "--campaign men: this applies to logs"),
    (["exposure", "--dataset", "obd", "--propensity", "naive_bayes"],
     "--propensity naive_bayes: this applies to --dataset coat; found with --dataset obd, where it would be ignored"),
    (["exposure", "--logs", "{logs}", "--alpha", "0.1"], "--alpha 0.1: this applies to --dataset coat; found with --logs"),
    (["exposure", "--logs", "{logs}", "--behavior", "bts"], "--behavior bts: this applies to --dataset obd"),
    # evaluate: bootstrap settings need --ci bootstrap; Open Bandit options need --dataset obd
    (["evaluate", "--dataset", "obd", "--n-bootstrap", "200"],
     "--n-bootstrap 200: this applies to --ci bootstrap; found with --ci analytic"),
    (["evaluate", "--dataset", "obd", "--bootstrap-method", "multinomial"], "--bootstrap-method multinomial: this"),
    (["evaluate", "--logs", "{logs}", "--target", "{logs}", "--evaluation", "random", "--campaign", "men"],
     "--campaign men, --evaluation random: these apply to --dataset obd; found with --logs"),
    (["evaluate", "--dataset", "obd", "--logs", "{logs}"], "give --logs and --target, or --dataset, not both"),
    # select: Open Bandit options need --dataset obd; a data set excludes files
    (["select", "--dataset", "simulate", "--campaign", "women"],
     "--campaign women: this applies to --dataset obd; found with --dataset simulate"),
    (["select", "--dataset", "obd", "--scores", "{logs}"], "give --logs and --scores, or --dataset, not both"),
    # uplift: the Hillstrom arm needs --dataset hillstrom
    (["uplift", "--data", "{logs}", "--treatment", "t", "--outcome", "y", "--arm", "womens"],
     "--arm womens: this applies to --dataset hillstrom; found with --data"),
    # train: the sequence options are completejourney's, the campaign Open Bandit's
    (["train", "--dataset", "obd", "--out", "{tmp}/run", "--loss", "sampled_bce", "--max-items", "500"],
     "--max-items 500, --loss sampled_bce: these apply to --dataset completejourney; found with --dataset obd"),
    # demo: the plan's settings need the selection and the plan
    (["demo", "--out", "{tmp}/run", "--no-select", "--mde-rel", "0.1"],
     "--mde-rel 0.1: this applies to the A/B test plan; found with --no-plan or --no-select"),
    # plan: another metric's moments, offline options with a fixed effect, a fixed design's looks, no traffic
    (FIXED_PLAN + ["--sd", "2"], "--sd 2.0: this applies to another metric kind (see --help); found with --metric binary"),
    (["plan", "--metric", "continuous", "--sd", "2", "--mde-abs", "0.1", "--num-mean", "3"], "--num-mean 3.0: this"),
    (["plan", "--metric", "ratio", "--baseline", "0.1", "--num-mean", "1", "--den-mean", "10", "--num-sd", "1",
      "--den-sd", "5", "--num-den-corr", "0.5", "--mde-rel", "0.05"], "--baseline 0.1: this applies to another metric"),
    (FIXED_PLAN + ["--policy", "model_1", "--prior-sd", "0.01"],
     "--policy model_1, --prior-sd 0.01: these apply to --from-json; found with a fixed effect"),
    (FIXED_PLAN + ["--looks", "3"], "--looks 3: this applies to a sequential design; found with --sequential none"),
    (FIXED_PLAN + ["--round-weeks"], "--round-weeks: this applies to a duration (--daily-traffic)"),
]


@pytest.mark.parametrize(("arguments", "expected"), CASES, ids=[" ".join(case[0][:3]) for case in CASES])
def test_an_ignored_option_is_refused_by_name(arguments, expected, logs, tmp_path):
    arguments = [value.replace("{logs}", logs).replace("{tmp}", str(tmp_path)) for value in arguments]
    out = tmp_path / "new" / "out.json"
    result = runner.invoke(app, arguments + ([] if arguments[0] in ("train", "demo") else ["--json", str(out)]))
    assert result.exit_code == 2, (arguments, result.output, result.exception)
    assert expected in " ".join(result.output.split()), (arguments, result.output)
    # refused before any work: not even the output folders are created
    assert not (tmp_path / "new").exists() and not (tmp_path / "run").exists()


def test_options_at_their_defaults_or_where_they_apply_are_accepted(tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, FIXED_PLAN + ["--looks", "5", "--target-assurance", "0.8", "--sequential", "pocock",
                                              "--looks", "3", "--daily-traffic", "1000", "--round-weeks",
                                              "--json", str(out)])
    assert result.exit_code == 0, result.output
    plan = json.loads(out.read_text())
    assert plan["sequential"]["n_looks"] == 3 and plan["duration"]["rounded_to_weeks"] is True
    assert plan["duration"]["days"] == 7 * plan["duration"]["weeks"]


def test_the_demo_plans_for_a_fixed_effect_when_the_leading_uplift_is_flagged_unreliable():
    from types import SimpleNamespace

    from causalrec.cli.demo import _plan

    def board(reliable: bool) -> SimpleNamespace:
        comparisons = [
            {"policy": "lead", "baseline": "logging", "estimator": "dr", "difference": 0.004, "se": 0.002,
             "ci_low": -0.001, "ci_high": 0.009, "reliable": reliable, "ess": 122.0},
            {"policy": "other", "baseline": "logging", "estimator": "dr", "difference": 0.0005, "se": 0.0004,
             "ci_low": -0.0003, "ci_high": 0.0013, "reliable": True, "ess": 9000.0},
        ]
        return SimpleNamespace(to_dict=lambda: {"baseline": "logging", "comparisons": comparisons}, n_rounds=10_000)

    flagged, title = _plan(board(False), 0.004, 100_000, 0.05)
    assert flagged.offline is None and flagged.design.effect_relative == pytest.approx(0.05)
    assert flagged.design.effect_absolute == pytest.approx(0.0002)
    assert "fixed +5.0% effect" in title
    assert flagged.warnings[0].startswith("planned for a fixed effect of +5.0% (--mde-rel), not for the leading "
                                          "candidate's offline uplift: 'lead' leads with +0.004 (dr, effective sample "
                                          "size 122 of 10000)")
    trusted, title = _plan(board(True), 0.004, 100_000, 0.05)
    assert trusted.effect.policy == "lead" and trusted.effect.raw_estimate == 0.004 and title.endswith(", lead")
    assert not [w for w in trusted.warnings if "unreliable" in w or "fixed effect" in w]
