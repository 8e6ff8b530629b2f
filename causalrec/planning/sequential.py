"""Sequential designs: group-sequential boundaries for K planned looks and always-valid (mSPRT) tests.

Model
-----
At look ``k`` the experiment has accumulated the information fraction ``t_k`` (share of the maximum sample)
and the z-statistic is ``Z_k = W(t_k) / sqrt(t_k)`` for a Brownian motion ``W`` with drift ``theta`` (the
drift is the expected z-statistic at the maximum sample, ``effect / se_max``). ``Z_1 .. Z_K`` are
multivariate normal with ``corr(Z_i, Z_j) = sqrt(t_i / t_j)``.

Crossing probabilities are computed by the Armitage-McPherson-Rowe (1969) recursion: the sub-density of
``W(t_k)`` on the continuation region is propagated look by look by numerical integration (composite Simpson
rule on a grid of at least ``grid_points_per_sd`` points per standard deviation of the increment, Jennison
and Turnbull 2000, ch. 19). The tests cross-check it against ``scipy.stats.multivariate_normal.cdf``.

Boundaries (reject H0 at the first look with ``|Z_k| >= c_k``; two-sided designs are symmetric, one-sided
designs reject for ``Z_k >= c_k``):

* ``"pocock"``: constant ``c_k = c`` (Pocock 1977);
* ``"obrien_fleming"``: ``c_k = C / sqrt(t_k)`` (O'Brien and Fleming 1979; ``C`` is the final-look value);
* ``"lan_demets_obf"``: alpha spending with the O'Brien-Fleming-type function; each side spends
  ``a(t) = 2 - 2 Phi(z_{a/2} / sqrt(t))`` with ``a`` the one-sided level (``alpha / 2`` for a two-sided test),
  the convention of Lan and DeMets (1983), Reboussin et al. (2000, ``ld98``/``ldbounds``) and gsDesign's
  ``sfLDOF``;
* ``"lan_demets_pocock"``: Pocock-type spending ``a(t) = a log(1 + (e - 1) t)``.

No futility boundary is used (a design may still stop for futility non-bindingly without harming the type-I
error). The maximum-sample inflation factor is ``R = (theta_K / (z_a + z_b))^2``: the maximum sample of the
sequential design relative to the fixed design with the same alpha and power (power counted as crossing the
upper boundary, i.e. rejecting in the direction of the effect).

Always-valid tests
------------------
The mixture sequential probability ratio test (mSPRT; Robbins 1970, Johari et al. 2017/2022) with a normal
mixing distribution ``N(0, tau^2)`` on the effect: with the current estimate ``d`` and its standard error ``s``,

    Lambda = sqrt(s^2 / (s^2 + tau^2)) exp(tau^2 d^2 / (2 s^2 (s^2 + tau^2)))

and H0 is rejected as soon as ``Lambda >= 1 / alpha``; the always-valid p-value is ``min(1, 1 / max Lambda)``
so far. Equivalently ``|Z| >= sqrt((1 + s^2/tau^2) (2 log(1/alpha) + log(1 + tau^2/s^2)))``, and the
confidence sequence is ``d +- s sqrt(...)``. The type-I error stays below ``alpha`` however often one looks.
The tuning parameter ``tau`` is expressed as ``mixture_variance_ratio = tau^2 / s_max^2`` (the mixture variance
over the variance of the estimate at the maximum sample); the default minimises the boundary at the maximum
sample. Its power and inflation factor at K looks come from the same recursion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from causalrec._checks import (
    fail,
    one_of,
    open_unit_interval,
    positive,
    positive_integer,
    whole_units,
)
from causalrec._results import ResultMixin

_OWNER = "planning.sequential"
GROUP_SEQUENTIAL_KINDS = ("pocock", "obrien_fleming", "lan_demets_obf", "lan_demets_pocock")
SEQUENTIAL_KINDS = GROUP_SEQUENTIAL_KINDS + ("msprt",)
_NO_BOUNDARY = 40.0  # a z-boundary this large is never crossed (probability below 1e-300)
_TAIL_SDS = 9.0  # truncate unbounded continuation regions this many standard deviations from the mean


# ----------------------------------------------------------------------------------------------- recursion
def _simpson_grid(low: float, high: float, step: float, max_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    intervals = max(2, math.ceil((high - low) / step))
    intervals = min(intervals + intervals % 2, max_nodes - 1 + (max_nodes - 1) % 2)
    nodes = np.linspace(low, high, intervals + 1)
    weights = np.ones(intervals + 1)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return nodes, weights * (high - low) / (3.0 * intervals)


class _Recursion:
    """Sub-density of ``W(t_k)`` on the continuation region, advanced one look at a time."""

    def __init__(self, fractions: np.ndarray, drift: float, two_sided: bool, grid_points_per_sd: int, max_nodes: int):
        self.fractions = fractions
        self.drift = drift
        self.two_sided = two_sided
        self.grid_points_per_sd = grid_points_per_sd
        self.max_nodes = max_nodes
        self.look = 0
        self.nodes: np.ndarray | None = None
        self.weighted_density: np.ndarray | None = None  # Simpson weight * sub-density at the nodes

    def _increment(self) -> tuple[float, float]:
        k = self.look
        previous = self.fractions[k - 1] if k else 0.0
        step = self.fractions[k] - previous
        return self.drift * step, math.sqrt(step)

    def exit_probabilities(self, boundary: float) -> tuple[float, float]:
        """P(first crossing at the current look above ``boundary`` / below ``-boundary``) on the z-scale."""
        mean, sd = self._increment()
        edge = boundary * math.sqrt(self.fractions[self.look])
        if self.nodes is None:
            upper = stats.norm.sf((edge - mean) / sd)
            lower = stats.norm.cdf((-edge - mean) / sd) if self.two_sided else 0.0
            return float(upper), float(lower)
        upper = float(self.weighted_density @ stats.norm.sf((edge - self.nodes - mean) / sd))
        lower = (
            float(self.weighted_density @ stats.norm.cdf((-edge - self.nodes - mean) / sd)) if self.two_sided else 0.0
        )
        return upper, lower

    def advance(self, boundary: float) -> None:
        """Fix the boundary of the current look and move the sub-density to the next look."""
        k = self.look
        mean, sd = self._increment()
        t = self.fractions[k]
        centre, spread = self.drift * t, math.sqrt(t)
        edge = boundary * spread
        high = min(edge, centre + _TAIL_SDS * spread)
        low = max(-edge, centre - _TAIL_SDS * spread) if self.two_sided else centre - _TAIL_SDS * spread
        next_sd = math.sqrt(self.fractions[k + 1] - t) if k + 1 < len(self.fractions) else sd
        step = min(sd, next_sd) / self.grid_points_per_sd
        if high <= low:  # everything has crossed already
            nodes, weights = np.array([0.0, 0.0, 0.0]), np.zeros(3)
        else:
            nodes, weights = _simpson_grid(low, high, step, self.max_nodes)
        if self.nodes is None:
            density = stats.norm.pdf((nodes - mean) / sd) / sd
        else:
            kernel = stats.norm.pdf((nodes[None, :] - self.nodes[:, None] - mean) / sd) / sd
            density = self.weighted_density @ kernel
        self.nodes = nodes
        self.weighted_density = weights * density
        self.look += 1


def crossing_probabilities(
    boundaries: Sequence[float],
    information_fractions: Sequence[float],
    drift: float = 0.0,
    *,
    two_sided: bool = True,
    grid_points_per_sd: int = 24,
    max_nodes: int = 3001,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of first crossing ``+c_k`` (upper) and ``-c_k`` (lower, two-sided only) at each look.

    ``boundaries`` are z-scale critical values ``c_k``; ``drift`` is the mean of ``Z`` at information 1.
    """
    fractions = _check_fractions(information_fractions)
    bounds = np.asarray(boundaries, dtype=float)
    if bounds.shape != fractions.shape:
        raise fail(_OWNER, "boundaries", f"one per look ({fractions.size})", f"{bounds.size}")
    recursion = _Recursion(fractions, float(drift), two_sided, grid_points_per_sd, max_nodes)
    upper = np.zeros(fractions.size)
    lower = np.zeros(fractions.size)
    for k, boundary in enumerate(bounds):
        upper[k], lower[k] = recursion.exit_probabilities(float(boundary))
        if k + 1 < fractions.size:
            recursion.advance(float(boundary))
    return upper, lower


def _check_fractions(information_fractions: Sequence[float]) -> np.ndarray:
    fractions = np.array(information_fractions, dtype=float)  # a copy: the last value is set to 1 below
    if (
        fractions.ndim != 1
        or fractions.size < 1
        or not np.all(np.isfinite(fractions))
        or np.any(np.diff(fractions) <= 0)
        or fractions[0] <= 0
        or not math.isclose(fractions[-1], 1.0, rel_tol=0, abs_tol=1e-12)
    ):
        raise fail(
            _OWNER, "information_fractions", "strictly increasing values in (0, 1] ending at 1", fractions.tolist()
        )
    fractions[-1] = 1.0
    return fractions


def equally_spaced(n_looks: int) -> np.ndarray:
    """Information fractions ``k / K`` for ``k = 1..K``."""
    n_looks = positive_integer(_OWNER, "n_looks", n_looks)
    return np.arange(1, n_looks + 1) / n_looks


# ----------------------------------------------------------------------------------------------- boundaries
def spending_function(kind: str, one_sided_alpha: float, fractions: np.ndarray) -> np.ndarray:
    """Cumulative one-sided alpha spent at ``fractions`` by a Lan-DeMets spending function."""
    if kind == "lan_demets_obf":
        return 2.0 - 2.0 * stats.norm.cdf(stats.norm.isf(one_sided_alpha / 2) / np.sqrt(fractions))
    if kind == "lan_demets_pocock":
        return one_sided_alpha * np.log1p((math.e - 1.0) * fractions)
    raise fail(_OWNER, "kind", "'lan_demets_obf' or 'lan_demets_pocock'", kind)


def _total_crossing(boundaries: np.ndarray, fractions: np.ndarray, drift: float, two_sided: bool, **grid) -> float:
    upper, lower = crossing_probabilities(boundaries, fractions, drift, two_sided=two_sided, **grid)
    return float(upper.sum() + lower.sum())


def _shape(kind: str, fractions: np.ndarray) -> np.ndarray:
    return np.ones_like(fractions) if kind == "pocock" else 1.0 / np.sqrt(fractions)


def group_sequential_boundaries(
    kind: str,
    information_fractions: Sequence[float],
    alpha: float,
    *,
    two_sided: bool = True,
    grid_points_per_sd: int = 24,
    max_nodes: int = 3001,
) -> np.ndarray:
    """z-scale critical values ``c_1..c_K`` with overall type-I error ``alpha`` (two-sided: both sides)."""
    kind = one_of(_OWNER, "kind", kind, GROUP_SEQUENTIAL_KINDS)
    fractions = _check_fractions(information_fractions)
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    grid = {"grid_points_per_sd": grid_points_per_sd, "max_nodes": max_nodes}
    if kind in ("pocock", "obrien_fleming"):
        shape = _shape(kind, fractions)

        def excess(scale: float) -> float:
            return _total_crossing(scale * shape, fractions, 0.0, two_sided, **grid) - alpha

        scale = optimize.brentq(excess, 0.1, 12.0, xtol=1e-13, rtol=4 * np.finfo(float).eps)
        return scale * shape
    one_sided_alpha = alpha / 2 if two_sided else alpha
    cumulative = spending_function(kind, one_sided_alpha, fractions)
    per_look = np.diff(np.concatenate([[0.0], cumulative])) * (2.0 if two_sided else 1.0)
    recursion = _Recursion(fractions, 0.0, two_sided, grid_points_per_sd, max_nodes)
    boundaries = np.empty(fractions.size)
    for k, target in enumerate(per_look):
        def excess(boundary: float, target: float = target) -> float:
            return sum(recursion.exit_probabilities(boundary)) - target

        if target <= 0 or excess(_NO_BOUNDARY) >= 0:
            boundaries[k] = _NO_BOUNDARY
        else:
            boundaries[k] = optimize.brentq(excess, 0.0, _NO_BOUNDARY, xtol=1e-13, rtol=4 * np.finfo(float).eps)
        if k + 1 < fractions.size:
            recursion.advance(boundaries[k])
    return boundaries


def drift_for_power(
    boundaries: Sequence[float],
    information_fractions: Sequence[float],
    power: float,
    *,
    two_sided: bool = True,
    grid_points_per_sd: int = 24,
    max_nodes: int = 3001,
) -> float:
    """Drift (expected z at the maximum sample) at which the upper boundary is crossed with probability ``power``."""
    fractions = _check_fractions(information_fractions)

    def gap(drift: float) -> float:
        upper, _ = crossing_probabilities(
            boundaries, fractions, drift, two_sided=two_sided, grid_points_per_sd=grid_points_per_sd,
            max_nodes=max_nodes,
        )
        return float(upper.sum()) - power

    high = 10.0
    while gap(high) < 0:
        high *= 2.0
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-12, rtol=4 * np.finfo(float).eps))


# ----------------------------------------------------------------------------------------------- mSPRT
def msprt_z_boundary(variance_ratio: float | np.ndarray, alpha: float) -> np.ndarray:
    """mSPRT z-boundary for ``variance_ratio = tau^2 / s^2`` (mixture variance over the estimate's variance)."""
    ratio = np.asarray(variance_ratio, dtype=float)
    return np.sqrt((1.0 + 1.0 / ratio) * (2.0 * math.log(1.0 / alpha) + np.log1p(ratio)))


def optimal_mixture_variance_ratio(alpha: float) -> float:
    """``tau^2 / s^2`` that minimises the mSPRT boundary at the look where the estimate has variance ``s^2``."""
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    result = optimize.minimize_scalar(
        lambda log_ratio: float(msprt_z_boundary(math.exp(log_ratio), alpha)),
        bounds=(-10.0, 15.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(result.x)


def msprt_likelihood_ratio(estimate, standard_error, mixture_variance):
    """Normal-mixture likelihood ratio ``Lambda`` (module docstring); broadcasts over arrays."""
    s2 = np.asarray(standard_error, dtype=float) ** 2
    tau2 = float(mixture_variance)
    d = np.asarray(estimate, dtype=float)
    return np.sqrt(s2 / (s2 + tau2)) * np.exp(tau2 * d**2 / (2.0 * s2 * (s2 + tau2)))


def always_valid_p_values(estimates, standard_errors, mixture_variance) -> np.ndarray:
    """Running always-valid p-values ``min(1, 1 / max_{j <= k} Lambda_j)`` along the last axis (looks)."""
    ratio = msprt_likelihood_ratio(estimates, standard_errors, mixture_variance)
    return np.minimum(1.0, 1.0 / np.maximum.accumulate(ratio, axis=-1))


def confidence_sequence(estimates, standard_errors, mixture_variance, alpha: float):
    """``(low, high)`` of the mSPRT confidence sequence at each look (intersect running to keep it monotone)."""
    s = np.asarray(standard_errors, dtype=float)
    z = msprt_z_boundary(float(mixture_variance) / s**2, alpha)
    d = np.asarray(estimates, dtype=float)
    return np.maximum.accumulate(d - z * s, axis=-1), np.minimum.accumulate(d + z * s, axis=-1)


# ----------------------------------------------------------------------------------------------- designs
@dataclass(frozen=True)
class SequentialDesign(ResultMixin):
    """Boundaries and operating characteristics of a sequential design with K looks.

    ``inflation_factor`` multiplies the fixed-design sample size to get the maximum sample; expected sample
    sizes are fractions of the maximum. ``stopping_rules`` says what to do at each look in plain language.
    """

    kind: str
    convention: str
    alternative: str
    alpha: float
    power: float
    n_looks: int
    information_fractions: tuple[float, ...]
    boundaries: tuple[float, ...]
    nominal_p_values: tuple[float, ...]
    cumulative_alpha: tuple[float, ...]
    type_i_error: float
    drift: float
    inflation_factor: float
    expected_fraction_under_null: float
    expected_fraction_under_alternative: float
    mixture_variance_ratio: float | None
    stopping_rules: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "look": np.arange(1, self.n_looks + 1),
                "information_fraction": self.information_fractions,
                "z_boundary": self.boundaries,
                "nominal_p_value": self.nominal_p_values,
                "cumulative_alpha": self.cumulative_alpha,
            }
        )

    def summary(self) -> str:
        head = (
            f"SequentialDesign: {self.kind}, {self.n_looks} looks, alpha {self.alpha:g} ({self.alternative}), "
            f"power {self.power:g}\nconvention: {self.convention}\n"
            f"maximum-sample inflation factor {self.inflation_factor:.4f}; expected sample / maximum: "
            f"{self.expected_fraction_under_null:.3f} under H0, {self.expected_fraction_under_alternative:.3f} "
            f"under the planned effect\n"
        )
        return head + self.to_frame().to_string(index=False) + "\n" + "\n".join(self.stopping_rules)

    def rules_for_sample(self, max_n_treatment: float, allocation_ratio: float = 1.0) -> tuple[str, ...]:
        """Stopping rules with the number of units per arm at each look filled in."""
        return _stopping_rules(self, max_n_treatment, allocation_ratio)


def _expected_fraction(fractions: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> float:
    stop = upper + lower
    reach = 1.0 - np.concatenate([[0.0], np.cumsum(stop)[:-1]])
    stop_here = np.where(np.arange(fractions.size) == fractions.size - 1, reach, stop)
    return float(np.sum(fractions * stop_here))


def _two_sided_p(boundary: float, two_sided: bool) -> float:
    tail = float(stats.norm.sf(boundary))
    return min(1.0, 2 * tail) if two_sided else tail


def _stopping_rules(design: SequentialDesign, max_n_treatment: float | None, allocation_ratio: float) -> tuple[str, ...]:
    two_sided = design.alternative == "two-sided"
    statistic = "|z|" if two_sided else ("z" if design.alternative == "larger" else "-z")
    rules = []
    if design.kind == "msprt":
        rules.append(
            f"Look as often as you like (the boundaries below are the mSPRT's at the {design.n_looks} planned "
            f"looks). Stop and declare an effect the first time the always-valid p-value drops below "
            f"{design.alpha:g}, i.e. the mixture likelihood ratio reaches {1 / design.alpha:g} or the "
            f"{100 * (1 - design.alpha):g}% confidence sequence excludes 0."
        )
    for k, (fraction, boundary, p_value) in enumerate(
        zip(design.information_fractions, design.boundaries, design.nominal_p_values, strict=True)
    ):
        where = f"{100 * fraction:.0f}% of the maximum sample"
        if max_n_treatment is not None:
            n_arm = whole_units(fraction * max_n_treatment)
            n_control = whole_units(fraction * max_n_treatment * allocation_ratio)
            where += f" ({n_arm:,} units per treatment arm, {n_control:,} in control)"
        last = k == design.n_looks - 1
        if boundary >= _NO_BOUNDARY:
            rules.append(f"Look {k + 1} at {where}: no early stop possible (no alpha spent); continue.")
            continue
        action = (
            f"declare an effect if {statistic} >= {boundary:.4f} (nominal p <= {p_value:.3g})"
            + ("; otherwise stop and report no detectable effect." if last else "; otherwise continue.")
        )
        rules.append(f"Look {k + 1} at {where}: {action}")
    rules.append(
        "Do not add looks or change the maximum sample after launch; a missed look may be skipped"
        + (" (spending functions re-compute later boundaries from the information actually reached)." if design.kind.startswith("lan_demets") else ".")
    )
    return tuple(rules)


def _conventions(kind: str, two_sided: bool) -> str:
    side = "each side spends" if two_sided else "spends"
    return {
        "pocock": "Pocock (1977): constant z boundary",
        "obrien_fleming": "O'Brien-Fleming (1979): c_k = C / sqrt(t_k)",
        "lan_demets_obf": f"Lan-DeMets O'Brien-Fleming-type spending: {side} a(t) = 2 - 2 Phi(z_(a/2) / sqrt(t)) "
        "with a the one-sided level" + (" alpha/2" if two_sided else ""),
        "lan_demets_pocock": f"Lan-DeMets Pocock-type spending: {side} a(t) = a log(1 + (e - 1) t)",
        "msprt": "mixture SPRT (normal mixture N(0, tau^2)), always valid under continuous monitoring",
    }[kind] + "; boundaries by the Armitage-McPherson-Rowe recursion; no futility boundary"


def sequential_design(
    kind: str = "obrien_fleming",
    n_looks: int = 5,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    information_fractions: Sequence[float] | None = None,
    mixture_variance_ratio: float | None = None,
    grid_points_per_sd: int = 24,
    max_nodes: int = 3001,
) -> SequentialDesign:
    """Boundaries, inflation factor, expected sample and stopping rules of a sequential design.

    ``kind`` is one of ``pocock``, ``obrien_fleming``, ``lan_demets_obf``, ``lan_demets_pocock`` or ``msprt``
    (always valid; ``mixture_variance_ratio = tau^2 / s_max^2``, default the value that minimises the final
    boundary). ``alternative`` 'larger'/'smaller' gives a one-sided design at level ``alpha``.
    """
    kind = one_of(_OWNER, "kind", kind, SEQUENTIAL_KINDS)
    alternative = one_of(_OWNER, "alternative", alternative, ("two-sided", "larger", "smaller"))
    alpha = open_unit_interval(_OWNER, "alpha", alpha)
    power = open_unit_interval(_OWNER, "power", power)
    two_sided = alternative == "two-sided"
    fractions = equally_spaced(n_looks) if information_fractions is None else _check_fractions(information_fractions)
    grid = {"grid_points_per_sd": grid_points_per_sd, "max_nodes": max_nodes}
    if kind == "msprt":
        if mixture_variance_ratio is None:
            mixture_variance_ratio = optimal_mixture_variance_ratio(alpha)
        mixture_variance_ratio = positive(_OWNER, "mixture_variance_ratio", mixture_variance_ratio)
        # the estimate's variance at fraction t is s_max^2 / t, so tau^2 / s_t^2 = ratio * t
        boundaries = msprt_z_boundary(mixture_variance_ratio * fractions, alpha)
        # the mSPRT is two-sided by construction; a one-sided version rejects only upward at the same boundary
    else:
        boundaries = group_sequential_boundaries(kind, fractions, alpha, two_sided=two_sided, **grid)
        mixture_variance_ratio = None
    null_upper, null_lower = crossing_probabilities(boundaries, fractions, 0.0, two_sided=two_sided, **grid)
    drift = drift_for_power(boundaries, fractions, power, two_sided=two_sided, **grid)
    alt_upper, alt_lower = crossing_probabilities(boundaries, fractions, drift, two_sided=two_sided, **grid)
    fixed_drift = stats.norm.isf(alpha / 2 if two_sided else alpha) + stats.norm.ppf(power)
    design = SequentialDesign(
        kind=kind,
        convention=_conventions(kind, two_sided),
        alternative=alternative,
        alpha=alpha,
        power=power,
        n_looks=int(fractions.size),
        information_fractions=tuple(float(f) for f in fractions),
        boundaries=tuple(float(b) for b in boundaries),
        nominal_p_values=tuple(_two_sided_p(float(b), two_sided) for b in boundaries),
        cumulative_alpha=tuple(float(c) for c in np.cumsum(null_upper + null_lower)),
        type_i_error=float(np.sum(null_upper + null_lower)),
        drift=drift,
        inflation_factor=(drift / fixed_drift) ** 2,
        expected_fraction_under_null=_expected_fraction(fractions, null_upper, null_lower),
        expected_fraction_under_alternative=_expected_fraction(fractions, alt_upper, alt_lower),
        mixture_variance_ratio=mixture_variance_ratio,
        stopping_rules=(),
    )
    return _with_rules(design, None, 1.0)


def _with_rules(design: SequentialDesign, max_n_treatment: float | None, allocation_ratio: float) -> SequentialDesign:
    values = {name: getattr(design, name) for name in design.__dataclass_fields__}
    values["stopping_rules"] = _stopping_rules(design, max_n_treatment, allocation_ratio)
    return SequentialDesign(**values)


def with_sample_sizes(design: SequentialDesign, max_n_treatment: float, allocation_ratio: float = 1.0) -> SequentialDesign:
    """The same design with units per arm written into its stopping rules."""
    return _with_rules(design, positive(_OWNER, "max_n_treatment", max_n_treatment), allocation_ratio)


def naive_peeking_type_i_error(n_looks: int, alpha: float = 0.05, information_fractions=None) -> float:
    """Type-I error of testing at the fixed-sample critical value at every one of K looks (what not to do)."""
    fractions = equally_spaced(n_looks) if information_fractions is None else _check_fractions(information_fractions)
    critical = stats.norm.isf(alpha / 2)
    return _total_crossing(np.full(fractions.size, critical), fractions, 0.0, True, grid_points_per_sd=24, max_nodes=3001)
