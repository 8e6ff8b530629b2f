"""``causalrec train``: fit a transformer model on a built-in data set and write it with its metrics.

* ``--dataset completejourney``: next-basket-item recommender on Complete Journey purchase sequences
  (leave-last-basket-out); the test metrics are full-catalogue NDCG/recall/MRR beside a popularity baseline.
* ``--dataset obd``: click model on the Open Bandit sample logs of ``--behavior`` / ``--campaign``; the metrics
  are held-out log loss and calibration beside the constant (base-rate) predictor, and the paired per-row log-loss
  difference between the two with its interval (``log_loss_vs_constant``; printed as a one-line verdict).

Writes ``OUT/model/`` (``model.safetensors`` + ``config.json``, loadable with ``TransformerRecommender.load`` or
``TransformerClickModel.load``) and ``OUT/metrics.json``.
"""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from causalrec.cli._common import check_outputs, console, fail, refuse_unused, show, split_names, write_json
from causalrec.exceptions import ValidationError

DATASETS = ("completejourney", "obd")


def _machine() -> dict:
    import os

    import torch

    return {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _train_completejourney(out: Path, options: dict) -> dict:
    import numpy as np

    from causalrec.data.datasets.completejourney import purchase_sequences
    from causalrec.models import PopularityRecommender, TransformerRecommender, ranking_metrics
    from causalrec.models.metrics import TIE_POLICY

    data = purchase_sequences(
        min_item_count=options["min_item_count"], max_items=options["max_items"],
        max_households=options["max_households"], random_state=options["seed"],
    )
    show(repr(data))
    model = TransformerRecommender(
        hidden_size=options["hidden_size"], n_layers=options["layers"], n_heads=options["heads"],
        max_history=options["max_history"], max_windows_per_user=options["max_windows_per_user"],
        loss=options["loss"], negative_sampling=options["negative_sampling"], max_epochs=options["epochs"],
        batch_size=options["batch_size"],
        learning_rate=options["learning_rate"], patience=options["patience"], device=options["device"],
        progress_bar=options["progress"], checkpoint_dir=options["checkpoint_dir"],
        random_state=options["seed"], validation_metric="ndcg@10",
    )
    started = time.perf_counter()
    model.fit(data.train_sequences, data.n_items, baskets=data.train_baskets,
              validation_sequences=data.train_sequences, validation_targets=data.validation_targets,
              resume=options["resume"])
    seconds = time.perf_counter() - started
    ks = options["ks"]
    popularity = PopularityRecommender().fit(data.train_sequences, data.n_items)
    results = {
        "transformer": ranking_metrics(model.score(data.test_history), data.test_targets, ks=ks),
        "popularity": ranking_metrics(popularity.score(data.test_history), data.test_targets, ks=ks),
    }
    model.save(out / "model")
    return {
        "dataset": "completejourney", "task": "next-basket-item prediction, full-catalogue ranking",
        "seen_item_policy": data.seen_item_policy, "tie_policy": TIE_POLICY,
        "data": dict(data.metadata) | {"n_households": data.n_households, "n_items": data.n_items},
        "test_metrics": results, "fit_seconds": seconds, "training": model.history_.to_dict(),
        "n_test_rows": int(np.sum([len(t) > 0 for t in data.test_targets])),
    }


def _log_loss_verdict(comparison: dict) -> str:
    """One line on the paired held-out log-loss difference of the click model against the constant base rate."""
    low, high = comparison["ci_low"], comparison["ci_high"]
    if high < 0:
        verdict = "better than the constant base rate"
    elif low > 0:
        verdict = "WORSE than the constant base rate: its features add noise here, not signal"
    else:
        verdict = "not distinguishable from the constant base rate"
    level = f"{1 - comparison['alpha']:.0%}"
    return (f"transformer - constant log loss: {comparison['difference']:+.5f} ({level} interval [{low:+.5f}, "
            f"{high:+.5f}]) on {comparison['n']} test rows with {comparison['n_positive']} clicks: {verdict}")


def _train_obd(out: Path, options: dict) -> dict:
    import numpy as np

    from causalrec.data.datasets.obd import load_open_bandit
    from causalrec.models import (
        TransformerClickModel,
        calibration_metrics,
        log_loss_difference,
        reward_model_layout,
    )
    from causalrec.ope.reward_model import design_matrix

    dataset = load_open_bandit(options["behavior"], options["campaign"], include_affinity=True)
    feedback = dataset.feedback
    features = design_matrix(feedback, np.arange(feedback.n_rounds), feedback.action, feedback.position)
    clicks = feedback.reward
    rng = np.random.default_rng(options["seed"])
    test = np.zeros(len(clicks), dtype=bool)
    for value in (0.0, 1.0):  # stratified 20% test split: clicks are rare
        members = np.flatnonzero(clicks == value)
        test[rng.permutation(members)[: int(round(0.2 * len(members)))]] = True
    model = TransformerClickModel(
        feature_layout=reward_model_layout(feedback), hidden_size=options["hidden_size"],
        n_layers=options["layers"], n_heads=options["heads"], max_epochs=options["epochs"],
        batch_size=options["batch_size"], learning_rate=options["learning_rate"], patience=options["patience"],
        device=options["device"], progress_bar=options["progress"], checkpoint_dir=options["checkpoint_dir"],
        random_state=options["seed"],
    )
    started = time.perf_counter()
    model.fit(features[~test], clicks[~test], resume=options["resume"])
    seconds = time.perf_counter() - started
    probability = model.predict_proba(features[test])[:, 1]
    base_rate = np.full(test.sum(), clicks[~test].mean())
    model.save(out / "model")
    return {
        "dataset": "open_bandit_sample", "behavior": options["behavior"], "campaign": options["campaign"],
        "task": "click probability of (user context, item, position)", "split": "stratified 80/20, seed",
        "test_metrics": {
            "transformer": calibration_metrics(clicks[test], probability),
            "constant_base_rate": calibration_metrics(clicks[test], base_rate),
        },
        # Per-row paired difference: with a few dozen test clicks, two log losses alone do not say which is better.
        "log_loss_vs_constant": log_loss_difference(clicks[test], probability, base_rate),
        "n_clicks": int(clicks.sum()), "fit_seconds": seconds,
        "training": None if model.history_ is None else model.history_.to_dict(),
    }


def train(
    dataset: str = typer.Option(..., help="Built-in data set: 'completejourney' or 'obd'."),
    out: Path = typer.Option(..., help="Output folder: writes model/ and metrics.json."),
    epochs: int = typer.Option(10, help="Maximum number of epochs (early stopping may end sooner)."),
    hidden_size: int = typer.Option(64, help="Transformer width."),
    layers: int = typer.Option(2, help="Number of transformer layers."),
    heads: int = typer.Option(2, help="Number of attention heads."),
    batch_size: int | None = typer.Option(None, help="Batch size (default: 128 on CPU, 1024 on GPU)."),
    learning_rate: float = typer.Option(1e-3, help="AdamW learning rate."),
    patience: int = typer.Option(3, help="Epochs without validation improvement before stopping."),
    seed: int = typer.Option(0, help="Random seed (model, batches, subsamples, splits)."),
    device: str = typer.Option("auto", help="'auto' (CUDA when available), 'cpu' or 'cuda'."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    checkpoint_dir: Path | None = typer.Option(None, help="Write a resumable checkpoint here every epoch."),
    resume: bool = typer.Option(False, help="Continue from the checkpoint in --checkpoint-dir."),
    max_items: int | None = typer.Option(2000, help="completejourney: keep the most bought items only."),
    min_item_count: int = typer.Option(20, help="completejourney: minimum purchases of a kept item."),
    max_households: int | None = typer.Option(None, help="completejourney: random subset of households."),
    max_history: int = typer.Option(50, help="completejourney: items read as tokens."),
    max_windows_per_user: int | None = typer.Option(4, help="completejourney: training windows per household."),
    loss: str = typer.Option("full_softmax", help="completejourney: 'full_softmax' or 'sampled_bce'."),
    negative_sampling: str = typer.Option(
        "uniform", help="completejourney, sampled_bce: negatives 'uniform' over the catalogue or 'unseen' (SASRec's: "
                        "never an item the household bought)."),
    ks: str = typer.Option("10,20", help="completejourney: ranking cut-offs."),
    campaign: str = typer.Option("all", help="obd: campaign all, men or women."),
    behavior: str = typer.Option("random", help="obd: logging policy whose logs train the model."),
) -> None:
    """Train a transformer recommender (completejourney) or click model (obd); write it and its metrics."""
    if dataset not in DATASETS:
        raise fail(f"unknown --dataset {dataset!r}; available: {', '.join(DATASETS)}")
    # Option values that would only fail after training (or hang it) are checked before any work.
    try:
        cutoffs = [int(k) for k in split_names(ks)]
    except ValueError:
        raise fail(f"--ks {ks!r}: expected comma-separated positive integers such as 10,20") from None
    if not cutoffs or min(cutoffs) < 1:
        raise fail(f"--ks {ks!r}: expected comma-separated positive integers such as 10,20")
    if dataset == "obd":
        refuse_unused("--dataset obd", "--dataset completejourney", ("--max-items", max_items, 2000),
                      ("--min-item-count", min_item_count, 20), ("--max-households", max_households, None),
                      ("--max-history", max_history, 50), ("--max-windows-per-user", max_windows_per_user, 4),
                      ("--loss", loss, "full_softmax"), ("--negative-sampling", negative_sampling, "uniform"),
                      ("--ks", ks, "10,20"))
    else:
        refuse_unused(f"--dataset {dataset}", "--dataset obd", ("--campaign", campaign, "all"),
                      ("--behavior", behavior, "random"))
        if loss != "sampled_bce":
            refuse_unused(f"--loss {loss}", "--loss sampled_bce", ("--negative-sampling", negative_sampling, "uniform"))
    if max_history < 1:
        raise fail(f"--max-history {max_history}: expected an integer >= 1")
    if max_households is not None and max_households < 1:
        raise fail(f"--max-households {max_households}: expected an integer >= 1 (or leave it out for all)")
    from causalrec.models.training import resolve_device

    try:
        resolve_device(device)
    except ValidationError as error:  # an unknown device name, or a CUDA device this machine does not have
        raise fail(f"--device: {error}") from None
    if resume and checkpoint_dir is None:
        raise fail("--resume needs --checkpoint-dir (the folder holding the checkpoint to continue from)")
    check_outputs(("--out", out, True), ("--checkpoint-dir", checkpoint_dir, True))
    options = dict(
        epochs=epochs, hidden_size=hidden_size, layers=layers, heads=heads, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, seed=seed, device=device, progress=progress,
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir), resume=resume, max_items=max_items,
        min_item_count=min_item_count, max_households=max_households, max_history=max_history,
        max_windows_per_user=max_windows_per_user, loss=loss, negative_sampling=negative_sampling,
        ks=cutoffs, campaign=campaign, behavior=behavior,
    )
    try:
        runner = _train_completejourney if dataset == "completejourney" else _train_obd
        payload = runner(out, options)
    except ValidationError as error:
        raise fail(str(error)) from error
    payload["options"] = options
    payload["machine"] = _machine()
    for name, metrics in payload["test_metrics"].items():
        shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, float))
        show(f"{name}: {shown}")
    comparison = payload.get("log_loss_vs_constant")
    if comparison is not None:
        show(_log_loss_verdict(comparison))
    if payload.get("training"):
        show(_training_line(payload["training"]))
    console.print(f"model written to {out / 'model'}")
    write_json(out / "metrics.json", payload)


def _training_line(training: dict) -> str:
    """One line on how the fit went: epochs, the epoch whose weights were kept and what its validation number is."""
    epochs = len(training["epochs"])
    resumed = training.get("resumed_from_epoch")
    settings = f"{training['device']}, {training['precision']}{', compiled' if training['compiled'] else ''}"
    return (f"training: {epochs} epoch{'s' if epochs != 1 else ''}{f' (resumed after epoch {resumed})' if resumed else ''}, "
            f"{'stopped early' if training['stopped_early'] else 'ran to --epochs'}; weights of epoch "
            f"{training['best_epoch']} kept, validation {training['best_validation_loss']:.5g} = "
            f"{training.get('validation_criterion', 'validation loss (lower is better)')}; {settings}, "
            f"batch {training['batch_size']}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
