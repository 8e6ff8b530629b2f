"""``causalrec plan`` and the planning report section."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from causalrec.cli import app
from causalrec.planning import BinaryMetric, plan_experiment, plan_from_offline
from causalrec.report import Report, Section
from causalrec.report.planning import planning_section

runner = CliRunner()


def selection_file(tmp_path, differences=(0.0015, 0.0008, 0.0002)):
    comparisons = [
        {"policy": f"model_{i}", "baseline": "production", "estimator": "dr", "difference": d, "se": 0.0006,
         "ci_low": d - 0.0012, "ci_high": d + 0.0012}
        for i, d in enumerate(differences)
    ]
    estimates = [{"policy": "production", "estimator": "dr", "value": 0.05, "se": 0.0004, "ci_low": 0.0492,
                  "ci_high": 0.0508}]
    path = tmp_path / "selection.json"
    path.write_text(json.dumps({"estimates": estimates, "comparisons": comparisons}))
    return path


def test_help_lists_the_options():
    result = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for option in ("--metric", "--baseline", "--mde-rel", "--method", "--ratio", "--arms", "--cuped-rho",
                   "--daily-traffic", "--from-json", "--policy", "--sequential", "--json"):
        assert option in result.output


def test_plan_writes_json_with_the_convention(tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", "--metric", "binary", "--baseline", "0.05", "--mde-rel", "0.02",
                                 "--alpha", "0.05", "--power", "0.8", "--method", "cohen_h", "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["variance_convention"] == "cohen_h"
    assert abs(payload["design"]["n_treatment"] - 752_683.95) <= 0.005  # oracle value from the issue
    assert payload["assumptions"] and payload["design"]["settings"]["variance_convention_description"]
    assert "752684" in result.output


def test_plan_with_arms_sequential_traffic_and_cuped(tmp_path):
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", "--baseline", "0.1", "--mde-rel", "0.05", "--arms", "2", "--correction",
                                 "holm", "--cuped-rho", "0.3", "--sequential", "obrien_fleming", "--looks", "4",
                                 "--daily-traffic", "50000", "--round-weeks", "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["design"]["settings"]["alpha_per_comparison"] == pytest.approx(0.025)
    assert payload["design"]["settings"]["variance_factor"] == pytest.approx(0.91)
    assert payload["sequential"]["n_looks"] == 4 and payload["duration"]["days"] % 7 == 0
    assert payload["max_total"] == 2 * payload["max_n_treatment"] + payload["max_n_control"]


def test_plan_from_an_offline_selection(tmp_path):
    out = tmp_path / "plan.json"
    report_dir = tmp_path / "report"
    result = runner.invoke(app, ["plan", "--from-json", str(selection_file(tmp_path)), "--json", str(out),
                                 "--report", str(report_dir)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["effect"]["policy"] == "model_0" and payload["effect"]["method"] == "empirical_bayes"
    assert payload["design"]["settings"]["metric_parameters"]["baseline_rate"] == 0.05  # from the estimates
    assert 0 < payload["assurance"] < 1  # a probability of success, not a certainty
    assert (report_dir / "report.html").exists()
    picked = runner.invoke(app, ["plan", "--from-json", str(selection_file(tmp_path)), "--policy", "model_1",
                                 "--baseline", "0.05", "--json", str(out)])
    assert picked.exit_code == 0, picked.output
    assert json.loads(out.read_text())["effect"]["policy"] == "model_1"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (["--baseline", "1.5", "--mde-rel", "0.02"], "baseline"),
        (["--baseline", "0.05", "--mde-rel", "0.02", "--power", "1.2"], "power"),
        (["--baseline", "0.05"], "mde_abs/mde_rel"),
        (["--metric", "continuous", "--mde-abs", "0.1"], "sd"),
        (["--baseline", "0.05", "--mde-rel", "0.02", "--sequential", "wald"], "sequential"),
    ],
)
def test_bad_input_fails_with_the_field_named(arguments, field):
    result = runner.invoke(app, ["plan", *arguments])
    assert result.exit_code == 2
    assert f"'{field}'" in result.output


def test_planning_section_has_curves_and_table(tmp_path):
    plan = plan_from_offline(json.loads(selection_file(tmp_path).read_text()), BinaryMetric(0.05),
                             sequential="pocock", n_looks=3)
    section = planning_section(plan)
    assert isinstance(section, Section)
    assert [name for name, _ in section.tables][:2] == ["Plan", "Sequential boundaries"]
    assert len(section.figures) == 2 and all(png.startswith(b"\x89PNG") for _, png in section.figures)
    assert "pooled_null_unpooled_alt" in section.text[0]
    report = Report("plan")
    report.add(section)
    html_path, json_path = report.write(tmp_path / "out")
    assert "Power and assurance" in html_path.read_text()
    assert json.loads(json_path.read_text())["sections"][0]["data"]["plan"]["variance_convention"]
    plain = planning_section(plan_experiment(BinaryMetric(0.05), mde_rel=0.05))
    assert len(plain.figures) == 1


def test_plan_states_each_warning_once(tmp_path):
    """Run as a user runs it (a subprocess, where logging and Python's warning output reach the terminal): the
    plan's warnings close its summary and are not printed again by the logging or warnings machinery."""
    import os
    import subprocess
    import sys

    path = selection_file(tmp_path, differences=(0.0005, 0.0002, -0.0003))
    finished = subprocess.run(
        [sys.executable, "-c", "from causalrec.cli import main; main()", "plan", "--from-json", str(path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    output = finished.stdout + finished.stderr
    assert output.count("interval of the effect reaches no improvement") == 1, output
    assert output.count("is out of reach") == 1, output
    assert "WARNING causalrec" not in output


def test_plan_prints_a_library_warning_once_without_a_source_line(tmp_path):
    """The unshrunk estimate of a single candidate is stated once, not also as Python's 'file:line:
    CausalrecWarning' with the source line."""
    import os
    import subprocess
    import sys

    path = selection_file(tmp_path, differences=(0.0015,))
    finished = subprocess.run(
        [sys.executable, "-c", "from causalrec.cli import main; main()", "plan", "--from-json", str(path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    output = finished.stdout + finished.stderr
    assert "CausalrecWarning" not in output and "WARNING causalrec" not in output, output
    # Stated once: in the plan's summary (the library no longer raises it a second time in other words).
    assert output.count("planning from an unshrunk offline estimate") == 1, output


def test_an_output_that_would_replace_an_input_is_refused_and_the_input_kept(tmp_path):
    path = selection_file(tmp_path)
    before = path.read_bytes()
    result = runner.invoke(app, ["plan", "--from-json", str(path), "--json", str(path), "--baseline", "0.05"])
    assert result.exit_code == 2, result.output
    assert "would replace --from-json" in " ".join(result.output.split())
    assert path.read_bytes() == before  # the evaluation it plans from is not lost
    # A report folder whose report.json is the input is the same mistake.
    report_input = tmp_path / "report.json"
    report_input.write_bytes(before)
    result = runner.invoke(app, ["plan", "--from-json", str(report_input), "--report", str(tmp_path),
                                 "--baseline", "0.05"])
    assert result.exit_code == 2 and report_input.read_bytes() == before


def test_result_summaries_go_to_standard_output_and_errors_to_standard_error():
    import subprocess
    import sys

    command = [sys.executable, "-c", "from causalrec.cli import main; main()", "plan"]
    finished = subprocess.run([*command, "--baseline", "0.05", "--mde-rel", "0.05"], capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "ExperimentPlan" in finished.stdout and "ExperimentPlan" not in finished.stderr  # `> file` keeps it
    failed = subprocess.run([*command, "--baseline", "1.5", "--mde-rel", "0.05"], capture_output=True, text=True,
                            timeout=300)
    assert failed.returncode == 2 and "error:" in failed.stderr and not failed.stdout.strip()
