"""``causalrec exposure``: logging propensities and position bias of logs, or debiased training on MNAR ratings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import typer

from causalrec.cli._common import (
    check_outputs,
    console,
    fail,
    held_warnings,
    read_input,
    refuse_unused,
    show,
    warn_unshown,
    write_json,
)
from causalrec.exceptions import ValidationError

EXAMINATION_CHOICES = ("auto", "em", "harvest", "randomized", "none")
COAT_PUBLISHED = {"source": "Schnabel et al., ICML 2016, Table 2, MSE on Coat's MCAR ratings", "MF-Naive": 1.202,
                  "MF-IPS": 1.093}


def _read_scores(path: Path) -> np.ndarray:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.ndarray):
        loaded.close()
        raise ValueError("an .npz archive; expected one .npy array (n_rounds, n_actions) of the old ranker's scores")
    return loaded


def _examination(feedback, choice: str):
    """``(estimate or None, note)``: ``auto`` is the CTR ratio when the logged pscore is one number (a uniform
    logger places every item at every slot alike), intervention harvesting otherwise (like EM it assumes one
    attractiveness per item; it is closed form, where EM iterates; on the six Open Bandit logs the two differed by
    at most 0.15 of a standard error and their errors by at most 6%); logs with one slot or non-binary rewards get
    none under ``auto``, and an error when a method was asked for."""
    from causalrec.exposure import estimate_examination

    if choice == "none":
        return None, "not estimated (--examination none)"
    if choice == "auto":
        if feedback.n_positions < 2:
            return None, "not estimated: the logs have one slot"
        if not np.isin(feedback.reward, (0.0, 1.0)).all():
            return None, "not estimated: the rewards are not binary clicks"
        uniform = feedback.pscore is not None and np.ptp(feedback.pscore) == 0
        choice = "randomized" if uniform else "harvest"
        reason = ("auto: the logged pscore is one number, so items reach every slot alike and the click rate per slot "
                  "measures examination" if uniform else
                  "auto: intervention harvesting, each item's clicks at the slots it was shown in (the logger was not "
                  "uniform, or its pscore is unknown); --examination em fits the same model by likelihood")
        return estimate_examination(feedback, choice), reason
    return estimate_examination(feedback, choice), f"--examination {choice}"


def exposure(
    logs: Path | None = typer.Option(
        None, help="Parquet logs: columns action, reward, position, [pscore]; every other column is context. A "
        "logged pscore is not used by the fit, only compared with the estimate."
    ),
    dataset: str | None = typer.Option(
        None, help="Built-in data instead of --logs: 'obd' (logs whose true pscore is known) or 'coat' (MNAR ratings "
        "with an MCAR test set)."
    ),
    campaign: str = typer.Option("all", help="Open Bandit campaign: all, men or women."),
    behavior: str = typer.Option("random", help="Open Bandit logging policy: random or bts."),
    method: str = typer.Option("auto", help="Logging propensity model: auto, features, marginal or scores."),
    scores: Path | None = typer.Option(
        None, help="An .npy array (n_rounds, n_actions) of the old ranker's scores (-inf = not a candidate), for "
        "--method scores (auto uses it when given)."
    ),
    clip: float | None = typer.Option(None, help="Lower bound on the estimated propensities (cost reported)."),
    examination: str = typer.Option(
        "auto", help="Position bias: auto, em, harvest, randomized or none (auto: randomized for a uniform logger, "
        "else harvest; none for one slot or non-binary rewards)."
    ),
    propensity: str = typer.Option(
        "features", help="Coat: observation propensities: features, naive_bayes, features_naive_bayes, popularity "
        "or shipped (the authors' file)."
    ),
    write_logs: Path | None = typer.Option(
        None, help="Write the logs with the estimated pscore (replacing a logged one) to this parquet file."
    ),
    alpha: float = typer.Option(0.05, help="1 - confidence level of the Coat MSE difference."),
    seed: int = typer.Option(0, help="Seed of the cross-fitting folds and fits."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON to this file."),
    report: Path | None = typer.Option(None, help="Also write an HTML + JSON report into this folder."),
) -> None:
    """Estimate exposure: logging propensities and position bias of logs, or debiased training on ratings."""
    if examination not in EXAMINATION_CHOICES:
        raise fail(f"--examination: expected one of {', '.join(EXAMINATION_CHOICES)}; found {examination!r}")
    if dataset is not None and dataset not in ("obd", "coat"):
        raise fail(f"unknown --dataset {dataset!r}; available: obd, coat")
    if dataset is not None and logs is not None:
        raise fail("give --logs or --dataset, not both")
    if dataset is None and logs is None:
        raise fail("give --logs, or --dataset obd / coat")
    if dataset == "coat":
        refuse_unused("--dataset coat (rating data: see --propensity)", "logs (--logs or --dataset obd)",
                      ("--method", method, "auto"), ("--scores", scores, None), ("--clip", clip, None),
                      ("--examination", examination, "auto"), ("--write-logs", write_logs, None),
                      ("--campaign", campaign, "all"), ("--behavior", behavior, "random"))
    else:
        refuse_unused("--logs" if logs is not None else "--dataset obd", "--dataset coat",
                      ("--propensity", propensity, "features"), ("--alpha", alpha, 0.05))
        if logs is not None:
            refuse_unused("--logs", "--dataset obd", ("--campaign", campaign, "all"),
                          ("--behavior", behavior, "random"))
    check_outputs(("--json", json_out, False), ("--write-logs", write_logs, False), ("--report", report, True),
                  inputs=(("--logs", logs), ("--scores", scores)))

    payload: dict = {}
    propensity_estimate = examination_estimate = ratings_result = None
    with held_warnings() as held:
        try:
            if dataset == "coat":
                ratings_result = _coat(propensity, alpha, seed)
                payload.update(source={"dataset": "coat"}, **ratings_result.to_dict(), published=COAT_PUBLISHED)
                observed = ratings_result.observation
                text = ("" if observed is None else observed.summary() + "\n\n") + ratings_result.summary() + (
                    f"\nPublished for comparison ({COAT_PUBLISHED['source']}): MF-Naive {COAT_PUBLISHED['MF-Naive']}, "
                    f"MF-IPS {COAT_PUBLISHED['MF-IPS']}")
            else:
                propensity_estimate, examination_estimate, note, source = _logs(
                    logs, dataset, campaign, behavior, method, scores, clip, examination, seed)
                feedback = propensity_estimate.feedback
                payload.update(
                    source=source, n_rounds=feedback.n_rounds, n_actions=feedback.n_actions,
                    n_positions=feedback.n_positions, logging_propensity=propensity_estimate.to_dict(),
                    examination=None if examination_estimate is None else examination_estimate.to_dict(),
                    examination_note=note,
                )
                text = propensity_estimate.summary()
                text += f"\n\nPosition bias: {note}"
                if examination_estimate is not None:
                    text += (f"\n{examination_estimate.method}; examination relative to slot 0\n"
                             + examination_estimate.to_frame().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        except ValidationError as error:
            raise fail(str(error)) from error
    show(text)
    warn_unshown(held, text)
    if write_logs is not None:
        propensity_estimate.feedback.to_parquet(write_logs)
        payload["written_logs"] = str(write_logs)
        console.print(f"wrote {write_logs} (pscore: {propensity_estimate.feedback.metadata['pscore_source']})")
    write_json(json_out, payload)
    if report is not None:
        from causalrec.report import Report
        from causalrec.report.exposure import exposure_section

        built = Report("causalrec exposure", metadata={"source": payload["source"], "seed": seed})
        published = []
        if ratings_result is not None:
            import pandas as pd

            published = [(f"Published for comparison: {COAT_PUBLISHED['source']}", pd.DataFrame(
                {"training": ["naive", "ips"], "mcar_mse": [COAT_PUBLISHED["MF-Naive"], COAT_PUBLISHED["MF-IPS"]]}))]
        built.add(exposure_section(propensity=propensity_estimate, examination=examination_estimate,
                                   ratings=ratings_result, extra_tables=published))
        html_path, _ = built.write(report)
        console.print(f"report written: {html_path.resolve()}")


def _logs(logs, dataset, campaign, behavior, method, scores, clip, examination, seed):
    from causalrec.data.feedback import LoggedFeedback
    from causalrec.exposure import estimate_logging_propensities

    if dataset == "obd":
        from causalrec.data.datasets import load_open_bandit

        feedback = load_open_bandit(behavior=behavior, campaign=campaign).feedback
        source = {"dataset": "obd", "campaign": campaign, "behavior": behavior}
    else:
        feedback = read_input("--logs", logs, LoggedFeedback.from_parquet, "parquet")
        source = {"logs": str(logs)}
    old_scores = None if scores is None else read_input("--scores", scores, _read_scores, ".npy")
    estimate = estimate_logging_propensities(feedback, method, old_scores, clip=clip, random_state=seed)
    found, note = _examination(feedback, examination)
    return estimate, found, note, source


def _coat(propensity: str, alpha: float, seed: int):
    from causalrec.data.datasets import load_coat
    from causalrec.exposure import debias_ratings

    coat = load_coat()
    train, test = coat.train_ratings(), coat.test_ratings()
    shipped = propensity == "shipped"
    given = coat.propensities[train["user"], train["item"]] if shipped else propensity
    result = debias_ratings(train, test, coat.n_users, coat.n_items, propensity=given,
                            user_features=coat.user_features, item_features=coat.item_features, rating_range=(1, 5),
                            alpha=alpha, random_state=seed)
    if shipped:
        result = replace(result, propensity_source="shipped with Coat (the authors' propensities.ascii)")
    return result


def register(app: typer.Typer) -> None:
    app.command("exposure")(exposure)
