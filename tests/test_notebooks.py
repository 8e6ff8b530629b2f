"""Every notebook in notebooks/ runs top to bottom with the installed causalrec (they hold no logic), and the numbers
its prose quotes are the ones its cells compute."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

# Per notebook: code run in its kernel after the last cell, with ``prose`` bound to the notebook's markdown (white
# space squeezed). Each check reads a number the prose quotes and compares it with what the cells computed, so a
# stale claim fails here instead of misleading a reader.
PROSE_CHECKS = {
    "01_offline_policy_evaluation.ipynb": r"""
quoted = re.search(r"\((\d+) clicks in ([\d,]+) rounds\)", prose)
assert quoted, "the click count of the random logs is no longer quoted"
assert (int(quoted[1]), int(quoted[2].replace(",", ""))) == (
    int(random_logs.feedback.reward.sum()), random_logs.n_rounds), quoted.groups()
assert fit.skill < 0 and not fragile.result.diagnostics.reliable
""",
    "02_uplift_and_effects.ipynb": r"""
quoted = re.search(r"ATE ([\d.]+) against a true ([\d.]+), ATT ([\d.]+) against a true ([\d.]+)\. "
                   r"The naive difference in means, ([\d.]+),", prose)
assert quoted, "the ATE / ATT / naive comparison is no longer quoted"
true_ate = logs["true_effect"].mean()
true_att = logs.loc[logs.treatment == 1, "true_effect"].mean()
computed = [round(value, 2) for value in (result.ate, true_ate, result.att, true_att, result.naive_difference)]
assert [float(value) for value in quoted.groups()] == computed, (quoted.groups(), computed)
assert result.ate_interval[0] <= true_ate <= result.ate_interval[1]  # "both doubly-robust intervals cover it"
assert result.att_interval[0] <= true_att <= result.att_interval[1]
assert not result.att_interval[0] <= result.naive_difference <= result.att_interval[1]  # "misses the ATT by far"
""",
    "03_model_selection_by_uplift.ipynb": r"""
assert "is not the one that would cause the most conversions" in prose
best = max(truth, key=truth.get)
table = board.table.set_index("candidate")
assert table["auc"].idxmax() != best
assert "The uplift ranking follows the truth" in prose
assert list(board.table["candidate"]) == sorted(truth, key=truth.get, reverse=True)
assert "each interval covers its true uplift" in prose
assert all(table.loc[n, "uplift_ci_low"] <= v <= table.loc[n, "uplift_ci_high"] for n, v in truth.items())
assert "the winner is the truly best candidate" in prose and board.winner == best
assert "on the same logs it finds no winner" in prose and with_auto.winner is None
assert "Its point estimates are fine" in prose
assert list(with_auto.table["candidate"]) == sorted(truth, key=truth.get, reverse=True)
assert flat_board.winner is None
import json, pathlib
study = json.loads(pathlib.Path("../benchmarks/results/selection_simulator.json").read_text())["configurations"]
assert "plain DR declares the true winner far more often than `auto`" in prose
right = {c: {e: row["winner_declared_rate"] - row["winner_not_within_tolerance_of_best_rate"]
             for e, row in study[c]["by_estimator"].items()} for c in ("default", "active-users")}
assert all(right[c]["dr"] > 2 * right[c]["auto"] for c in right), right
quoted = re.search(r"Plain DR crowned a candidate whose true uplift is not above zero in (\d+)% of them and "
                   r"`auto` in (\d+)% \(the simultaneous bounds allow (\d+)%\)", prose)
assert quoted, "the false-winner rates are no longer quoted"
false_winners = {e: max(study[c]["by_estimator"][e]["winner_with_true_uplift_at_most_0_rate"] for c in study)
                 for e in ("dr", "auto")}
assert [int(quoted[1]), int(quoted[2])] == [round(100 * false_winners[e]) for e in ("dr", "auto")], false_winners
assert int(quoted[3]) == round(100 * board.alpha) and max(false_winners.values()) <= board.alpha
""",
    "04_ab_test_planning.ipynb": r"""
quoted = re.search(r"smallest detectable lift is about ([\d.]+)%", prose)
assert quoted, "the MDE at one million users per arm is no longer quoted"
mde = minimum_detectable_effect(BinaryMetric(0.05, "cohen_h"), 1_000_000).to_frame().set_index("quantity")["value"]
assert float(quoted[1]) == round(100 * mde["MDE (relative)"], 2), (quoted[1], mde["MDE (relative)"])
""",
    "05_debiasing_exposure.ipynb": r"""
quoted = re.search(r"Compare with the `scores` estimate above: ([\d.]+)\.", prose)
balance = from_scores.to_frame().set_index("diagnostic").loc["uniform_target_mean_weight", "value"]
assert quoted and float(quoted[1]) == round(float(balance), 2), (quoted and quoted[1], balance)
quoted = re.search(r"and it is (\d+)% above it", prose)
assert quoted and int(quoted[1]) == round(100 * (observation.diagnostics["inverse_mass_ratio"] - 1)), quoted
quoted = re.search(r"MSE on random ratings from about ([\d.]+) to about ([\d.]+)", prose)
assert quoted, "the Coat MSE comparison is no longer quoted"
assert (float(quoted[1]), float(quoted[2])) == (round(mse["naive"], 1), round(mse["ips"], 2)), (quoted.groups(), mse)
""",
}


def test_the_project_ships_notebooks():
    assert NOTEBOOKS, "notebooks/ has no notebook to execute"


def test_prose_checks_name_existing_notebooks():
    assert set(PROSE_CHECKS) <= {path.name for path in NOTEBOOKS}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("CAUSALREC_NOTEBOOK_OUTPUT", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
    if path.name in PROSE_CHECKS:
        prose = re.sub(r"\s+", " ", " ".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown"))
        notebook.cells.append(nbformat.v4.new_code_cell(f"import re\nprose = {prose!r}\n{PROSE_CHECKS[path.name]}"))
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
