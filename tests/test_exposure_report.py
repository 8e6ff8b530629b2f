"""The exposure report section: tables, warnings, a figure and JSON-safe data from the exposure results."""

from __future__ import annotations

import json

import numpy as np

from causalrec import LoggedFeedback
from causalrec._results import to_jsonable
from causalrec.exposure import compare_offline_metrics, estimate_examination, estimate_logging_propensities
from causalrec.report import Report
from causalrec.report.exposure import exposure_section


def test_exposure_section_carries_every_result(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    probabilities = np.array([0.5, 0.3, 0.15, 0.05])
    theta = np.array([1.0, 0.5, 0.3])
    action = rng.choice(4, size=n, p=probabilities)
    slot = rng.integers(0, 3, n)
    click = rng.random(n) < theta[slot] * 0.3
    logs = LoggedFeedback(action=action, reward=click, position=slot, n_actions=4)
    propensity = estimate_logging_propensities(logs, "marginal", clip=0.1, random_state=0, warn=False)
    examination = estimate_examination(logs, "randomized")
    scores = {"a": rng.random((20, 8)), "b": rng.random((20, 8))}
    targets = [rng.choice(8, 2, replace=False) for _ in range(20)]
    metrics = compare_offline_metrics(scores, targets, np.full((20, 8), 0.5), ks=(3,), true_targets=targets)

    section = exposure_section(propensity=propensity, examination=examination, offline_metrics=metrics,
                               true_examination=theta)
    names = [name for name, _ in section.tables]
    assert names == ["Logging propensity diagnostics", "Examination by position", "Naive against debiased offline metrics"]
    assert section.warnings == [f"propensities: {w}" for w in propensity.warnings]
    assert len(section.figures) == 1 and section.figures[0][1][:4] == b"\x89PNG"
    json.dumps(to_jsonable(section.data))
    report = Report("exposure")
    report.add(section)
    html_path, json_path = report.write(tmp_path)
    assert "Examination by position" in html_path.read_text()
    assert json.loads(json_path.read_text())["sections"][0]["data"]["examination"]["method"].startswith("randomized")


def test_an_empty_section_is_valid():
    section = exposure_section()
    assert section.tables == [] and section.figures == []
