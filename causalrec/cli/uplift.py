"""``causalrec uplift``: the effect of exposure (ATE, ATT, CATE) on a table or a built-in data set, refuted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer

from causalrec.cli._common import (
    check_outputs,
    console,
    fail,
    held_warnings,
    read_input,
    refuse_unused,
    show,
    split_names,
    warn_unshown,
    write_json,
)
from causalrec.exceptions import ValidationError


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_input("--data", path, pd.read_parquet, "parquet")
    if path.suffix.lower() in (".csv", ".txt"):
        return read_input("--data", path, pd.read_csv, "CSV")
    raise fail(f"--data must be a .csv or .parquet file; got {path.name}")


def uplift(
    data: Path | None = typer.Option(None, help="CSV or parquet table, one row per (user, item) or unit."),
    treatment: str | None = typer.Option(None, help="0/1 exposure column (shown / recommended / mailed)."),
    outcome: str | None = typer.Option(None, help="Outcome column (click, purchase, visit, spend)."),
    confounders: str = typer.Option("", help="Comma-separated columns that drove exposure and outcome."),
    effect_modifiers: str = typer.Option("", help="Comma-separated CATE features (default: the confounders)."),
    score: str | None = typer.Option(None, help="Column with the score of the ranker that decided exposure."),
    dataset: str | None = typer.Option(None, help="Built-in data set instead of --data: 'hillstrom' (treatment "
                                                  "and confounders built in: not with --data, --treatment or "
                                                  "--confounders)."),
    arm: str = typer.Option("mens", help="Hillstrom e-mail arm against no e-mail: mens or womens."),
    estimator: str = typer.Option("auto", help="auto, linear_dml, causal_forest_dml, linear_dr, forest_dr, "
                                               "t_learner, s_learner or x_learner."),
    candidates: str = typer.Option("", help="Comma-separated families that 'auto' chooses from (default set)."),
    cv: int = typer.Option(3, help="Cross-fitting folds of the nuisance models."),
    holdout: float | None = typer.Option(None, help="Share of rows in [0, 1) held out to score the CATE ranking "
                                                    "with uplift metrics (valid for randomised exposure); default "
                                                    "0.3 for hillstrom, 0 otherwise."),
    refute: bool = typer.Option(True, help="Run the refuters (placebo, random common cause, subset, bootstrap, "
                                           "unobserved confounder)."),
    simulations: int = typer.Option(2, help="Simulations per refuter (each refits the estimator)."),
    alpha: float = typer.Option(0.05, help="1 - confidence level of the intervals."),
    seed: int = typer.Option(0, help="Seed of every fold, nuisance model and simulation."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON to this file."),
    report: Path | None = typer.Option(None, help="Write report.html and report.json into this folder."),
) -> None:
    """Estimate what exposure causes, with DoWhy (model, identify, refute) and EconML (estimate)."""
    if refute and simulations < 2:  # checked before the fit, which the refuters would otherwise follow and waste
        raise fail(f"--simulations {simulations}: expected an integer >= 2 (a spread is needed for a p-value), "
                   "or --no-refute")
    if dataset is None:
        refuse_unused("--data", "--dataset hillstrom", ("--arm", arm, "mens"))
    check_outputs(("--json", json_out, False), ("--report", report, True), inputs=(("--data", data),))
    from causalrec.effects import DEFAULT_CANDIDATES, estimate_effect

    shown: list[str] = []
    try:
        with held_warnings() as held:
            if dataset is not None:
                if dataset.lower() != "hillstrom":
                    raise fail(f"unknown --dataset {dataset!r}; available: hillstrom")
                # --outcome, --effect-modifiers and --score are used with a built-in data set; these would be ignored.
                given = [option for option, value in (("--data", data), ("--treatment", treatment),
                                                      ("--confounders", confounders)) if value]
                if given:
                    raise fail(f"{' and '.join(given)} cannot be used with --dataset {dataset}: its rows, treatment "
                               "(email) and confounders are built in")
                from causalrec.effects.examples import HILLSTROM_CONFOUNDERS, hillstrom_arm

                frame = hillstrom_arm(arm)
                treatment, outcome = "email", outcome or "visit"
                confounder_list, holdout = list(HILLSTROM_CONFOUNDERS), 0.3 if holdout is None else holdout
            else:
                if data is None or treatment is None or outcome is None:
                    raise fail("give --data, --treatment and --outcome (and --confounders), or --dataset")
                frame = _read_table(data)
                confounder_list, holdout = split_names(confounders), 0.0 if holdout is None else holdout
            if not 0 <= holdout < 1:
                raise fail(f"--holdout must be in [0, 1); got {holdout}")
            rng = np.random.default_rng(seed)
            held_out = rng.random(len(frame)) < holdout
            fit_rows, test_rows = frame[~held_out], frame[held_out]
            result = estimate_effect(
                fit_rows, treatment=treatment, outcome=outcome, confounders=confounder_list,
                effect_modifiers=split_names(effect_modifiers) or None, score=score, estimator=estimator,
                candidates=split_names(candidates) or DEFAULT_CANDIDATES, cv=cv, alpha=alpha, random_state=seed,
            )
            payload: dict = {"effect": result.to_dict(), "n_fit_rows": len(fit_rows),
                             "n_holdout_rows": len(test_rows)}
            shown.append(result.summary())
            show(shown[-1])
            if result.selection is not None:
                show(result.selection.summary())
            metrics = None
            if len(test_rows):
                metrics = result.uplift_metrics(test_rows, random_state=seed)
                payload["uplift_metrics"] = metrics
                with pd.option_context("display.width", 140):
                    show(f"Uplift metrics of the CATE ranking on {len(test_rows)} held-out rows:\n"
                         + metrics.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
            refutation = None
            if refute:
                refutation = result.refute(num_simulations=simulations, random_state=seed)
                payload["refutation"] = refutation.to_dict()
                shown.append(refutation.summary())
                show(shown[-1])
    except ValidationError as error:
        raise fail(str(error)) from error
    # Warnings the summaries above already state are not repeated; any other is printed once, after the results.
    warn_unshown(held, "\n".join(shown))
    write_json(json_out, payload)
    if report is not None:
        from causalrec.report.builder import Report
        from causalrec.report.effects import effects_section

        document = Report(title="causalrec uplift", metadata={"source": str(data or dataset)})
        document.add(effects_section(result, refutation=refutation, uplift_metrics=metrics))
        html_path, _ = document.write(report)
        console.print(f"wrote {html_path}")


def register(app: typer.Typer) -> None:
    app.command("uplift")(uplift)
