"""The command line: every command answers --help; evaluate reads files and writes the documented JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from causalrec import policy, simulate
from causalrec.cli import app

runner = CliRunner()
COMMANDS = sorted(typer.main.get_command(app).commands)


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_evaluate_from_parquet_files_writes_the_json_contract(tmp_path):
    world = simulate.make_world(n_users=100, n_items=8, n_positions=2, random_state=0)
    logs = world.sample_logs(3000, random_state=1)
    logs.to_parquet(tmp_path / "logs.parquet")
    target = policy.softmax(world.relevance[logs.user_id], 1.0, 2)
    target.to_dense()  # small enough; write it in the long format of the CLI
    rounds, actions, probs, positions = [], [], [], []
    for slot in range(2):
        r, a, p = target.support(np.full(3000, slot))
        rounds.append(r), actions.append(a), probs.append(p), positions.append(np.full(len(r), slot))
    import pandas as pd

    pd.DataFrame(
        {"round": np.concatenate(rounds), "action": np.concatenate(actions),
         "position": np.concatenate(positions), "prob": np.concatenate(probs)}
    ).to_parquet(tmp_path / "target.parquet")
    out = tmp_path / "out.json"
    result = runner.invoke(
        app,
        ["evaluate", "--logs", str(tmp_path / "logs.parquet"), "--target", str(tmp_path / "target.parquet"),
         "--estimators", "ips,snips,dr", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["n_rounds"] == 3000
    assert [e["estimator"] for e in payload["estimates"]] == ["ips", "snips", "dr"]
    for estimate in payload["estimates"]:
        assert set(estimate) >= {"estimator", "value", "ci_low", "ci_high", "se"}
    assert {"ess", "max_weight", "mean_weight", "warnings", "reward_model_fit"} <= set(payload["diagnostics"])
    assert payload["diagnostics"]["reward_model_fit"]["skill"] > 0  # clicks depend on user and item here
    truth = world.policy_value(policy.softmax(world.relevance, 1.0, 2))
    ips = payload["estimates"][0]
    assert abs(ips["value"] - truth) < 4 * ips["se"]


def test_evaluate_states_a_reliability_warning_once_and_before_the_estimates(tmp_path):
    """Run as a user runs it (a subprocess, where Python's own warning output reaches the terminal): the
    low-ESS warning heads the summary and is not printed a second time by the warnings machinery."""
    import pandas as pd

    world = simulate.make_world(n_users=200, n_items=30, n_positions=1, logging_epsilon=0.01, random_state=1)
    logs = world.sample_logs(3000, random_state=0)
    logs.to_parquet(tmp_path / "logs.parquet")
    worst = np.argmax(-world.logging_scores[logs.user_id], axis=1)  # what the logger almost never shows
    pd.DataFrame({"round": np.arange(3000), "action": worst, "position": 0, "prob": 1.0}).to_parquet(
        tmp_path / "target.parquet")
    finished = subprocess.run(
        [sys.executable, "-c", "from causalrec.cli import main; main()", "evaluate", "--logs",
         str(tmp_path / "logs.parquet"), "--target", str(tmp_path / "target.parquet"), "--estimators", "ips"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    output = finished.stdout + finished.stderr
    assert output.count("effective sample size") == 1
    assert output.index("WARNING: effective sample size") < output.index("estimator")


def test_evaluate_keeps_each_user_in_one_fold_on_request(tmp_path):
    world = simulate.make_world(n_users=40, n_items=4, n_positions=1, random_state=0)
    logs = world.sample_logs(800, random_state=1)
    logs.to_parquet(tmp_path / "logs.parquet")
    import pandas as pd

    rounds = np.repeat(np.arange(800), 4)
    pd.DataFrame({"round": rounds, "action": np.tile(np.arange(4), 800), "position": 0, "prob": 0.25}).to_parquet(
        tmp_path / "target.parquet")
    files = ["evaluate", "--logs", str(tmp_path / "logs.parquet"), "--target", str(tmp_path / "target.parquet"),
             "--estimators", "dm,dr"]
    out = tmp_path / "out.json"
    result = runner.invoke(app, [*files, "--fold-groups", "user_id", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metadata"]["fold_groups"] == len(np.unique(logs.user_id))
    result = runner.invoke(app, [*files, "--fold-groups", "household"])
    assert result.exit_code == 2 and "'household' is not a column" in result.output
    # A grouping key is not a feature: a text key (which as context would be refused as non-numeric) works.
    plain = logs.to_dataframe().assign(household=[f"h{u // 2}" for u in logs.user_id])
    plain.to_parquet(tmp_path / "plain.parquet")
    files[2] = str(tmp_path / "plain.parquet")
    result = runner.invoke(app, [*files, "--fold-groups", "household", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metadata"]["fold_groups"] == len(set(plain.household))


def test_evaluate_reports_bad_input_without_a_traceback(tmp_path):
    world = simulate.make_world(n_users=20, n_items=4, n_positions=1, random_state=0)
    logs = world.sample_logs(50, random_state=1)
    logs.to_parquet(tmp_path / "logs.parquet")
    import pandas as pd

    pd.DataFrame({"round": [0], "action": [0], "position": [0], "prob": [1.0]}).to_parquet(tmp_path / "t.parquet")
    result = runner.invoke(app, ["evaluate", "--logs", str(tmp_path / "logs.parquet"), "--target", str(tmp_path / "t.parquet")])
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # the console wraps long lines
    assert "field 'prob'" in output and "round 1, position 0 (no entries)" in output
    assert "first offending row: 1" in output and "Traceback" not in output


def test_evaluate_errors_print_bracketed_text_and_refuse_an_empty_estimator_list(tmp_path):
    """Messages are data, not rich markup: '[position,]' must reach the user. An empty estimator list is a one-line
    error with exit code 2 and no JSON written (it used to crash in summary())."""
    world = simulate.make_world(n_users=20, n_items=4, n_positions=1, random_state=0)
    logs = world.sample_logs(50, random_state=1)
    logs.to_parquet(tmp_path / "logs.parquet")
    import pandas as pd

    frame = pd.DataFrame({"round": np.arange(50), "action": 0, "position": 0, "prob": 1.0})
    frame.drop(columns="prob").to_parquet(tmp_path / "no_prob.parquet")
    frame.to_parquet(tmp_path / "target.parquet")
    result = runner.invoke(app, ["evaluate", "--logs", str(tmp_path / "logs.parquet"),
                                 "--target", str(tmp_path / "no_prob.parquet")])
    assert result.exit_code == 2
    assert "round, action, [position,] prob" in " ".join(result.output.split())
    out = tmp_path / "empty.json"
    result = runner.invoke(app, ["evaluate", "--logs", str(tmp_path / "logs.parquet"), "--target",
                                 str(tmp_path / "target.parquet"), "--estimators", "", "--json", str(out)])
    assert result.exit_code == 2
    assert "field 'estimators' must be at least one of" in " ".join(result.output.split())
    assert not out.exists()


def test_select_from_files_ranks_candidates_and_estimates_the_true_values(tmp_path):
    """``select --logs --scores``: every array of the .npz is a candidate (its greedy top-L policy); the oracle's
    estimated value covers the simulator's exact value of that policy and it ranks above pure noise."""
    world = simulate.make_world(n_users=200, n_items=8, n_positions=2, random_state=0)
    logs = world.sample_logs(8000, random_state=1)
    logs.to_parquet(tmp_path / "logs.parquet")
    noise = np.random.default_rng(0).normal(size=(logs.n_rounds, 8))
    np.savez(tmp_path / "scores.npz", oracle=world.relevance[logs.user_id], noise=noise)
    out = tmp_path / "board.json"
    result = runner.invoke(app, ["select", "--logs", str(tmp_path / "logs.parquet"), "--scores",
                                 str(tmp_path / "scores.npz"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    board = {row["candidate"]: row for row in json.loads(out.read_text())["leaderboard"]}
    assert set(board) == {"oracle", "noise"}
    truth = world.policy_value(policy.greedy_top_k(world.relevance, 2))
    oracle = board["oracle"]
    assert abs(oracle["value"] - truth) < 3 * oracle["value_se"]
    assert oracle["rank_by_uplift"] == 1 and oracle["uplift"] > board["noise"]["uplift"]
    # The README's next step plans the A/B test from this file: the control's rate is the logs' own mean.
    plan_out = tmp_path / "plan.json"
    planned = runner.invoke(app, ["plan", "--from-json", str(out), "--daily-traffic", "200000", "--json",
                                  str(plan_out)])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(plan_out.read_text())
    assert plan["design"]["settings"]["metric_parameters"]["baseline_rate"] == pytest.approx(logs.reward.mean())


def test_unreadable_input_files_are_one_line_errors_naming_the_option(tmp_path):
    """A missing file, a CSV passed as parquet, a single .npy array where an .npz archive of candidates is expected
    and a malformed CSV: exit 2 with the option, the file and the expectation, never a traceback (exit 1)."""
    world = simulate.make_world(n_users=20, n_items=4, n_positions=1, random_state=0)
    good_logs = tmp_path / "logs.parquet"
    world.sample_logs(50, random_state=1).to_parquet(good_logs)
    text = tmp_path / "logs.csv"
    text.write_text("action,reward\n0,1\n")
    array = tmp_path / "scores.npy"
    np.save(array, np.zeros((50, 4)))
    broken = tmp_path / "broken.csv"
    broken.write_text('a,b\n1,"unterminated\n')
    missing = tmp_path / "missing.parquet"
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    cases = [
        (["evaluate", "--logs", str(missing), "--target", str(good_logs)], "--logs", missing, "parquet"),
        (["evaluate", "--logs", str(text), "--target", str(good_logs)], "--logs", text, "parquet"),
        (["evaluate", "--logs", str(good_logs), "--target", str(text)], "--target", text, "parquet"),
        (["select", "--logs", str(good_logs), "--scores", str(array)], "--scores", array, ".npz"),
        (["select", "--logs", str(missing), "--scores", str(array)], "--logs", missing, "parquet"),
        (["select", "--logs", str(good_logs), "--scores", str(empty)], "--scores", empty, ".npz"),
        (["uplift", "--data", str(broken), "--treatment", "a", "--outcome", "b"], "--data", broken, "CSV"),
    ]
    for arguments, option, path, kind in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output, result.exception)
        squeezed = "".join(result.output.split())  # rich wraps long lines, possibly inside the path
        assert "".join(f"{option} {path}: expected a readable {kind} file".split()) in squeezed, result.output
    result = runner.invoke(app, ["plan", "--from-json", str(tmp_path), "--daily-traffic", "1000"])
    assert result.exit_code == 2 and "IsADirectoryError" in result.output, result.output


def test_unwritable_outputs_fail_before_any_work(tmp_path, monkeypatch):
    """An output that cannot be written is refused before the command computes anything (a long run must not be
    lost at its end): a folder given as a file, a file given as a folder, a folder that cannot be created."""
    import causalrec.ope.open_bandit as open_bandit

    def never(*args, **kwargs):
        raise AssertionError("the evaluation ran although its output cannot be written")

    monkeypatch.setattr(open_bandit, "evaluate_open_bandit", never)
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    plan = ["plan", "--metric", "binary", "--baseline", "0.05", "--mde-rel", "0.02"]
    cases = [
        (["evaluate", "--dataset", "obd", "--json", str(tmp_path)], f"--json {tmp_path}: expected a file name"),
        ([*plan, "--report", str(a_file)], f"--report {a_file}: expected a folder; found a file"),
        ([*plan, "--json", str(a_file / "plan.json")], f"--json {a_file / 'plan.json'}: expected a folder"),
        (["train", "--dataset", "obd", "--out", str(a_file / "run")], f"--out {a_file / 'run'}: cannot write there"),
    ]
    for arguments, expected in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output, result.exception)
        assert "".join(expected.split()) in "".join(result.output.split()), result.output
    # A writable output passes the check without leaving its scratch file behind.
    out = tmp_path / "new" / "plan.json"
    result = runner.invoke(app, [*plan, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["plan.json"]


def test_main_turns_an_os_error_into_one_line_unless_verbose(monkeypatch, capsys):
    import logging

    import causalrec.cli as cli

    def broken():
        raise PermissionError(13, "Permission denied", "/data/logs.parquet")

    monkeypatch.setattr(cli, "app", broken)
    root = logging.getLogger()
    previous = root.level
    try:
        root.setLevel(logging.WARNING)
        with pytest.raises(SystemExit) as stopped:
            cli.main()
        assert stopped.value.code == 2
        assert "PermissionError" in capsys.readouterr().err
        root.setLevel(logging.INFO)  # what --verbose sets: the traceback is kept
        with pytest.raises(PermissionError):
            cli.main()
    finally:
        root.setLevel(previous)


@pytest.mark.slow
def test_demo_writes_an_html_and_a_json_report_with_the_truth(tmp_path):
    import os

    if not os.environ.get("CAUSALREC_DATA_DIR"):
        pytest.skip("CAUSALREC_DATA_DIR is not set (the demo would download the Open Bandit sample)")
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--campaigns", "men", "--out", str(out), "--no-select"])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text()
    assert "<img" in html and "bts &lt;- random" in html and "random &lt;- bts" in html
    payload = json.loads((out / "report.json").read_text())
    evaluations = payload["sections"][0]["data"]["evaluations"]
    assert {(e["evaluation"], e["behavior"]) for e in evaluations} == {("bts", "random"), ("random", "bts")}
    truths = {e["evaluation"]: e["truth"] for e in evaluations}
    # On-policy click rates of the men campaign (the data README's measured facts).
    assert round(truths["bts"], 4) == 0.0069 and round(truths["random"], 4) == 0.0046


def _simulated_open_bandit_evaluation(evaluation: str = "bts", behavior: str = "random"):
    """An OpenBanditEvaluation built from the simulator: a near-deterministic logger and a target on what it almost
    never shows, so the result carries a low-ESS warning; DM has no interval."""
    import pandas as pd

    from causalrec.ope import evaluate_policy
    from causalrec.ope.open_bandit import OpenBanditEvaluation

    world = simulate.make_world(n_users=200, n_items=30, n_positions=1, logging_epsilon=0.01, random_state=1)
    logs = world.sample_logs(3000, random_state=0)
    worst = np.argmax(-world.logging_scores[logs.user_id], axis=1)
    target = pd.DataFrame({"round": np.arange(3000), "action": worst, "position": 0, "prob": 1.0})
    result = evaluate_policy(logs, target, estimators=["ips", "dm"], random_state=0)
    return OpenBanditEvaluation(campaign="men", behavior=behavior, evaluation=evaluation, target="simulated",
                                truth=float(logs.reward.mean()), truth_se=0.01, result=result)


@pytest.mark.filterwarnings("ignore::causalrec.exceptions.CausalrecWarning")
def test_ope_report_shows_each_estimators_note_and_no_coverage_without_an_interval(tmp_path):
    """The notes (why DM has no interval, how an interval is built) were in report.json only; DM's covers_truth
    read False, as if an interval had missed the truth."""
    from causalrec.report import Report
    from causalrec.report.ope import ope_truth_section

    evaluation = _simulated_open_bandit_evaluation()
    frame = evaluation.to_frame().set_index("estimator")
    assert frame.loc["dm", "covers_truth"] is None and isinstance(frame.loc["ips", "covers_truth"], bool | np.bool_)
    report = Report("ope")
    report.add(ope_truth_section([evaluation]))
    html_path, json_path = report.write(tmp_path)
    rows = {row["estimator"]: row for row in json.loads(json_path.read_text())["sections"][0]["tables"][
        "Estimates, intervals and relative error"]}
    assert rows["dm"]["ci_low"] is None and rows["dm"]["covers_truth"] is None
    assert isinstance(rows["ips"]["covers_truth"], bool)
    dm_note = evaluation.result["dm"].note
    assert dm_note and rows["dm"]["note"] == dm_note
    assert dm_note.replace("'", "&#x27;") in html_path.read_text() or dm_note in html_path.read_text()


def test_report_write_keeps_the_previous_pair_when_the_json_cannot_be_encoded(tmp_path):
    """report.html and report.json are one document: a payload that cannot be encoded must not replace the HTML
    and leave the old JSON beside it."""
    from causalrec.report import Report, Section

    good = Report("first")
    good.add(Section("numbers", data={"value": 1.0}))
    good.write(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("report.html", "report.json")}
    bad = Report("second")
    bad.add(Section("numbers", data={"value": object()}))
    with pytest.raises(TypeError):
        bad.write(tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]  # no temporary file left


def test_demo_states_each_warning_once(tmp_path, monkeypatch):
    """The demo printed every warning of its evaluations before their summaries, which state them again."""
    import causalrec.ope.open_bandit as open_bandit

    def simulated(campaign, behavior, evaluation, **options):
        return _simulated_open_bandit_evaluation(evaluation, behavior)

    monkeypatch.setattr(open_bandit, "evaluate_open_bandit", simulated)
    result = runner.invoke(app, ["demo", "--campaigns", "men", "--no-select", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, (result.output, result.exception)
    squeezed = "".join(result.output.split())
    assert squeezed.count("effectivesamplesizeis") == 2, result.output  # once in each of the two summaries
    assert (tmp_path / "demo" / "report.html").exists()


def test_train_refuses_an_unknown_device_before_any_work():
    result = runner.invoke(app, ["train", "--dataset", "obd", "--out", "unused", "--device", "tpu"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "field 'device' must be 'auto', 'cpu', 'cuda'" in " ".join(result.output.split())
    assert "found 'tpu'" in result.output


def test_train_obd_compares_the_click_model_with_the_base_rate_row_by_row(tmp_path):
    # Open Bandit sample (CAUSALREC_DATA_DIR): about 8 test clicks, so two log losses alone cannot say which is better.
    result = runner.invoke(app, ["train", "--dataset", "obd", "--campaign", "men", "--out", str(tmp_path / "run"),
                                 "--epochs", "1", "--hidden-size", "16", "--layers", "1", "--no-progress"])
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    comparison, tested = metrics["log_loss_vs_constant"], metrics["test_metrics"]
    assert comparison["difference"] == pytest.approx(
        tested["transformer"]["log_loss"] - tested["constant_base_rate"]["log_loss"], abs=1e-12)
    assert comparison["ci_low"] < comparison["difference"] < comparison["ci_high"]
    assert comparison["n"] == tested["transformer"]["n"] and 0 < comparison["n_positive"] < 50
    output = " ".join(result.output.split())
    assert f"on {comparison['n']} test rows with {comparison['n_positive']} clicks:" in output
    # The fit in one line: the epoch kept and what its validation number measures (as metrics.json records it).
    training = metrics["training"]
    assert training["best_epoch"] == 1 and "binary cross-entropy" in training["validation_criterion"]
    assert (f"training: 1 epoch, ran to --epochs; weights of epoch 1 kept, validation "
            f"{training['best_validation_loss']:.5g} = {training['validation_criterion']}") in output
    from causalrec.cli.train import _log_loss_verdict

    def verdict(low, high):
        return _log_loss_verdict({"difference": (low + high) / 2, "ci_low": low, "ci_high": high, "alpha": 0.05,
                                  "n": 2000, "n_positive": 8})

    assert verdict(-0.002, -0.001).endswith("better than the constant base rate")
    assert "WORSE than the constant base rate" in verdict(0.001, 0.002)
    assert verdict(-0.001, 0.001).endswith("not distinguishable from the constant base rate")


def test_verbose_keeps_the_traceback_of_an_unreadable_input_file(tmp_path):
    """README: a missing or malformed input file is a one-line error naming the option, and --verbose keeps the
    traceback (it used to print the same one line with or without --verbose)."""
    command = [sys.executable, "-c", "from causalrec.cli import main; main()"]
    arguments = ["evaluate", "--logs", str(tmp_path / "missing.parquet"), "--target", str(tmp_path / "t.parquet")]
    for verbose in (False, True):
        finished = subprocess.run([*command, *(["--verbose"] if verbose else []), *arguments], capture_output=True,
                                  text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert finished.returncode == 2, finished.stderr[-2000:]
        assert "--logs" in finished.stderr and "expected a readable parquet file" in finished.stderr
        assert ("Traceback" in finished.stderr) is verbose, finished.stderr[-2000:]
