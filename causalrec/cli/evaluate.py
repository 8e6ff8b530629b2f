"""``causalrec evaluate``: off-policy evaluation of a target policy on logs (files or a built-in data set)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import typer

from causalrec.cli._common import (
    check_outputs,
    fail,
    read_input,
    refuse_unused,
    show,
    split_names,
    warn,
    write_json,
)
from causalrec.exceptions import CausalrecWarning, ValidationError


def evaluate(
    logs: Path | None = typer.Option(
        None, help="Parquet logs: columns action, reward, position, pscore; every other column is context."
    ),
    target: Path | None = typer.Option(
        None, help="Parquet target policy in long format: round, action, position, prob (round = row of LOGS)."
    ),
    dataset: str | None = typer.Option(None, help="Built-in data set instead of files: 'obd'."),
    campaign: str = typer.Option("all", help="Open Bandit campaign: all, men or women."),
    behavior: str = typer.Option("random", help="Open Bandit logging policy whose logs are used: random or bts."),
    evaluation: str = typer.Option("bts", help="Open Bandit policy to evaluate: bts or random."),
    estimators: str = typer.Option(
        "auto,ips,snips,dm,dr", help="Comma-separated names: auto, ips, snips, dm, dr, sndr, switch-dr, dr-os."
    ),
    ci: str = typer.Option("analytic", help="Interval method: analytic (delta method) or bootstrap."),
    n_bootstrap: int = typer.Option(1000, help="Bootstrap resamples (with --ci bootstrap)."),
    bootstrap_method: str = typer.Option("poisson", help="Bootstrap resampling: poisson or multinomial."),
    dm_bias_bound: float | None = typer.Option(None, help="Give DM an interval widened by this reward-model bias bound."),
    alpha: float = typer.Option(0.05, help="1 - confidence level of the intervals."),
    seed: int = typer.Option(0, help="Seed of the reward model's folds and fits."),
    fold_groups: str | None = typer.Option(
        None, help="Column of LOGS (e.g. user_id) whose equal values share a cross-fitting fold of the reward model "
        "(a key, not a feature: it is left out of the context)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result as JSON to this file."),
) -> None:
    """Estimate the value of a target policy from logged feedback, with intervals and diagnostics."""
    if ci != "bootstrap":
        refuse_unused(f"--ci {ci}", "--ci bootstrap", ("--n-bootstrap", n_bootstrap, 1000),
                      ("--bootstrap-method", bootstrap_method, "poisson"))
    if dataset is not None and (logs is not None or target is not None):
        raise fail(f"give --logs and --target, or --dataset, not both (found --dataset {dataset} with "
                   f"{'--logs' if logs is not None else '--target'})")
    if dataset is None:
        refuse_unused("--logs" if logs is not None else "no --dataset", "--dataset obd",
                      ("--campaign", campaign, "all"), ("--behavior", behavior, "random"),
                      ("--evaluation", evaluation, "bts"))
    check_outputs(("--json", json_out, False), inputs=(("--logs", logs), ("--target", target)))
    from causalrec.data.feedback import LoggedFeedback
    from causalrec.ope import evaluate_policy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CausalrecWarning)
        try:
            if dataset is not None:
                if dataset.lower() != "obd":
                    raise fail(f"unknown --dataset {dataset!r}; available: obd")
                if fold_groups is not None:
                    raise fail("--fold-groups needs --logs (the Open Bandit sample has no user ids)")
                from causalrec.ope.open_bandit import evaluate_open_bandit

                outcome = evaluate_open_bandit(
                    campaign=campaign, behavior=behavior, evaluation=evaluation, estimators=split_names(estimators),
                    alpha=alpha, random_state=seed, ci=ci, n_bootstrap=n_bootstrap, bootstrap_method=bootstrap_method,
                    dm_bias_bound=dm_bias_bound,
                )
                result = outcome.result
                payload = {k: v for k, v in outcome.to_dict().items() if k != "result"}
                payload.update(result.to_dict())
            else:
                if logs is None or target is None:
                    raise fail("give --logs and --target, or --dataset")
                groups = None
                if fold_groups is not None:
                    import pyarrow.parquet as pq

                    columns = read_input("--logs", logs, lambda path: pq.read_schema(path).names, "parquet")
                    if fold_groups not in columns:
                        raise fail(f"--fold-groups {fold_groups!r} is not a column of {logs} (columns: {columns[:20]})")
                    groups = pd.read_parquet(logs, columns=[fold_groups])[fold_groups].to_numpy()
                # The grouping key (a user or session id) is not a feature of the reward model.
                exclude = [fold_groups] if fold_groups is not None else []
                feedback = read_input("--logs", logs, lambda path: LoggedFeedback.from_parquet(path, exclude=exclude),
                                      "parquet")
                target_frame = read_input("--target", target, pd.read_parquet, "parquet")
                result = evaluate_policy(
                    feedback, target_frame, estimators=split_names(estimators), ci=ci, alpha=alpha, random_state=seed,
                    n_bootstrap=n_bootstrap, bootstrap_method=bootstrap_method, dm_bias_bound=dm_bias_bound,
                    fold_groups=groups,
                )
                payload = result.to_dict()
        except ValidationError as error:
            raise fail(str(error)) from error
    # The result's own warnings head its summary, before the estimates; any other warning is printed once here.
    shown = set(result.diagnostics.warnings)
    for message in dict.fromkeys(str(w.message) for w in caught):
        if message not in shown:
            warn(message)
    show(result.summary())
    write_json(json_out, payload)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
