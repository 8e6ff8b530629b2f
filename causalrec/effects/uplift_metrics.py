"""Uplift and Qini curves, AUUC, the Qini coefficient and uplift@k, each with a bootstrap interval.

Notation. Rows are sorted by a targeting score ``s`` (highest first); rows with *equal* scores form one tie
group and are always taken together, as ROC curves do, so the result never depends on row order. After the
first ``n`` rows (``n`` at the end of a tie group), let ``N_t(n), N_c(n)`` be the numbers of treated and control
rows and ``Y_t(n), Y_c(n)`` the sums of their outcomes. With ``N`` rows in all:

* uplift curve (Rzepakowski & Jaroszewicz 2012; scikit-uplift ``uplift_curve``; causalml ``get_cumgain``)::

      U(n) = (Y_t(n) / N_t(n) - Y_c(n) / N_c(n)) * n      (a ratio with an empty arm counts as 0)

* Qini curve (Radcliffe 2007; scikit-uplift ``qini_curve``; causalml ``get_qini``)::

      Q(n) = Y_t(n) - Y_c(n) * N_t(n) / N_c(n)            (0 while N_c(n) = 0)

Both start at ``(0, 0)``; their points equal scikit-uplift's everywhere and causalml's on untied scores (causalml
sorts rows without grouping ties, so its curves depend on row order when scores tie).

Areas use the trapezoidal rule over ``n``. The *random-targeting line* joins ``(0, 0)`` and ``(N, C(N))`` for a
curve ``C``. Normalisations (the ``normalize`` argument of :func:`auuc` and :func:`qini_coefficient`):

* ``"random"`` (default): ``(area(C) - area(random line)) / N**2``: the average over targeting budgets
  ``n / N in [0, 1]`` of the incremental outcomes *per member of the population* gained over random targeting.
  It needs no assumption on the outcome's scale (binary or continuous).
* ``"perfect"``: the same excess area divided by that of the best possible curve on the same data, as
  scikit-uplift's ``uplift_auc_score`` and ``qini_auc_score`` (Radcliffe's normalised Qini); 1 is perfect and 0
  random. Binary outcome only. The perfect Qini curve allows negative effects (scikit-uplift's default
  ``negative_effect=True``).
* ``"last"``: causalml's ``auuc_score`` (``normalize=True``, causalml 0.15). The lift ``L(n) = U(n) / n`` is set
  to 0 at ``n = 0``, taken from the curve at every tie-group end where both arms are non-empty, and interpolated
  linearly in ``n`` at the other rows (causalml's ``interpolate()``, which fills the leading rows where one arm is
  still empty); the gain ``n L(n) / |U(N)|`` is summed over ``n = 0..N`` and divided by ``N + 1``. On untied
  scores this is causalml's number (tests: H2O-3's recorded causalml reference). No random line is subtracted.

Intervals are percentile bootstrap intervals over rows, vectorised: each replicate is a multinomial weight
vector over rows, and all replicates' curves come from one cumulative sum over a (replicates x rows) matrix.
The ranking and the tie groups are held fixed (the score is a given function of the features). Replicates where
the metric is undefined (NaN) are left out of the interval and counted in ``n_undefined``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causalrec._arrays import as_numeric, check_finite
from causalrec._results import ResultMixin
from causalrec.exceptions import CausalrecWarning, ValidationError

_OWNER = "uplift_metrics"
NORMALIZATIONS = ("random", "perfect", "last")
# Rows x replicates held in memory at once by the vectorised bootstrap (about 80 MB of float64).
_BOOTSTRAP_CELLS = 10_000_000


@dataclass(frozen=True)
class UpliftCurve(ResultMixin):
    """Points of an uplift or Qini curve: ``n_targeted[j]`` rows targeted, ``value[j]`` incremental outcomes."""

    kind: str
    n_targeted: np.ndarray
    value: np.ndarray

    @property
    def fraction_targeted(self) -> np.ndarray:
        return self.n_targeted / self.n_targeted[-1]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"n_targeted": self.n_targeted, "fraction_targeted": self.fraction_targeted, self.kind: self.value}
        )


@dataclass(frozen=True)
class MetricEstimate(ResultMixin):
    """A metric's point value with a ``1 - alpha`` percentile-bootstrap interval (NaN without bootstrap).

    ``n_undefined`` replicates had an undefined (NaN) value and are not in the interval; ``note`` says why a value
    is NaN."""

    metric: str
    value: float
    ci_low: float
    ci_high: float
    normalization: str
    n_bootstrap: int
    alpha: float
    n_undefined: int = 0
    note: str = ""

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self._row()])


# --------------------------------------------------------------------------------------------- input checks
def _column(values, name: str) -> np.ndarray:
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    array = np.asarray(values)
    return as_numeric(array.reshape(-1) if array.ndim > 1 else array, name, None, owner=_OWNER).astype(np.float64)


def _check(outcome, treatment, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, t, s = _column(outcome, "outcome"), _column(treatment, "treatment"), _column(score, "score")
    if not (len(y) == len(t) == len(s)):
        raise ValidationError("outcome/treatment/score", "arrays of one length", f"{len(y)}, {len(t)}, {len(s)}", owner=_OWNER)
    if len(y) < 2:
        raise ValidationError("outcome", "at least 2 rows", f"{len(y)}", owner=_OWNER)
    bad = np.flatnonzero((t != 0) & (t != 1))
    if bad.size:
        raise ValidationError("treatment", "0/1 values", repr(t[bad[0]]), row=int(bad[0]), owner=_OWNER)
    check_finite(y, "outcome", owner=_OWNER)
    check_finite(s, "score", owner=_OWNER)
    if t.sum() == 0 or t.sum() == len(t):
        raise ValidationError("treatment", "both treated and control rows", f"only {int(t[0])}", owner=_OWNER)
    return y, t, s


def _tie_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending order of ``score`` and the start index (in that order) of each tie group."""
    order = np.argsort(-score, kind="mergesort")
    sorted_score = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_score)) + 1]
    return order, starts


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _curves(y, t, order, starts, weights: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Curve points for each row of ``weights`` (shape (B, N)); returns ``n`` and values, shape (B, G + 1)."""
    w = weights[:, order]
    ys, ts = y[order], t[order]
    sums = [np.cumsum(np.add.reduceat(w * column, starts, axis=1), axis=1)
            for column in (ts, ys * ts, 1.0 - ts, ys * (1.0 - ts))]
    n_treated, y_treated, n_control, y_control = sums
    n_all = n_treated + n_control
    if kind == "uplift":
        value = (_safe_ratio(y_treated, n_treated) - _safe_ratio(y_control, n_control)) * n_all
    elif kind == "qini":
        value = y_treated - y_control * _safe_ratio(n_treated, n_control)
    else:
        raise ValidationError("kind", "'uplift' or 'qini'", repr(kind), owner=_OWNER)
    zeros = np.zeros((w.shape[0], 1))
    return np.hstack([zeros, n_all]), np.hstack([zeros, value])


def _trapezoid(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.sum(np.diff(x, axis=1) * (values[:, 1:] + values[:, :-1]) / 2.0, axis=1)


def _excess_area(n: np.ndarray, value: np.ndarray) -> np.ndarray:
    total = n[:, -1]
    return _trapezoid(n, value) - total * value[:, -1] / 2.0


def _causalml_auuc(n, value, both_arms_seen) -> float:
    """causalml's ``auuc_score(normalize=True)`` of one curve (module docstring), on the row grid ``0..N``.

    Multinomial bootstrap weights are integers, so a weighted sample is a sample with repeated rows and the same
    grid applies; a group of zero weight repeats the previous point and changes nothing.
    """
    if not both_arms_seen[-1] or value[-1] == 0:
        return np.nan
    ends = n[1:][both_arms_seen]
    known_n = np.r_[0.0, ends]
    known_lift = np.r_[0.0, value[1:][both_arms_seen] / ends]
    keep = np.r_[True, np.diff(known_n) > 0]  # zero-weight groups repeat a point
    known_n, known_lift = known_n[keep], known_lift[keep]
    grid = np.arange(0, int(round(n[-1])) + 1, dtype=np.float64)
    gain = np.interp(grid, known_n, known_lift) * grid
    return float(gain.sum() / abs(value[-1]) / len(grid))


def _perfect_score(y: np.ndarray, t: np.ndarray, kind: str) -> np.ndarray:
    """The ordering of the best possible curve on these data (scikit-uplift's construction)."""
    if kind == "uplift":
        control_responders = np.sum((y == 1) & (t == 0))
        treated_nonresponders = np.sum((y == 0) & (t == 1))
        summand = y if control_responders > treated_nonresponders else t
        return 2.0 * (y == t) + summand
    return y * t - y * (1.0 - t)


def _bootstrap_weights(n_rows: int, n_bootstrap: int, rng: np.random.Generator):
    """Yield blocks of multinomial resampling weights (each row of a block sums to ``n_rows``)."""
    block = max(1, _BOOTSTRAP_CELLS // n_rows)
    done = 0
    while done < n_bootstrap:
        size = min(block, n_bootstrap - done)
        yield rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=size).astype(np.float64)
        done += size


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------- public API
def uplift_curve(outcome, treatment, score) -> UpliftCurve:
    """The uplift curve ``U(n)`` at the end of every tie group (see the module docstring)."""
    y, t, s = _check(outcome, treatment, score)
    order, starts = _tie_groups(s)
    n, value = _curves(y, t, order, starts, np.ones((1, len(y))), "uplift")
    return UpliftCurve("uplift", n[0], value[0])


def qini_curve(outcome, treatment, score) -> UpliftCurve:
    """The Qini curve ``Q(n)`` at the end of every tie group (see the module docstring)."""
    y, t, s = _check(outcome, treatment, score)
    order, starts = _tie_groups(s)
    n, value = _curves(y, t, order, starts, np.ones((1, len(y))), "qini")
    return UpliftCurve("qini", n[0], value[0])


def _area_metric(kind, outcome, treatment, score, normalize, n_bootstrap, alpha, random_state) -> MetricEstimate:
    if normalize not in NORMALIZATIONS:
        raise ValidationError("normalize", f"one of {NORMALIZATIONS}", repr(normalize), owner=_OWNER)
    y, t, s = _check(outcome, treatment, score)
    if normalize == "perfect" and not np.isin(y, (0.0, 1.0)).all():
        raise ValidationError("outcome", "binary 0/1 for normalize='perfect'", "non-binary values", owner=_OWNER)
    order, starts = _tie_groups(s)
    if normalize == "perfect":
        perfect_order, perfect_starts = _tie_groups(_perfect_score(y, t, kind))

    def statistic(weights: np.ndarray) -> np.ndarray:
        n, value = _curves(y, t, order, starts, weights, kind)
        if normalize == "random":
            return _excess_area(n, value) / n[:, -1] ** 2
        if normalize == "perfect":
            n_best, value_best = _curves(y, t, perfect_order, perfect_starts, weights, kind)
            best = _excess_area(n_best, value_best)
            return np.divide(_excess_area(n, value), best, out=np.full_like(best, np.nan), where=best != 0)
        # "last": causalml's per-row construction; weights are multinomial counts (rows repeat ``weight`` times).
        results = np.empty(weights.shape[0])
        for b in range(weights.shape[0]):
            w = weights[b]
            seen = _both_arms_seen(t, order, starts, w)
            results[b] = _causalml_auuc(n[b], value[b], seen)
        return results

    point = float(statistic(np.ones((1, len(y))))[0])
    low, high, n_undefined = _bootstrap(statistic, len(y), n_bootstrap, alpha, random_state)
    name = "auuc" if kind == "uplift" else "qini_coefficient"
    notes = []
    if not np.isfinite(point):
        notes.append("undefined: " + ("the uplift curve ends at 0 (U(N) = 0)" if normalize == "last" else
                                      "the perfect curve has no area above the random line"))
    if n_undefined:
        notes.append(f"{n_undefined} of {int(n_bootstrap)} bootstrap replicates were undefined and left out of "
                     "the interval")
    return MetricEstimate(name, point, low, high, normalize, int(n_bootstrap), alpha, n_undefined, "; ".join(notes))


def _bootstrap(statistic, n_rows: int, n_bootstrap: int, alpha: float, random_state) -> tuple[float, float, int]:
    """Percentile interval of ``statistic`` over bootstrap replicates, and the number of NaN replicates."""
    if not n_bootstrap:
        return np.nan, np.nan, 0
    rng = np.random.default_rng(random_state)
    replicates = np.concatenate([statistic(w) for w in _bootstrap_weights(n_rows, n_bootstrap, rng)])
    low, high = _interval(replicates, alpha)
    return low, high, int(np.sum(~np.isfinite(replicates)))


def _both_arms_seen(t, order, starts, w) -> np.ndarray:
    treated = np.cumsum(np.add.reduceat(w[order] * t[order], starts))
    control = np.cumsum(np.add.reduceat(w[order] * (1.0 - t[order]), starts))
    return (treated > 0) & (control > 0)


def auuc(
    outcome,
    treatment,
    score,
    normalize: str = "random",
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> MetricEstimate:
    """Area under the uplift curve, normalised as ``normalize`` says (module docstring), with a bootstrap interval.

    ``normalize="perfect"`` equals scikit-uplift's ``uplift_auc_score``; ``normalize="last"`` equals causalml's
    ``auuc_score(normalize=True)`` on untied scores. ``"last"`` bootstraps with a Python loop (slower).
    """
    return _area_metric("uplift", outcome, treatment, score, normalize, n_bootstrap, alpha, random_state)


def qini_coefficient(
    outcome,
    treatment,
    score,
    normalize: str = "random",
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> MetricEstimate:
    """Area between the Qini curve and the random-targeting line (Radcliffe 2007), with a bootstrap interval.

    ``normalize="perfect"`` equals scikit-uplift's ``qini_auc_score`` (``negative_effect=True``).
    """
    return _area_metric("qini", outcome, treatment, score, normalize, n_bootstrap, alpha, random_state)


def uplift_at_k(
    outcome,
    treatment,
    score,
    k: float | int = 0.3,
    strategy: str = "overall",
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> MetricEstimate:
    """Difference in mean outcome between treated and control rows among the top ``k`` by score.

    ``k`` is a fraction in (0, 1) (``floor(k * N)`` rows, as scikit-uplift) or a row count. ``strategy="overall"``
    takes the top rows of the whole population; ``"by_group"`` the top ``k`` of each arm separately (scikit-uplift's
    two strategies). A tie group straddling the cut enters with a fractional weight (its share of the remaining
    slots spread evenly over its rows), so the value is order-independent; on untied scores it equals
    scikit-uplift's ``uplift_at_k``.

    A ``k`` that selects no row (of an arm, for ``"by_group"``) or more rows than an arm holds (``"by_group"``)
    raises a ValidationError. If the top ``k`` holds no treated or no control row, the uplift is undefined: the
    value is NaN (as scikit-uplift), ``note`` says why and a CausalrecWarning is emitted. Bootstrap replicates
    with an empty arm are left out of the interval and counted in ``n_undefined``.
    """
    y, t, s = _check(outcome, treatment, score)
    if strategy not in ("overall", "by_group"):
        raise ValidationError("strategy", "'overall' or 'by_group'", repr(strategy), owner=_OWNER)
    n_rows = len(y)
    fraction = isinstance(k, float | np.floating)
    if isinstance(k, bool | np.bool_) or not (fraction or isinstance(k, int | np.integer)):
        raise ValidationError("k", "a fraction in (0, 1) or a positive row count", repr(k), owner=_OWNER)
    if fraction and not 0 < k < 1:
        raise ValidationError("k", "a fraction in (0, 1) or a positive row count", repr(k), owner=_OWNER)
    groups = ({"the population": np.ones(n_rows, bool)} if strategy == "overall"
              else {"the treated arm": t == 1, "the control arm": t == 0})
    if not fraction:
        limit = n_rows - 1 if strategy == "overall" else int(min(members.sum() for members in groups.values()))
        where = "" if strategy == "overall" else " (the smaller arm's size, strategy='by_group')"
        if not 1 <= k <= limit:
            raise ValidationError("k", f"a row count in [1, {limit}]{where}", repr(k), owner=_OWNER)
    for group, members in groups.items():
        if fraction and int(members.sum() * k) < 1:
            raise ValidationError("k", f"a fraction selecting at least one row of {group} "
                                  f"(floor(k * {int(members.sum())}) = 0)", repr(k), owner=_OWNER)

    def top_mask(members: np.ndarray) -> np.ndarray:
        """Fractional membership of the top ``k`` among ``members`` (boolean mask); selects 1..len rows."""
        index = np.flatnonzero(members)
        size = int(len(index) * k) if fraction else int(k)
        mask = np.zeros(n_rows)
        scores = s[index]
        cut = np.sort(scores)[::-1][size - 1]
        above, threshold_rows = scores > cut, scores == cut
        mask[index[above]] = 1.0
        mask[index[threshold_rows]] = (size - above.sum()) / threshold_rows.sum()
        return mask

    mask = sum(top_mask(members) for members in groups.values())

    def statistic(weights: np.ndarray) -> np.ndarray:
        wm = weights * mask
        n_treated, n_control = (wm * t).sum(axis=1), (wm * (1 - t)).sum(axis=1)
        defined = (n_treated > 0) & (n_control > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (wm * t * y).sum(axis=1) / n_treated - (wm * (1 - t) * y).sum(axis=1) / n_control
        return np.where(defined, value, np.nan)

    point = float(statistic(np.ones((1, n_rows)))[0])
    low, high, n_undefined = _bootstrap(statistic, n_rows, n_bootstrap, alpha, random_state)
    notes = []
    if not np.isfinite(point):
        empty = "treated" if not (mask * t).sum() > 0 else "control"
        notes.append(f"undefined: the top k = {k} rows by score hold no {empty} row")
    if n_undefined:
        notes.append(f"{n_undefined} of {int(n_bootstrap)} bootstrap replicates had no treated or no control row "
                     "in the top k and were left out of the interval")
    note = "; ".join(notes)
    if note:
        warnings.warn(f"uplift_at_k: {note}", CausalrecWarning, stacklevel=2)
    return MetricEstimate(f"uplift_at_{k}", point, low, high, strategy, int(n_bootstrap), alpha, n_undefined, note)


def uplift_report(
    outcome,
    treatment,
    score,
    k: float = 0.3,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """AUUC, Qini coefficient (both ``"random"``-normalised) and uplift@k with intervals, one row each."""
    seeds = np.random.SeedSequence(random_state if not isinstance(random_state, np.random.Generator)
                                   else random_state.integers(2**32)).spawn(3)
    rows = [
        auuc(outcome, treatment, score, n_bootstrap=n_bootstrap, alpha=alpha, random_state=np.random.default_rng(seeds[0])),
        qini_coefficient(outcome, treatment, score, n_bootstrap=n_bootstrap, alpha=alpha,
                         random_state=np.random.default_rng(seeds[1])),
        uplift_at_k(outcome, treatment, score, k=k, n_bootstrap=n_bootstrap, alpha=alpha,
                    random_state=np.random.default_rng(seeds[2])),
    ]
    return pd.DataFrame([r.to_dict() for r in rows])
