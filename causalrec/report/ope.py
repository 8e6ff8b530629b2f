"""Report section for off-policy evaluations checked against a known truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from causalrec.report.builder import Section


def ope_truth_section(evaluations: Sequence, title: str = "Off-policy evaluation against the on-policy truth") -> Section:
    """Table and forest plot of estimates with intervals beside the truth, one panel per evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = Section(title)
    frames = [evaluation.to_frame() for evaluation in evaluations]
    table = pd.concat([_with_notes(evaluation, frame) for evaluation, frame in zip(evaluations, frames, strict=True)],
                      ignore_index=True)
    section.tables.append(("Estimates, intervals and relative error", table))
    section.text.append(
        "Each panel evaluates one policy from the other policy's logs. The dashed line is the evaluated policy's "
        "on-policy click rate, itself estimated from its own logs (grey band: its 95% interval). DM has no "
        "interval: its error is reward-model bias, which sampling variance does not reveal."
    )
    for evaluation in evaluations:
        for message in evaluation.result.diagnostics.warnings:
            section.warnings.append(f"{evaluation.label}: {message}")
    fits = [(evaluation.label, evaluation.result.diagnostics.reward_model_fit) for evaluation in evaluations]
    fits = [{"evaluation": label, "model": fit.model, "metric": fit.metric, "held_out": fit.held_out,
             "constant": fit.constant, "skill": fit.skill} for label, fit in fits if fit is not None]
    if fits:
        section.tables.append(("Reward model of DM / DR: held-out loss against a constant (skill <= 0: no better "
                               "than the training folds' mean)", pd.DataFrame(fits)))
    section.data["evaluations"] = [evaluation.to_dict() for evaluation in evaluations]

    n_columns = min(3, len(evaluations))
    n_rows = -(-len(evaluations) // n_columns)
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(4.6 * n_columns, 3.2 * n_rows), squeeze=False)
    for axis in axes.ravel()[len(evaluations):]:
        axis.set_visible(False)
    for axis, evaluation, frame in zip(axes.ravel(), evaluations, frames, strict=False):
        positions = np.arange(len(frame))
        has_interval = frame["ci_low"].notna().to_numpy()
        # Lines from end to end, not error bars: an estimate outside the range of a click rate (IPS above 1) lies
        # outside its interval, which is cut to that range.
        axis.hlines(positions[has_interval], frame["ci_low"][has_interval], frame["ci_high"][has_interval],
                    color="tab:blue")
        axis.plot(frame["value"][has_interval], positions[has_interval], "o", color="tab:blue",
                  label="estimate, 95% CI")
        axis.plot(frame["value"][~has_interval], positions[~has_interval], "s", color="tab:orange", label="no interval")
        axis.axvline(evaluation.truth, linestyle="--", color="black", label="on-policy truth")
        axis.axvspan(evaluation.truth - 1.96 * evaluation.truth_se, evaluation.truth + 1.96 * evaluation.truth_se,
                     color="grey", alpha=0.2)
        axis.set_yticks(positions, frame["estimator"])
        axis.set_title(evaluation.label, fontsize=10)
        axis.set_xlabel("click rate")
    axes[0][0].legend(fontsize=7, loc="best")
    figure.tight_layout()
    section.add_figure("Estimated policy value with 95% intervals against the on-policy truth", figure)
    return section


def _with_notes(evaluation, frame: pd.DataFrame) -> pd.DataFrame:
    """The table rows of one evaluation as the report shows them: each estimator's note (why DM has no interval,
    what ``auto`` chose and how its interval is built) stays beside its numbers."""
    shown = frame.copy()
    notes = dict(zip(evaluation.result.to_frame()["estimator"], evaluation.result.to_frame()["note"], strict=True))
    shown["note"] = shown["estimator"].map(notes).fillna("")
    return shown
