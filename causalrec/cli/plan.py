"""``causalrec plan``: size an A/B test (sample size, MDE, duration, sequential boundaries) from a fixed effect or
from an offline evaluation/selection result.

Fixed effect::

    causalrec plan --metric binary --baseline 0.05 --mde-rel 0.02 --alpha 0.05 --power 0.8 --json plan.json

From an offline result (``--from-json``): a JSON object with an ``estimates`` list (keys ``estimator, value,
se, ci_low, ci_high``, optional ``policy``) and a ``comparisons`` list (keys ``policy, baseline, estimator,
difference, se, ci_low, ci_high``; ``difference`` is the uplift of ``policy`` over ``baseline`` on the metric's
absolute scale), as written by ``causalrec evaluate``/policy comparison. The comparison planned for is
``--policy`` or the largest uplift; it is shrunk (empirical Bayes / winner's curse, see
:mod:`causalrec.planning.plan`) before sizing. For a binary metric without ``--baseline`` the baseline policy's
estimated value is used when the ``estimates`` list has it.

The JSON written by ``--json`` is the plan's ``to_dict()``: it names the variance convention
(``variance_convention`` and ``design.settings.variance_convention_description``) and the assumptions.
"""

from __future__ import annotations

from pathlib import Path

import typer

from causalrec.cli._common import (
    check_outputs,
    console,
    fail,
    held_warnings,
    refuse_unused,
    show,
    warn_unshown,
    write_json,
)
from causalrec.exceptions import ValidationError

METRIC_HELP = "Metric kind: binary (rate per user), continuous (mean per user) or ratio (e.g. clicks/impressions)."
METHOD_HELP = (
    "Variance convention. binary: pooled_null_unpooled_alt (default), cohen_h, unpooled, baseline_variance; "
    "continuous: z (default) or t; ratio: delta_method_z."
)
SEQUENTIAL_HELP = "Sequential design: none, pocock, obrien_fleming, lan_demets_obf, lan_demets_pocock or msprt."


def plan(
    metric: str = typer.Option("binary", "--metric", help=METRIC_HELP),
    baseline: float | None = typer.Option(
        None, "--baseline", help="Control value: rate for binary, mean for continuous (needed for --mde-rel)."
    ),
    sd: float | None = typer.Option(None, "--sd", help="Standard deviation per unit (continuous metric)."),
    numerator_mean: float | None = typer.Option(None, "--num-mean", help="Ratio: mean numerator per unit (clicks)."),
    denominator_mean: float | None = typer.Option(
        None, "--den-mean", help="Ratio: mean denominator per unit (impressions)."
    ),
    numerator_sd: float | None = typer.Option(None, "--num-sd", help="Ratio: sd of the numerator per unit."),
    denominator_sd: float | None = typer.Option(None, "--den-sd", help="Ratio: sd of the denominator per unit."),
    numerator_denominator_corr: float | None = typer.Option(
        None, "--num-den-corr", help="Ratio: correlation of numerator and denominator per unit."
    ),
    mde_rel: float | None = typer.Option(None, "--mde-rel", help="Effect relative to the baseline (0.02 = +2%)."),
    mde_abs: float | None = typer.Option(None, "--mde-abs", help="Absolute effect (treatment minus control)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Family-wise type-I error."),
    power: float = typer.Option(0.8, "--power", help="Target power."),
    alternative: str = typer.Option("two-sided", "--alternative", help="two-sided, larger or smaller."),
    method: str | None = typer.Option(None, "--method", help=METHOD_HELP),
    ratio: float = typer.Option(
        1.0, "--ratio", help="Allocation ratio: control units per unit of each treatment arm (10/90 split: 9)."
    ),
    arms: int = typer.Option(1, "--arms", help="Number of treatment arms, each compared with the control."),
    correction: str = typer.Option("bonferroni", "--correction", help="Multiple arms: bonferroni, sidak, holm or none."),
    noninferiority_margin: float = typer.Option(
        0.0, "--margin", help="Non-inferiority margin (absolute); with --alternative larger, H0: effect <= -margin."
    ),
    cuped_rho: float | None = typer.Option(
        None, "--cuped-rho", help="Correlation of the metric with a pre-exposure covariate (CUPED/CUPAC); variance x (1 - rho^2)."
    ),
    sequential: str = typer.Option("none", "--sequential", help=SEQUENTIAL_HELP),
    looks: int = typer.Option(5, "--looks", help="Number of equally spaced looks of the sequential design."),
    n_per_arm: float | None = typer.Option(
        None, "--n-per-arm", help="Units per treatment arm available: report power and MDE there (plan for the MDE "
        "when no effect is given)."
    ),
    daily_traffic: float | None = typer.Option(None, "--daily-traffic", help="Eligible new units per day."),
    traffic_fraction: float = typer.Option(1.0, "--traffic-fraction", help="Share of eligible traffic in the test."),
    round_weeks: bool = typer.Option(False, "--round-weeks/--no-round-weeks", help="Round the duration up to weeks."),
    from_json: Path | None = typer.Option(None, "--from-json", help="Evaluation/selection JSON to plan from."),
    policy: str | None = typer.Option(None, "--policy", help="With --from-json: the policy to plan for."),
    estimator: str | None = typer.Option(None, "--estimator", help="With --from-json: the estimator to read."),
    prior_mean: float | None = typer.Option(None, "--prior-mean", help="With --from-json: prior mean of the uplift."),
    prior_sd: float | None = typer.Option(None, "--prior-sd", help="With --from-json: prior sd of the uplift."),
    target_assurance: float = typer.Option(0.8, "--target-assurance", help="With --from-json: assurance to size for."),
    seed: int = typer.Option(0, "--seed", help="Seed of the winner's-curse bootstrap."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the plan as JSON to this file."),
    report_dir: Path | None = typer.Option(None, "--report", help="Write report.html/report.json to this folder."),
) -> None:
    """Plan an A/B test: sample size per arm, MDE, sequential boundaries, assurance and duration."""
    _refuse_unused(metric, sequential, from_json, daily_traffic, locals())
    check_outputs(("--json", json_out, False), ("--report", report_dir, True), inputs=(("--from-json", from_json),))
    from causalrec import planning

    with held_warnings() as messages:
        try:
            evaluation = planning.read_offline_evaluation(from_json) if from_json is not None else None
            if evaluation is not None and (mde_rel is not None or mde_abs is not None):
                raise ValidationError("mde_rel/mde_abs", "absent with --from-json (the uplift comes from the file)",
                                      f"{mde_rel}/{mde_abs}", owner="causalrec plan")
            if evaluation is not None and baseline is None and metric == "binary":
                chosen, _, _ = planning.choose_comparison(evaluation, policy=policy, estimator=estimator)
                baseline = planning.baseline_value(evaluation, chosen)
                if baseline is None:
                    raise ValidationError("baseline", "given (--baseline): the control's rate", "no --baseline and no "
                                          f"estimate of policy {chosen.baseline!r} in the file", owner="causalrec plan")
            metric_spec = _metric(planning, metric, method, baseline, sd, numerator_mean, denominator_mean, numerator_sd,
                                  denominator_sd, numerator_denominator_corr)
            options = {
                "alpha": alpha, "power": power, "alternative": alternative, "allocation_ratio": ratio,
                "n_treatment_arms": arms, "correction": correction, "noninferiority_margin": noninferiority_margin,
                "cuped_rho": cuped_rho, "sequential": sequential, "n_looks": looks,
                "daily_eligible_traffic": daily_traffic, "traffic_fraction": traffic_fraction,
                "round_to_weeks": round_weeks, "target_assurance": target_assurance, "available_n_treatment": n_per_arm,
            }
            if evaluation is not None:
                result = planning.plan_from_offline(
                    evaluation, metric_spec, policy=policy, estimator=estimator, prior_mean=prior_mean,
                    prior_sd=prior_sd, seed=seed, **options,
                )
            else:
                result = planning.plan_experiment(metric_spec, mde_abs=mde_abs, mde_rel=mde_rel, **options)
        except ValidationError as error:
            raise fail(str(error)) from error
    summary = result.summary()
    warn_unshown(messages, summary)  # the plan's own warnings close its summary; print any other once
    show(summary)
    write_json(json_out, result.to_dict())
    if report_dir is not None:
        from causalrec.report import Report
        from causalrec.report.planning import planning_section

        report = Report(title="A/B test plan")
        report.add(planning_section(result))
        html_path, _ = report.write(report_dir)
        console.print(f"wrote {html_path}")


# The options that apply to one metric kind, mode or design only: (flag, parameter, default).
_PER_METRIC = {
    "--sd": ("sd", None), "--num-mean": ("numerator_mean", None), "--den-mean": ("denominator_mean", None),
    "--num-sd": ("numerator_sd", None), "--den-sd": ("denominator_sd", None),
    "--num-den-corr": ("numerator_denominator_corr", None), "--baseline": ("baseline", None),
}
_METRIC_OPTIONS = {"binary": ("--baseline",), "continuous": ("--baseline", "--sd"),
                   "ratio": ("--num-mean", "--den-mean", "--num-sd", "--den-sd", "--num-den-corr")}
_OFFLINE_OPTIONS = (("--policy", "policy", None), ("--estimator", "estimator", None),
                    ("--prior-mean", "prior_mean", None), ("--prior-sd", "prior_sd", None),
                    ("--target-assurance", "target_assurance", 0.8))


def _refuse_unused(metric: str, sequential: str, from_json, daily_traffic, given: dict) -> None:
    """Options that would be ignored (another metric's moments, offline options with a fixed effect, the look count
    of a fixed design, duration settings without traffic) are refused before any work."""
    if metric in _METRIC_OPTIONS:
        refuse_unused(f"--metric {metric}", "another metric kind (see --help)",
                      *((flag, given[name], default) for flag, (name, default) in _PER_METRIC.items()
                        if flag not in _METRIC_OPTIONS[metric]))
    if from_json is None:
        refuse_unused("a fixed effect (--mde-rel/--mde-abs/--n-per-arm)", "--from-json",
                      *((flag, given[name], default) for flag, name, default in _OFFLINE_OPTIONS))
    if sequential == "none":
        refuse_unused("--sequential none", "a sequential design", ("--looks", given["looks"], 5))
    if daily_traffic is None:
        refuse_unused("no --daily-traffic", "a duration (--daily-traffic)",
                      ("--traffic-fraction", given["traffic_fraction"], 1.0),
                      ("--round-weeks", given["round_weeks"], False))


def _metric(planning, kind, method, baseline, sd, numerator_mean, denominator_mean, numerator_sd, denominator_sd, corr):
    if kind == "binary":
        if baseline is None:
            raise ValidationError("baseline", "given for a binary metric (control rate in (0, 1))", "None",
                                  owner="causalrec plan")
        return planning.BinaryMetric(baseline, method or "pooled_null_unpooled_alt")
    if kind == "continuous":
        if sd is None:
            raise ValidationError("sd", "given for a continuous metric", "None", owner="causalrec plan")
        return planning.ContinuousMetric(sd, mean=baseline, method=method or "z")
    if kind == "ratio":
        values = {
            "numerator_mean": numerator_mean, "denominator_mean": denominator_mean, "numerator_sd": numerator_sd,
            "denominator_sd": denominator_sd, "numerator_denominator_corr": corr,
        }
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise ValidationError(missing[0], "given for a ratio metric", "None", owner="causalrec plan")
        metric = planning.RatioMetric.from_moments(numerator_mean, denominator_mean, numerator_sd, denominator_sd, corr)
        if method not in (None, "delta_method_z"):
            raise ValidationError("method", "'delta_method_z' for a ratio metric", method, owner="causalrec plan")
        return metric
    raise ValidationError("metric", "one of 'binary', 'continuous', 'ratio'", kind, owner="causalrec plan")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
