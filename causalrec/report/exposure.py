"""Report section for exposure debiasing: estimated propensities and their diagnostics, position bias, and
naive against debiased offline metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from causalrec._text import confidence_level
from causalrec.report.builder import Section


def exposure_section(
    propensity=None,
    examination=None,
    offline_metrics: pd.DataFrame | None = None,
    observation=None,
    true_examination: Sequence[float] | None = None,
    ratings=None,
    extra_tables: Sequence[tuple[str, pd.DataFrame]] = (),
    title: str = "Exposure: propensities, position bias and debiased metrics",
) -> Section:
    """Tables, warnings and plots of the exposure layer's results; every argument is optional.

    ``propensity`` is a :class:`causalrec.exposure.PropensityEstimate`, ``observation`` a
    :class:`causalrec.exposure.ObservationPropensityEstimate`, ``examination`` a
    :class:`causalrec.exposure.ExaminationEstimate` (``true_examination`` draws the known curve beside it),
    ``offline_metrics`` a table from :func:`causalrec.exposure.compare_offline_metrics`, ``ratings`` a
    :class:`causalrec.exposure.RatingDebiasing` (its propensities are shown unless ``observation`` is given);
    ``extra_tables`` are added as they are (e.g. a benchmark's MSE table).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    section = Section(title)
    panels = []
    if propensity is not None:
        section.text.append(
            f"Logging propensities estimated with {propensity.method}, cross-fitted over "
            f"{propensity.diagnostics['n_folds']} folds: each round's propensity comes from a model that did not "
            "see it. The balance check expects the mean of (1 / n_candidates) / pscore to be 1."
        )
        section.tables.append(("Logging propensity diagnostics", propensity.to_frame().astype({"value": str})))
        section.warnings.extend(f"propensities: {w}" for w in propensity.warnings)
        section.data["logging_propensity"] = propensity.to_dict()
        panels.append(("reliability", propensity.diagnostics.get("reliability", [])))
    if observation is None and ratings is not None:
        observation = ratings.observation
    if observation is not None:
        section.text.append(f"Observation propensities of the rating data estimated with {observation.method}.")
        section.tables.append(("Observation propensity diagnostics", observation.to_frame().astype({"value": str})))
        section.warnings.extend(f"observation propensities: {w}" for w in observation.warnings)
        section.data["observation_propensity"] = observation.to_dict()
    if examination is not None:
        frame = examination.to_frame()
        if true_examination is not None:
            frame["true_examination"] = np.asarray(true_examination, dtype=np.float64) / float(true_examination[0])
        section.text.append(
            f"Examination probability per slot relative to slot 0, estimated by {examination.method}. Under the "
            "position-based model a click at slot l counts 1 / examination[l] times in position-aware IPS."
        )
        section.tables.append(("Examination by position", frame))
        section.data["examination"] = examination.to_dict()
        panels.append(("examination", frame))
    if offline_metrics is not None:
        section.text.append(
            "Offline metrics on exposed items only (naive) and weighted by the inverse exposure propensity "
            "(debiased), beside the full-information truth where it is known; *_rank columns rank the models "
            "(1 = best)."
        )
        section.tables.append(("Naive against debiased offline metrics", offline_metrics))
        section.data["offline_metrics"] = offline_metrics
    if ratings is not None:
        d = ratings.difference
        level = confidence_level(ratings.alpha)
        section.text.append(
            f"Matrix factorisation trained on {ratings.n_train} self-selected ratings without and with inverse "
            f"observation-propensity weights (propensities {ratings.propensity_source}), hyper-parameters chosen by "
            f"cross-validation on those ratings only, scored on {ratings.n_test} random (MCAR) ratings. Weighted "
            f"minus naive MSE: {d['value']:+.4f}, {level} CI [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (paired, "
            "standard error cluster-robust by user)."
        )
        section.tables.append(("MSE on the random (MCAR) ratings", ratings.to_frame()))
        section.data["rating_debiasing"] = ratings.to_dict()
    for name, table in extra_tables:
        section.tables.append((name, table))
        section.data.setdefault("extra_tables", {})[name] = table

    if panels:
        figure, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.6), squeeze=False)
        for axis, (kind, content) in zip(axes[0], panels, strict=True):
            if kind == "reliability":
                predicted = [row["mean_predicted"] for row in content]
                observed = [row["observed_rate"] for row in content]
                axis.plot(predicted, observed, "o-", label="cross-fitted propensities")
                top = max(predicted + observed + [1e-6])
                axis.plot([0, top], [0, top], "--", color="grey", label="perfect calibration")
                axis.set_xlabel("predicted probability of the (round, action) cell")
                axis.set_ylabel("observed share logged")
                axis.set_title("Propensity calibration (quantile bins)", fontsize=10)
            else:
                axis.errorbar(content["position"], content["examination"],
                              yerr=np.nan_to_num(1.96 * content["se"].to_numpy(dtype=np.float64)), fmt="o-",
                              capsize=3, label="estimated")
                if "true_examination" in content:
                    axis.plot(content["position"], content["true_examination"], "s--", label="true")
                axis.set_xticks(content["position"].to_numpy())  # slots, not fractions of one
                axis.set_xlabel("position (0 = top)")
                axis.set_ylabel("examination relative to position 0")
                axis.set_title("Position bias", fontsize=10)
            axis.legend(fontsize=7)
        figure.tight_layout()
        section.add_figure("Propensity calibration and position bias", figure)
    return section


__all__ = ["exposure_section"]
