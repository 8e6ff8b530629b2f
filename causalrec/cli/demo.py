"""``causalrec demo``: the end-to-end slice on the Open Bandit sample, written as an HTML + JSON report."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import typer
from rich.progress import Progress

from causalrec.cli._common import console, fail, parse_list
from causalrec.exceptions import CausalrecWarning, ValidationError


def demo(
    out: Path = typer.Option(Path("reports/demo"), help="Folder for report.html and report.json."),
    campaigns: str = typer.Option("all", help="Comma-separated Open Bandit campaigns: all, men, women."),
    estimators: str = typer.Option("auto,ips,snips,dm,dr", help="Comma-separated estimator names."),
    bts_source: str = typer.Option("logs", help="BTS target distribution: 'logs' (time-indexed) or 'prior'."),
    seed: int = typer.Option(0, help="Seed of the reward model's folds and fits."),
) -> None:
    """Estimate BTS from the uniform-random logs and the reverse, compare with the truth, write a report."""
    from causalrec.ope.open_bandit import evaluate_open_bandit
    from causalrec.report import Report
    from causalrec.report.ope import ope_truth_section

    started = time.perf_counter()
    jobs = [(c, b, e) for c in parse_list(campaigns) for b, e in (("random", "bts"), ("bts", "random"))]
    evaluations = []
    try:
        with Progress(console=console, transient=True) as progress, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CausalrecWarning)
            task = progress.add_task("evaluating", total=len(jobs))
            for campaign, behavior, evaluation in jobs:
                progress.update(task, description=f"{evaluation} <- {behavior} logs ({campaign})")
                evaluations.append(
                    evaluate_open_bandit(
                        campaign=campaign, behavior=behavior, evaluation=evaluation,
                        estimators=parse_list(estimators), bts_source=bts_source, random_state=seed,
                    )
                )
                progress.advance(task)
    except (ValidationError, FileNotFoundError) as error:
        raise fail(str(error)) from error
    for warning in caught:
        console.print(f"[yellow]warning:[/] {warning.message}")
    for evaluation in evaluations:
        console.print(evaluation.summary())
        console.print()
    report = Report(
        "causalrec demo: off-policy evaluation on the Open Bandit sample",
        metadata={"campaigns": campaigns, "estimators": estimators, "bts_target": bts_source, "seed": seed,
                  "runtime_seconds": round(time.perf_counter() - started, 1)},
    )
    report.add(ope_truth_section(evaluations))
    html_path, json_path = report.write(out)
    console.print(f"[bold green]report written:[/] {html_path.resolve()} and {json_path.name}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
