"""``estimate_effect``: the effect of exposure, with DoWhy's four verbs and EconML's estimators.

1. **model**: :class:`~causalrec.effects.problem.EffectProblem` builds DoWhy's ``CausalModel`` (back-door graph)
   on a private numeric copy of the rows;
2. **identify**: DoWhy's back-door estimand;
3. **estimate**: an EconML estimator with explicit, seeded, cross-fitted nuisance models, through the warning-free
   path ``dowhy.causal_estimators.econml.Econml(estimand, econml_estimator=instance)``; ``estimator="auto"``
   chooses the CATE family by held-out R-score (:mod:`causalrec.effects.model_selection`);
4. **refute**: :meth:`EffectResult.refute` (:mod:`causalrec.effects.refute`).

Estimands and their estimators:

* ATE ``E[Y(1) - Y(0)]``: always from a doubly-robust estimate (Robins et al. 1994; Kennedy 2020): the chosen model
  when it is a DR learner, otherwise an additional ``LinearDRLearner`` on the same nuisances. Its mean CATE over the
  rows equals the AIPW mean of the DR pseudo-outcomes, whatever the shape of the true CATE (a linear final
  stage such as LinearDML's does *not* estimate the ATE when the effect is heterogeneous). The interval is the
  EconML estimator's ``ate_interval`` (not DoWhy's per-unit intervals).
* ATT ``E[Y(1) - Y(0) | T = 1]``: the doubly-robust estimator for the treated on the cross-fitted nuisances
  (:meth:`~causalrec.effects.model_selection.Nuisances.att`) with its influence-function interval. (A CATE model
  averaged over exposed rows is biased for the ATT when its final stage is linear and the effect is not: 0.52
  against a true 0.47 on a simulation.)
* CATE ``tau(x) = E[Y(1) - Y(0) | X = x]``: :meth:`EffectResult.cate` and :meth:`EffectResult.cate_interval`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from causalrec._arrays import as_numeric, check_finite
from causalrec._results import ResultMixin, to_jsonable
from causalrec._text import confidence_level
from causalrec.effects.catalogue import (
    DEFAULT_CANDIDATES,
    DR_FAMILIES,
    check_cv,
    check_min_propensity,
    default_outcome_model,
    default_propensity_model,
    family_of,
    is_meta_learner,
    make_estimator,
)
from causalrec.effects.model_selection import (
    ModelSelection,
    Nuisances,
    blp_signal,
    cross_fit_nuisances,
    select_model,
)
from causalrec.effects.problem import EffectProblem, PreparedData
from causalrec.exceptions import CausalrecWarning, ValidationError

logger = logging.getLogger(__name__)
_OWNER = "effects"


@dataclass(frozen=True)
class FittedModel:
    """A DoWhy-wrapped fitted EconML estimator, the unfitted template it came from, and DoWhy's estimate."""

    family: str
    wrapper: Any = field(repr=False)
    template: Any = field(repr=False)
    dowhy_value: float = float("nan")

    @property
    def econml(self) -> Any:
        return self.wrapper.estimator

    @property
    def has_inference(self) -> bool:
        return not is_meta_learner(self.econml)


def fit_through_dowhy(problem: EffectProblem, prepared: PreparedData, template: Any, groups=None) -> FittedModel:
    """Model, identify and estimate with a deep copy of the unfitted ``template`` on a private copy of the rows.

    ``groups`` (cross-fitting estimators only) keeps rows of one group in one fold.
    """
    from dowhy.causal_estimators.econml import Econml
    from sklearn.exceptions import DataConversionWarning

    _, estimand = problem.identify(prepared)
    frame = prepared.frame.copy(deep=True)
    wrapper = Econml(estimand, econml_estimator=copy.deepcopy(template))
    with warnings.catch_warnings():
        # EconML's meta-learners hand scikit-learn a column-vector treatment; harmless, and not ours to fix.
        warnings.filterwarnings("ignore", category=DataConversionWarning)
        wrapper.fit(frame, effect_modifier_names=list(prepared.effect_modifiers),
                    **({} if groups is None else {"groups": np.asarray(groups)}))
    estimate = wrapper.estimate_effect(frame, treatment_value=1, control_value=0, target_units="ate")
    return FittedModel(family_of(template), wrapper, template, float(np.ravel(estimate.value)[0]))


def _summary_inference(model: FittedModel, frame: pd.DataFrame, alpha: float) -> tuple[float, float, float, float]:
    """Mean CATE over ``frame``'s rows with its standard error and interval (EconML ``ate_inference``)."""
    columns = model.wrapper._effect_modifier_names
    inference = model.econml.ate_inference(X=frame[columns].to_numpy(np.float64))
    low, high = inference.conf_int_mean(alpha=alpha)
    return (float(np.ravel(inference.mean_point)[0]), float(np.ravel(inference.stderr_mean)[0]),
            float(np.ravel(low)[0]), float(np.ravel(high)[0]))


@dataclass(frozen=True)
class EffectResult(ResultMixin):
    """ATE, ATT and CATE of exposure with intervals, how they were estimated and the evidence behind them.

    Public fields are plain numbers and tables (``to_dict`` is JSON-safe); the fitted models are kept in
    private fields for :meth:`cate`, :meth:`cate_interval` and :meth:`refute`.
    """

    problem: EffectProblem
    estimator: str
    ate: float
    ate_se: float
    ate_interval: tuple[float, float]
    att: float
    att_se: float
    att_interval: tuple[float, float]
    naive_difference: float
    naive_se: float
    naive_interval: tuple[float, float]
    alpha: float
    n_rows: int
    n_exposed: int
    ate_method: str
    att_method: str
    estimand: str
    diagnostics: dict
    warnings: tuple[str, ...] = ()
    selection: ModelSelection | None = None
    random_state: int = 0
    options: dict = field(default_factory=dict)
    _prepared: PreparedData | None = field(default=None, repr=False, compare=False)
    _model: FittedModel | None = field(default=None, repr=False, compare=False)
    _ate_model: FittedModel | None = field(default=None, repr=False, compare=False)
    _nuisances: Nuisances | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------------------------------- CATE
    def _encoded(self, data: pd.DataFrame | None) -> pd.DataFrame:
        """``data`` encoded like the estimation rows, restricted to the columns the CATE model reads."""
        if data is None:
            return self._prepared.frame
        return self._prepared.encode(data, self._model.wrapper._effect_modifier_names)

    def cate(self, data: pd.DataFrame | None = None) -> np.ndarray:
        """Estimated effect of exposure for each row of ``data`` (default: the estimation rows).

        Missing values and categories not seen in fitting raise a ValidationError naming the column and row.
        """
        frame = self._encoded(data)
        return np.asarray(self._model.wrapper.effect(frame), dtype=np.float64).ravel()

    def cate_interval(self, data: pd.DataFrame | None = None, alpha: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-row ``1 - alpha`` CATE intervals; NaN for meta-learners, which have no analytic inference.

        These are EconML's pointwise normal intervals around :meth:`cate`. They capture sampling spread, not the
        smoothing bias of the CATE model, so at moderate sample sizes they cover the true per-row effect less often
        than ``1 - alpha`` (causal forest, 5,000 confounded rows of :func:`causalrec.simulate.make_world` as in
        ``tests/test_effects.py``: 95% intervals held the true effect for about 60% of rows). Use them to rank
        and screen units; for decisions prefer the ATE/ATT intervals or a randomised evaluation of the targeting
        (:meth:`uplift_metrics`).
        """
        frame = self._encoded(data)
        if not self._model.has_inference:
            nan = np.full(len(frame), np.nan)
            return nan, nan.copy()
        columns = self._model.wrapper._effect_modifier_names
        low, high = self._model.econml.effect_interval(frame[columns].to_numpy(np.float64),
                                                       alpha=self.alpha if alpha is None else alpha)
        return np.ravel(low).astype(np.float64), np.ravel(high).astype(np.float64)

    def uplift_metrics(self, data: pd.DataFrame, k: float = 0.3, n_bootstrap: int = 200,
                       random_state: int | None = None) -> pd.DataFrame:
        """AUUC, Qini coefficient and uplift@k of ranking ``data``'s rows by the estimated CATE, with intervals.

        Uplift curves compare exposed and unexposed rows *within* each targeted share, so they estimate
        uplift only where exposure in ``data`` is randomised (an experiment, a randomised hold-out); use rows
        not used for fitting. See :mod:`causalrec.effects.uplift_metrics` for the definitions.
        """
        from causalrec.effects.uplift_metrics import uplift_report

        if not isinstance(data, pd.DataFrame):
            raise ValidationError("data", "a pandas DataFrame", type(data).__name__, owner=_OWNER)
        name, outcome_name = self.problem.treatment, self.problem.outcome
        missing = [c for c in (name, outcome_name) if c not in data.columns]
        if missing:
            raise ValidationError("columns", "the treatment and outcome columns", f"missing {missing}", owner=_OWNER)
        # Checked as 0/1 before any cast: an int cast would turn 0.5 into 0.
        treatment = as_numeric(data[name], name, None, owner=_OWNER)
        bad = np.flatnonzero((treatment != 0) & (treatment != 1))
        if bad.size:
            raise ValidationError(name, "a binary 0/1 (or bool) exposure", repr(data[name].iloc[bad[0]]),
                                  row=int(bad[0]), owner=_OWNER)
        outcome = as_numeric(data[outcome_name], outcome_name, None, owner=_OWNER)
        check_finite(outcome, outcome_name, owner=_OWNER)
        return uplift_report(outcome.astype(np.float64), treatment.astype(np.int64), self.cate(data),
                             k=k, n_bootstrap=n_bootstrap, random_state=self.random_state if random_state is None
                             else random_state)

    @property
    def econml_estimator(self) -> Any:
        """The fitted EconML estimator behind the CATE (for SHAP values, policy trees, ...)."""
        return self._model.econml

    # ------------------------------------------------------------------------------------------- refute
    def refute(self, methods: Sequence[str] | None = None, num_simulations: int = 3,
               random_state: int | None = None, **options):
        """Run refuters on private copies of the rows (see :func:`causalrec.effects.refute.refute_estimate`)."""
        from causalrec.effects.refute import refute_estimate

        return refute_estimate(self, methods=methods, num_simulations=num_simulations,
                               random_state=self.random_state if random_state is None else random_state, **options)

    # ------------------------------------------------------------------------------------------- reporting
    def to_frame(self) -> pd.DataFrame:
        rows = [
            ("ATE", self.ate, self.ate_se, *self.ate_interval, self.ate_method),
            ("ATT", self.att, self.att_se, *self.att_interval, self.att_method),
            ("naive difference", self.naive_difference, self.naive_se, *self.naive_interval,
             "difference in means (Welch)"),
        ]
        return pd.DataFrame(rows, columns=["estimand", "estimate", "se", "ci_low", "ci_high", "method"])

    def to_dict(self) -> dict:
        payload = {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
                   if not f.name.startswith("_")}
        payload["problem"] = dataclasses.asdict(self.problem)
        return to_jsonable(payload)

    def summary(self) -> str:
        with pd.option_context("display.width", 140):
            table = self.to_frame().to_string(index=False, float_format=lambda v: f"{v:.5g}")
        diag = self.diagnostics
        lines = [
            f"Effect of exposure ({self.problem.describe()})",
            f"{self.n_rows} rows, {self.n_exposed} exposed; CATE estimator: {self.estimator}; "
            f"{confidence_level(self.alpha)} intervals",
            table,
            f"propensity AUC {diag['propensity_auc']:.3f} (se {diag['propensity_auc_se']:.3f}), propensity range "
            f"[{diag['propensity_min']:.3g}, {diag['propensity_max']:.3g}], share clipped "
            f"{diag['share_clipped']:.2%}, IPW effective sample size {diag['ipw_effective_sample_size']:.0f}",
        ]
        if self.selection is not None:
            lines.append(f"auto: chose {self.selection.chosen}: {self.selection.reason}")
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def _backdoor_text(estimand) -> str:
    """DoWhy's back-door estimand and its assumption as one line, e.g. ``Derivative(Expectation(y|w), [t])``."""
    backdoor = estimand.estimands.get("backdoor") or {}
    assumptions = "; ".join(f"{k}: {v}" for k, v in (backdoor.get("assumptions") or {}).items())
    return f"{backdoor.get('estimand')} ({assumptions})"


def _naive(y: np.ndarray, t: np.ndarray, alpha: float) -> tuple[float, float, tuple[float, float]]:
    """The unadjusted difference in means, its unpooled (Welch) standard error and normal interval."""
    treated, control = y[t == 1], y[t == 0]
    difference = treated.mean() - control.mean()
    se = np.sqrt(treated.var(ddof=1) / len(treated) + control.var(ddof=1) / len(control))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(difference), float(se), (float(difference - z * se), float(difference + z * se))


def _diagnostics(nuisances: Nuisances, t: np.ndarray) -> tuple[dict, list[str]]:
    e = nuisances.propensity
    weights = np.where(t == 1, 1 / e, 1 / (1 - e))
    ess = float(weights.sum() ** 2 / np.sum(weights**2))
    clipped = np.mean((e <= nuisances.min_propensity + 1e-12) | (e >= 1 - nuisances.min_propensity - 1e-12))
    diagnostics = {
        "propensity_auc": nuisances.propensity_auc, "propensity_auc_se": nuisances.propensity_auc_se,
        "propensity_min": float(e.min()), "propensity_max": float(e.max()),
        "share_clipped": float(clipped), "share_extreme_propensity": float(np.mean((e < 0.05) | (e > 0.95))),
        "ipw_effective_sample_size": ess,
    }
    messages = []
    if diagnostics["share_extreme_propensity"] > 0.1:
        messages.append(f"{diagnostics['share_extreme_propensity']:.0%} of rows have an exposure propensity outside "
                        "[0.05, 0.95]: overlap is poor and effects rest on extrapolation")
    return diagnostics, messages


def _heterogeneity_warning(selection, problem: EffectProblem) -> list[str]:
    """A warning when no candidate's held-out CATE beats the best constant effect (R-score <= 0): the per-unit effect
    sizes are then no better than the ATE, and, unless the BLP slope still finds ranking signal, neither is the
    order of units by CATE."""
    best = selection.table.iloc[0]
    if best["r_score"] > 0:
        return []
    modifiers = ", ".join(problem.modifiers) or "the features"
    evidence = (f"no CATE model beats a constant effect on held-out rows (best R-score {best['r_score']:.4f}, "
                f"{best['estimator']}; BLP slope {best['blp_slope']:.2f} +/- {best['blp_slope_se']:.2f})")
    if blp_signal(best["blp_slope"], best["blp_slope_se"]):
        # The ranking carries signal (Chernozhukov et al.'s BLP test) although the effect sizes do not beat a constant.
        return [f"{evidence}: the ranking of units by CATE carries some signal (BLP slope significantly above 0), "
                "but the individual effect sizes are no better than the ATE; use CATE to order units, the ATE for "
                "how large the effect is"]
    return [f"{evidence}: the data do not support effects that vary with {modifiers}; act on the ATE, not on "
            "per-unit CATE rankings"]


def estimate_effect(
    data: pd.DataFrame,
    treatment: str,
    outcome: str,
    confounders: Sequence[str] = (),
    effect_modifiers: Sequence[str] | None = None,
    score: str | None = None,
    estimator: str | Any = "auto",
    random_state: int = 0,
    alpha: float = 0.05,
    outcome_model: Any = None,
    propensity_model: Any = None,
    cv: int = 3,
    min_propensity: float = 0.01,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    selection_splits: int = 2,
    use_ray: bool = False,
    n_bootstrap: int = 100,
) -> EffectResult:
    """Estimate the effect of exposure ``treatment`` on ``outcome`` (module docstring for the estimands).

    ``data`` is never modified. ``confounders`` (and the ranker ``score``) are adjusted for; ``effect_modifiers``
    (default: the confounders) are the CATE's features. ``estimator`` is a family name of
    :mod:`causalrec.effects.catalogue`, ``"auto"`` (choose among ``candidates`` by held-out R-score) or an
    unfitted EconML estimator instance. ``outcome_model`` / ``propensity_model`` are any scikit-learn
    regressor / classifier (default LightGBM), cloned and seeded per use; nuisances are cross-fitted with ``cv``
    folds (an int >= 2) and propensities clipped to ``[min_propensity, 1 - min_propensity]`` (``min_propensity``
    in (0, 0.5)). ``use_ray`` distributes DML/DR cross-fitting with Ray.
    """
    if not 0 < alpha < 1:
        raise ValidationError("alpha", "in (0, 1)", repr(alpha), owner=_OWNER)
    cv, min_propensity = check_cv(cv), check_min_propensity(min_propensity)
    problem = EffectProblem(treatment, outcome, tuple(confounders), tuple(effect_modifiers or ()), score)
    prepared = problem.prepare(data)
    y, t, features, controls = prepared.arrays()
    outcome_model = default_outcome_model(random_state) if outcome_model is None else outcome_model
    propensity_model = default_propensity_model(random_state) if propensity_model is None else propensity_model
    options = dict(outcome_model=outcome_model, propensity_model=propensity_model, cv=cv,
                   min_propensity=min_propensity, use_ray=use_ray)

    nuisances = cross_fit_nuisances(prepared.all_features(), y, t, outcome_model, propensity_model,
                                    cv=cv, min_propensity=min_propensity, random_state=random_state)
    diagnostics, messages = _diagnostics(nuisances, t)
    diagnostics["n_positive_outcomes_exposed"] = int(np.sum((y > 0) & (t == 1)))

    selection = None
    if isinstance(estimator, str) and estimator == "auto":
        # Candidate scoring fits meta-learners too, which cannot use Ray; only the final fit does.
        selection = select_model(y, t, features, controls, nuisances, candidates=candidates,
                                 n_splits=selection_splits, random_state=random_state, n_bootstrap=n_bootstrap,
                                 **{**options, "use_ray": False})
        estimator = selection.chosen
        messages += _heterogeneity_warning(selection, problem)
    template = make_estimator(estimator, random_state=random_state, **options) if isinstance(estimator, str) \
        else copy.deepcopy(estimator)

    model = fit_through_dowhy(problem, prepared, template)
    if model.family in DR_FAMILIES:
        ate_model = model
    else:
        ate_model = fit_through_dowhy(problem, prepared,
                                      make_estimator("linear_dr", random_state=random_state, **options))
    frame = prepared.frame
    ate, ate_se, ate_low, ate_high = _summary_inference(ate_model, frame, alpha)
    att, att_se = nuisances.att(y, t)
    z = stats.norm.ppf(1 - alpha / 2)
    att_low, att_high = att - z * att_se, att + z * att_se
    naive, naive_se, naive_interval = _naive(y, t, alpha)
    _, estimand = problem.identify(prepared)
    for message in messages:
        warnings.warn(message, CausalrecWarning, stacklevel=2)
    return EffectResult(
        problem=problem, estimator=model.family, ate=ate, ate_se=ate_se, ate_interval=(ate_low, ate_high),
        att=att, att_se=att_se, att_interval=(att_low, att_high), naive_difference=naive,
        naive_se=naive_se, naive_interval=naive_interval, alpha=alpha, n_rows=prepared.n_rows, n_exposed=int(t.sum()),
        ate_method=f"doubly robust ({ate_model.family}, mean CATE = AIPW)",
        att_method="doubly robust (AIPW on the exposed, cross-fitted nuisances)",
        estimand=_backdoor_text(estimand),
        diagnostics=diagnostics, warnings=tuple(messages), selection=selection, random_state=random_state,
        options={"cv": cv, "min_propensity": min_propensity, "use_ray": use_ray,
                 "outcome_model": type(outcome_model).__name__, "propensity_model": type(propensity_model).__name__,
                 "dowhy_mean_cate": model.dowhy_value},
        _prepared=prepared, _model=model, _ate_model=ate_model, _nuisances=nuisances,
    )
