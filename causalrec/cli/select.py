"""``causalrec select``: a leaderboard of candidate recommenders by estimated uplift."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import typer

from causalrec.cli._common import check_outputs, console, fail, read_input, refuse_unused, show, write_json
from causalrec.exceptions import CausalrecWarning, ValidationError


def _read_scores(path: Path) -> dict[str, np.ndarray]:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("a single array, not an .npz archive of named (n_rounds, n_actions) arrays, one per candidate")
    with loaded:
        if not loaded.files:
            raise ValueError("the archive holds no arrays; expected one (n_rounds, n_actions) array per candidate")
        return {name: loaded[name] for name in loaded.files}


def select(
    logs: Path | None = typer.Option(None, help="Parquet logs (columns action, reward, position, pscore, context)."),
    scores: Path | None = typer.Option(
        None, help="An .npz file with one (n_rounds, n_actions) score array per candidate, named by candidate."
    ),
    dataset: str | None = typer.Option(None, help="Built-in logs with the default candidates: 'obd' or 'simulate'."),
    campaign: str = typer.Option("all", help="Open Bandit campaign: all, men or women."),
    behavior: str = typer.Option("random", help="Open Bandit logging policy: random or bts."),
    baseline: str = typer.Option("logging", help="Candidate name, or 'logging' (the policy behind the logs)."),
    estimator: str = typer.Option("dr", help="OPE estimator for values and uplifts (auto's intervals are "
                                              "conservative and rarely name a winner: see select_models)."),
    alpha: float = typer.Option(0.05, help="Family-wise error rate of the decision."),
    k: int = typer.Option(10, help="Cut-off of NDCG@k and recall@k."),
    seed: int = typer.Option(0, help="Seed of cross-fitting and random candidates."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the leaderboard as JSON to this file."),
    report: Path | None = typer.Option(None, help="Also write an HTML + JSON report into this folder."),
) -> None:
    """Rank candidate recommenders by estimated uplift over a baseline, next to their accuracy on the logs."""
    if dataset is not None and (logs is not None or scores is not None):
        raise fail(f"give --logs and --scores, or --dataset, not both (found --dataset {dataset} with "
                   f"{'--logs' if logs is not None else '--scores'})")
    if dataset in (None, "simulate"):
        refuse_unused(f"--dataset {dataset}" if dataset is not None else "--logs", "--dataset obd",
                      ("--campaign", campaign, "all"), ("--behavior", behavior, "random"))
    check_outputs(("--json", json_out, False), ("--report", report, True),
                  inputs=(("--logs", logs), ("--scores", scores)))
    from causalrec.data.feedback import LoggedFeedback
    from causalrec.selection import Candidate, default_candidates, select_models

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CausalrecWarning)  # they are part of the leaderboard
            if dataset == "obd":
                from causalrec.data.datasets import load_open_bandit

                feedback = load_open_bandit(behavior=behavior, campaign=campaign).feedback
                field = default_candidates(feedback, random_state=seed)
            elif dataset == "simulate":
                from causalrec.data.simulate import make_world

                feedback = make_world(random_state=seed).sample_logs(20_000, random_state=seed)
                field = default_candidates(feedback, random_state=seed)
            elif dataset is not None:
                raise fail(f"unknown --dataset {dataset!r}; available: obd, simulate")
            else:
                if logs is None or scores is None:
                    raise fail("give --logs and --scores, or --dataset")
                feedback = read_input("--logs", logs, LoggedFeedback.from_parquet, "parquet")
                arrays = read_input("--scores", scores, _read_scores, ".npz")
                field = [Candidate(name, values) for name, values in arrays.items()]
            board = select_models(field, feedback, baseline=baseline, estimator=estimator, alpha=alpha, k=k,
                                  random_state=seed)
    except ValidationError as error:
        raise fail(str(error)) from error
    show(board.summary())
    write_json(json_out, board.to_dict())
    if report is not None:
        from causalrec.report import Report
        from causalrec.report.selection import selection_section

        built = Report("causalrec model selection", metadata={"dataset": dataset or str(logs), "seed": seed})
        built.add(selection_section(board))
        html_path, _ = built.write(report)
        console.print(f"report written: {html_path.resolve()}")


def register(app: typer.Typer) -> None:
    app.command("select")(select)
