"""``causalrec demo``: the end-to-end slice on the Open Bandit sample, written as an HTML + JSON report.

Three steps, the user's journey: evaluate a policy offline against the on-policy truth, select among candidate
recommenders by estimated uplift, and plan the A/B test that would confirm the choice.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import Progress

from causalrec.cli._common import (
    check_outputs,
    console,
    fail,
    held_warnings,
    refuse_unused,
    show,
    split_names,
    warn_unshown,
)
from causalrec.exceptions import ValidationError


def demo(
    out: Path = typer.Option(Path("reports/demo"), help="Folder for report.html and report.json."),
    campaigns: str = typer.Option("all", help="Comma-separated Open Bandit campaigns to evaluate: all, men, women."),
    estimators: str = typer.Option("auto,ips,snips,dm,dr", help="Comma-separated estimator names."),
    bts_source: str = typer.Option("logs", help="BTS target distribution: 'logs' (time-indexed) or 'prior'."),
    select: bool = typer.Option(True, help="Also rank candidate recommenders by estimated uplift (campaign 'all')."),
    plan: bool = typer.Option(True, help="Also plan the A/B test from the leaderboard."),
    daily_traffic: float = typer.Option(100_000, help="Eligible users per day, for the test's duration."),
    mde_rel: float = typer.Option(
        0.05, help="Relative effect the plan is sized for when the leading candidate's offline uplift is flagged "
        "unreliable (planning for that estimate would rest on a handful of clicks)."
    ),
    seed: int = typer.Option(0, help="Seed of the reward model's folds and fits."),
) -> None:
    """Estimate BTS from the uniform-random logs and the reverse, compare with the truth, select, plan, report."""
    if not plan or not select:
        refuse_unused("--no-plan or --no-select", "the A/B test plan", ("--daily-traffic", daily_traffic, 100_000),
                      ("--mde-rel", mde_rel, 0.05))
    check_outputs(("--out", out, True))
    from causalrec.ope.open_bandit import evaluate_open_bandit
    from causalrec.report import Report
    from causalrec.report.ope import ope_truth_section

    started = time.perf_counter()
    jobs = [(c, b, e) for c in split_names(campaigns) for b, e in (("random", "bts"), ("bts", "random"))]
    evaluations, board, experiment_plan = [], None, None
    try:
        with Progress(console=console, transient=True) as progress, held_warnings() as caught:
            task = progress.add_task("evaluating", total=len(jobs) + select + (select and plan))
            for campaign, behavior, evaluation in jobs:
                progress.update(task, description=f"evaluating {evaluation} <- {behavior} logs ({campaign})")
                evaluations.append(
                    evaluate_open_bandit(
                        campaign=campaign, behavior=behavior, evaluation=evaluation,
                        estimators=split_names(estimators), bts_source=bts_source, random_state=seed,
                    )
                )
                progress.advance(task)
            if select:
                progress.update(task, description="selecting candidate recommenders by estimated uplift")
                board, baseline_rate = _select(seed)
                progress.advance(task)
                if plan:
                    progress.update(task, description="planning the A/B test")
                    experiment_plan, plan_title = _plan(board, baseline_rate, daily_traffic, mde_rel)
                    progress.advance(task)
    except (ValidationError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    # Each warning once: those the summaries below state are not printed a second time.
    summaries = [evaluation.summary() for evaluation in evaluations]
    summaries += [result.summary() for result in (board, experiment_plan) if result is not None]
    warn_unshown(caught, "\n".join(summaries))
    for summary in summaries:
        show(summary, end="\n\n")
    report = Report(
        "causalrec demo: evaluate, select and plan on the Open Bandit sample",
        metadata={"campaigns": campaigns, "estimators": estimators, "bts_target": bts_source, "seed": seed},
    )
    report.add(ope_truth_section(evaluations))
    if board is not None:
        from causalrec.report.selection import selection_section

        report.add(selection_section(board, title="Model selection by estimated uplift (random logs, campaign all)"))
    if experiment_plan is not None:
        from causalrec.report.planning import planning_section

        report.add(planning_section(experiment_plan, title=plan_title))
    report.metadata["runtime_seconds"] = round(time.perf_counter() - started, 1)
    html_path, json_path = report.write(out)
    console.print(f"[bold green]report written:[/] {html_path.resolve()} and {json_path.name}")


def _select(seed: int):
    from causalrec.data.datasets import load_open_bandit
    from causalrec.selection import default_candidates, select_models

    feedback = load_open_bandit(behavior="random", campaign="all").feedback
    board = select_models(default_candidates(feedback, random_state=seed), feedback, random_state=seed)
    return board, float(feedback.reward.mean())


def _plan(board, baseline_rate: float, daily_traffic: float, mde_rel: float):
    """``(plan, title)``: the plan for the leading candidate's shrunk offline uplift, unless that estimate is flagged
    unreliable (the plan would then be sized on a few effective clicks: the Open Bandit sample's leader rests on about
    four); then a plan for a fixed relative effect, which says why."""
    from dataclasses import replace

    from causalrec.planning import (
        BinaryMetric,
        choose_comparison,
        plan_experiment,
        plan_from_offline,
        read_offline_evaluation,
    )

    evaluation = read_offline_evaluation(board.to_dict())
    leader, _, _ = choose_comparison(evaluation)
    metric, options = BinaryMetric(baseline=baseline_rate), {"daily_eligible_traffic": daily_traffic,
                                                              "round_to_weeks": True}
    if leader.reliable is not False:
        title = f"A/B test plan for the leading candidate, {leader.policy}"
        return plan_from_offline(evaluation, metric, **options), title
    fixed = plan_experiment(metric, mde_rel=mde_rel, **options)
    evidence = "" if leader.ess is None else f", effective sample size {leader.ess:.4g} of {board.n_rounds}"
    note = (f"planned for a fixed effect of {mde_rel:+.1%} (--mde-rel), not for the leading candidate's offline "
            f"uplift: {leader.policy!r} leads with {leader.difference:+.4g} ({leader.estimator}{evidence}), an "
            "estimate flagged unreliable; `causalrec plan --from-json` on the leaderboard plans for it anyway, with "
            "that warning")
    title = f"A/B test plan for a fixed {mde_rel:+.1%} effect (the leading candidate's estimate is flagged unreliable)"
    return replace(fixed, warnings=(note, *fixed.warnings)), title


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
