"""Refuting an effect estimate: checks that a sound estimate should survive, run on clean private copies.

Each simulation starts from a fresh deep copy of the prepared rows (nothing any earlier fit wrote can leak in:
DoWhy's propensity estimators write columns into the frame they get, and a later refuter that reuses that frame
reports a large placebo effect with p = 0, DoWhy issue 1728), draws from its own ``numpy.random.Generator``
spawned from one ``SeedSequence`` (DoWhy's own loop with an int ``random_state`` repeats the same draw in every
simulation), refits the estimator family from its unfitted template through DoWhy, and records the mean CATE
(DoWhy's estimate value). The loop runs here, one job, so its cost is ``num_simulations`` refits per refuter.

================================  ===========================================  ======================================
refuter                           what changes                                 reading (p-value; pass if p >= alpha)
================================  ===========================================  ======================================
``placebo_treatment``             exposure permuted across rows                normal test of the mean simulated
                                                                               effect against 0 on the scale
                                                                               ``sqrt(se_ATE^2 + var_sim / S)``
``random_common_cause``           an independent N(0, 1) column added as a     two-sided t prediction test of the
                                  confounder                                   original among the simulated ones
``data_subset``                   a random ``subset_fraction`` of rows         as above
``bootstrap``                     rows resampled with replacement (copies of   as above
                                  one row share a cross-fitting fold)
``unobserved_common_cause``       a simulated confounder ``U ~ N(0, 1)`` takes  no p-value: passes if the effect keeps
                                  over a share ``kappa`` of exposure decisions  its sign at every strength; the E-value
                                  (``T = 1{U > q}`` keeping the exposure rate)  (VanderWeele & Ding 2017) of the risk
                                  and adds ``kappa * sd(Y) * U`` to the outcome ratio is reported alongside (binary
                                                                               0/1 outcomes only; NaN otherwise)
================================  ===========================================  ======================================

Passing proves nothing: these checks catch some bugs and some fragility, never an unobserved confounder.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._results import ResultMixin
from causalrec.effects.catalogue import is_meta_learner
from causalrec.effects.estimate import EffectResult, fit_through_dowhy
from causalrec.exceptions import ValidationError

logger = logging.getLogger(__name__)
_OWNER = "refute"

REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset", "bootstrap", "unobserved_common_cause")
CAVEAT = ("Passing a refuter proves nothing: it shows the estimate survives one kind of perturbation. "
          "No refuter can detect an unobserved confounder.")


@dataclass(frozen=True)
class Refutation(ResultMixin):
    """One refuter's outcome: the original estimate, each simulation's estimate, the p-value and the reading."""

    method: str
    original_effect: float
    new_effect: float
    new_effect_sd: float
    p_value: float
    passed: bool
    simulations: tuple[float, ...]
    reading: str
    settings: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self._row(exclude=("simulations", "settings"))])


@dataclass(frozen=True)
class RefutationResult(ResultMixin):
    """All refuters run on one estimate, as a table with a pass/fail reading and the caveat."""

    refutations: tuple[Refutation, ...]
    estimator: str
    num_simulations: int
    alpha: float
    random_state: int
    subject: str = ""
    caveat: str = CAVEAT

    def __getitem__(self, method: str) -> Refutation:
        for refutation in self.refutations:
            if refutation.method == method:
                return refutation
        raise KeyError(f"no refuter {method!r}; ran {[r.method for r in self.refutations]}")

    @property
    def all_passed(self) -> bool:
        return all(r.passed for r in self.refutations)

    def to_frame(self) -> pd.DataFrame:
        return pd.concat([r.to_frame() for r in self.refutations], ignore_index=True)

    def summary(self) -> str:
        columns = ["method", "original_effect", "new_effect", "new_effect_sd", "p_value", "passed"]
        with pd.option_context("display.width", 140):
            table = self.to_frame()[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")
        readings = [f"{r.method}: {r.reading}" for r in self.refutations]
        header = (f"Refutation of the {self.estimator} estimate ({self.num_simulations} simulations each, "
                  f"alpha {self.alpha})")
        return "\n".join([header, *([self.subject] if self.subject else []), table, *readings, self.caveat])


def _within_distribution(original: float, simulated: np.ndarray) -> float:
    """Two-sided prediction p-value of ``original`` among ``S`` simulated estimates.

    ``t = (original - mean) / (sd * sqrt(1 + 1 / S))`` on ``S - 1`` degrees of freedom: with few simulations the
    spread is poorly known and the test is lenient, as it should be.
    """
    count = len(simulated)
    spread = simulated.std(ddof=1)
    if not np.isfinite(spread) or spread == 0:
        return 1.0 if np.allclose(simulated, original) else 0.0
    statistic = abs(original - simulated.mean()) / (spread * np.sqrt(1 + 1 / count))
    return float(2 * stats.t.sf(statistic, df=count - 1))


def _e_value(result: EffectResult) -> tuple[float, str]:
    """E-value (VanderWeele & Ding 2017) of the risk ratio implied by the ATE and the mean control outcome, with a
    note when it is not reported (NaN).

    Only for a binary 0/1 outcome: for another outcome ``(mean_0 + ATE) / mean_0`` is no risk ratio and changes
    with a constant shift of ``Y``.
    """
    outcome = result._prepared.frame[result._prepared.outcome].to_numpy(np.float64)
    if not np.isin(outcome, (0.0, 1.0)).all():
        return float("nan"), "not reported: the outcome is not binary 0/1 (the E-value of a risk ratio needs risks)"
    baseline = float(np.mean(result._nuisances.outcome_control))
    treated = baseline + result.ate
    if not (0 < baseline <= 1 and 0 < treated <= 1):
        return float("nan"), (f"not reported: the implied risks {baseline:.3g} (unexposed) and {treated:.3g} "
                              "(exposed) are not both in (0, 1]")
    ratio = treated / baseline
    ratio = 1 / ratio if ratio < 1 else ratio
    return float(ratio + np.sqrt(ratio * (ratio - 1))), ""


def refute_estimate(
    result: EffectResult,
    methods: Sequence[str] | None = None,
    num_simulations: int = 3,
    random_state: int = 0,
    alpha: float = 0.05,
    subset_fraction: float = 0.8,
    confounder_strengths: Sequence[float] = (0.05, 0.15),
) -> RefutationResult:
    """Run ``methods`` (default: all of :data:`REFUTERS`) on ``result`` (see the module docstring)."""
    methods = tuple(REFUTERS if methods is None else methods)
    unknown = [m for m in methods if m not in REFUTERS]
    if unknown:
        raise ValidationError("methods", f"among {REFUTERS}", repr(unknown), owner=_OWNER)
    if num_simulations < 2:
        raise ValidationError("num_simulations", "at least 2 (a spread is needed for a p-value)",
                              repr(num_simulations), owner=_OWNER)
    if not 0 < subset_fraction < 1:
        raise ValidationError("subset_fraction", "in (0, 1)", repr(subset_fraction), owner=_OWNER)
    base = result._prepared
    template = result._model.template
    original = result._model.dowhy_value
    treatment, outcome = base.treatment, base.outcome
    streams = np.random.SeedSequence(random_state).spawn(len(REFUTERS))

    def refit(frame: pd.DataFrame, extra_confounders: tuple[str, ...] = (), groups=None) -> float:
        prepared = dataclasses.replace(base, frame=frame.reset_index(drop=True),
                                       confounders=base.confounders + extra_confounders)
        return fit_through_dowhy(result.problem, prepared, template, groups=groups).dowhy_value

    def simulate(method: str, draw) -> np.ndarray:
        seeds = streams[REFUTERS.index(method)].spawn(num_simulations)
        values = []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            values.append(draw(base.frame.copy(deep=True), rng))
        logger.info("%s: %s", method, values)
        return np.asarray(values, dtype=np.float64)

    rows = []
    n = base.n_rows
    for method in methods:
        settings: dict = {}
        if method == "placebo_treatment":
            def draw(frame, rng):
                frame[treatment] = rng.permutation(frame[treatment].to_numpy())
                return refit(frame)
            simulated = simulate(method, draw)
            # Each placebo estimate carries the sampling error of an effect estimate on these rows (at least the
            # reported ATE's standard error); the spread across permutations alone can understate it for
            # estimators that shrink (forests), so both enter the test's scale.
            scale = np.sqrt(result.ate_se**2 + simulated.var(ddof=1) / len(simulated))
            p_value = float(2 * stats.norm.sf(abs(simulated.mean()) / scale)) if scale > 0 else float(
                np.allclose(simulated, 0.0))
            passed = p_value >= alpha
            reading = (f"placebo effects average {simulated.mean():.4g} (sd {simulated.std(ddof=1):.3g}); "
                       + ("indistinguishable from 0, as they should be" if passed else
                          "significantly non-zero: the estimator finds an effect of a treatment that has none"))
        elif method == "unobserved_common_cause":
            strengths = tuple(float(k) for k in confounder_strengths)
            settings = {"strengths": strengths}
            seeds = streams[REFUTERS.index(method)].spawn(len(strengths))
            values = []
            for strength, seed in zip(strengths, seeds, strict=True):
                rng = np.random.default_rng(seed)
                frame = base.frame.copy(deep=True)
                hidden = rng.normal(size=n)
                exposed_rate = frame[treatment].mean()
                driven = rng.random(n) < strength
                by_hidden = (hidden > np.quantile(hidden, 1 - exposed_rate)).astype(np.int64)
                frame[treatment] = np.where(driven, by_hidden, frame[treatment].to_numpy())
                frame[outcome] = frame[outcome] + strength * frame[outcome].std() * hidden
                values.append(refit(frame))
            simulated = np.asarray(values)
            p_value = float("nan")
            passed = bool(np.all(np.sign(simulated) == np.sign(original)))
            e_value, e_value_note = _e_value(result)
            settings["e_value"] = e_value
            settings["e_value_note"] = e_value_note
            reading = (", ".join(f"kappa {k:g}: {v:.4g}" for k, v in zip(strengths, simulated, strict=True))
                       + ("; the sign holds" if passed else "; the sign flips")
                       + (f"; E-value of the risk ratio {e_value:.3g} (an unobserved confounder would need risk "
                          "ratios this large with both exposure and outcome to explain the effect away)"
                          if np.isfinite(e_value) else f"; E-value {e_value_note}"))
        else:
            if method == "random_common_cause":
                def draw(frame, rng):
                    frame["random_common_cause"] = rng.normal(size=len(frame))
                    return refit(frame, ("random_common_cause",))
            elif method == "data_subset":
                settings = {"subset_fraction": subset_fraction}

                def draw(frame, rng):
                    rows_kept = rng.choice(len(frame), int(subset_fraction * len(frame)), replace=False)
                    return refit(frame.iloc[np.sort(rows_kept)])
            else:
                def draw(frame, rng):
                    rows_drawn = rng.integers(0, len(frame), len(frame))
                    # Copies of a row in different cross-fitting folds would leak it into its own nuisance fit.
                    groups = None if is_meta_learner(template) else rows_drawn
                    return refit(frame.iloc[rows_drawn], groups=groups)
            simulated = simulate(method, draw)
            p_value = _within_distribution(original, simulated)
            passed = p_value >= alpha
            reading = (f"simulated effects {simulated.mean():.4g} (sd {simulated.std(ddof=1):.3g}) vs original "
                       f"{original:.4g}: " + ("consistent" if passed else "the estimate moves more than its spread"))
        if method != "unobserved_common_cause" and np.ptp(simulated) == 0:
            reading += " WARNING: all simulations identical; the randomness is not reaching the refits"
        rows.append(Refutation(method, float(original), float(simulated.mean()),
                               float(simulated.std(ddof=1)) if len(simulated) > 1 else float("nan"),
                               p_value, bool(passed), tuple(float(v) for v in simulated), reading, settings))
    return RefutationResult(tuple(rows), result.estimator, num_simulations, alpha, int(random_state),
                            subject=_subject(result, original))


def _subject(result: EffectResult, original: float) -> str:
    """What ``original_effect`` is, and how it relates to the reported ATE when the two differ."""
    text = f"original_effect = {result.estimator}'s mean CATE fitted through DoWhy ({original:.4g})"
    if not np.isclose(original, result.ate, rtol=1e-9, atol=0.0):
        text += (f"; the reported ATE {result.ate:.4g} is the {result.ate_method} estimate, which the refuters "
                 f"do not refit")
    return text
