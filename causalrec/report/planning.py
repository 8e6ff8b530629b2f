"""Report section for an A/B test plan: the plan table, power and assurance curves, sequential boundaries."""

from __future__ import annotations

import numpy as np

from causalrec.report.builder import Section


def planning_section(plan_result, title: str = "A/B test plan") -> Section:
    """Plan table, stopping rules, and the power (and assurance) curve against units per treatment arm.

    ``plan_result`` is a :class:`causalrec.planning.ExperimentPlan`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = plan_result.design.settings
    section = Section(title)
    section.text.append(
        f"Variance convention: {plan_result.variance_convention} ({settings.variance_convention_description})."
    )
    section.text.append("Assumptions: " + "; ".join(plan_result.assumptions) + ".")
    section.warnings.extend(plan_result.warnings)
    section.tables.append(("Plan", plan_result.to_frame().astype({"value": str})))
    if plan_result.sequential is not None:
        section.tables.append(("Sequential boundaries", plan_result.sequential.to_frame()))
        section.text.extend(plan_result.sequential.stopping_rules)
    if plan_result.effect is not None:
        section.tables.append(("Offline uplift and its shrinkage", plan_result.effect.to_frame().astype({"value": str})))
    section.data["plan"] = plan_result.to_dict()

    n_grid = np.asarray(plan_result.curve_n_treatment)
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    axis.plot(n_grid, plan_result.curve_power, label=f"power at the planned effect ({plan_result.design.effect_absolute:.4g})")
    if plan_result.curve_assurance is not None:
        axis.plot(n_grid, plan_result.curve_assurance, label="assurance (power averaged over the effect's uncertainty)")
        if plan_result.maximum_assurance is not None:
            axis.axhline(plan_result.maximum_assurance, color="grey", linestyle=":", label="maximum assurance")
    axis.axhline(plan_result.design.target_power, color="black", linestyle="--", linewidth=0.8, label="target power")
    axis.axvline(plan_result.design.n_treatment, color="tab:red", linestyle="--", linewidth=0.8, label="fixed-design n")
    if plan_result.sequential is not None:
        axis.axvline(plan_result.max_n_treatment, color="tab:purple", linestyle="-.", linewidth=0.8, label="sequential max n")
    axis.set_xscale("log")
    axis.set_ylim(0, 1)
    axis.set_xlabel("units per treatment arm")
    axis.set_ylabel("probability of a significant result")
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    section.add_figure("Power and assurance against the sample size per treatment arm (fixed-sample analysis)", figure)

    if plan_result.sequential is not None:
        design = plan_result.sequential
        figure, axis = plt.subplots(figsize=(6.4, 3.2))
        fractions = np.asarray(design.information_fractions)
        boundaries = np.minimum(np.asarray(design.boundaries), 8.0)
        axis.plot(fractions, boundaries, "o-", label=f"{design.kind} boundary")
        if design.alternative == "two-sided":
            axis.plot(fractions, -boundaries, "o-", color="tab:blue")
        axis.axhline(1.959964, color="grey", linestyle=":", label="fixed-sample 1.96")
        axis.set_xlabel("information fraction")
        axis.set_ylabel("z boundary")
        axis.legend(fontsize=7)
        figure.tight_layout()
        section.add_figure("Sequential boundaries on the z scale (stop when the z-statistic crosses)", figure)
    return section
