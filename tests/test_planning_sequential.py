"""Group-sequential boundaries and always-valid tests against published values, scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from causalrec.exceptions import ValidationError
from causalrec.planning import (
    always_valid_p_values,
    confidence_sequence,
    crossing_probabilities,
    group_sequential_boundaries,
    msprt_likelihood_ratio,
    msprt_z_boundary,
    naive_peeking_type_i_error,
    optimal_mixture_variance_ratio,
    sequential_design,
    spending_function,
)

FIVE_LOOKS = np.arange(1, 6) / 5


def close_to_shown_decimals(value: float, published: float, decimals: int) -> bool:
    return abs(value - published) <= 0.5 * 10.0**-decimals + 1e-12


# Published values (issue 7; Pocock 1977, O'Brien-Fleming 1979, Reboussin et al. 2000): K = 5, alpha .05
# two-sided, equally spaced looks. Not produced by this code.
def test_pocock_constant():
    boundaries = group_sequential_boundaries("pocock", FIVE_LOOKS, 0.05)
    assert np.all(boundaries == boundaries[0])
    assert close_to_shown_decimals(boundaries[0], 2.4132, 4)


def test_obrien_fleming_final_critical_value():
    boundaries = group_sequential_boundaries("obrien_fleming", FIVE_LOOKS, 0.05)
    assert close_to_shown_decimals(boundaries[-1], 2.0401, 4)
    np.testing.assert_allclose(boundaries * np.sqrt(FIVE_LOOKS), boundaries[-1], rtol=1e-12)


def test_lan_demets_obrien_fleming_spending():
    boundaries = group_sequential_boundaries("lan_demets_obf", FIVE_LOOKS, 0.05)
    for value, published in zip(boundaries, (4.8769, 3.3570, 2.6803, 2.2898, 2.0310), strict=True):
        assert close_to_shown_decimals(value, published, 4)


def test_sas_seqdesign_pocock_example():
    # SAS/STAT PROC SEQDESIGN, example "Creating Two-Sided Pocock and O'Brien-Fleming Designs": 4 stages, alpha
    # .05, power .9: max information 118.3143% of the fixed sample, ASN 115.6074% (H0) and 69.74805% (H1).
    # SAS prints these from its own numerical integration; agreement is within 1e-6 relative.
    design = sequential_design("pocock", 4, alpha=0.05, power=0.9)
    assert abs(100 * design.inflation_factor / 118.3143 - 1) <= 1e-6
    assert abs(100 * design.inflation_factor * design.expected_fraction_under_null / 115.6074 - 1) <= 1e-6
    assert abs(100 * design.inflation_factor * design.expected_fraction_under_alternative / 69.74805 - 1) <= 1e-6


def test_naive_peeking_inflates_type_i_error():
    # Armitage, McPherson and Rowe (1969): five looks at nominal 0.05 reject a true null 14.2% of the time
    assert round(naive_peeking_type_i_error(5), 3) == 0.142
    assert naive_peeking_type_i_error(1) == pytest.approx(0.05, abs=1e-12)


@pytest.mark.parametrize("two_sided", [True, False])
def test_recursion_matches_scipy_multivariate_normal(two_sided):
    fractions = np.array([0.3, 0.55, 1.0])
    boundaries = np.array([2.9, 2.4, 2.1])
    drift = 1.3
    upper, lower = crossing_probabilities(boundaries, fractions, drift, two_sided=two_sided)
    covariance = np.sqrt(np.minimum.outer(fractions, fractions) / np.maximum.outer(fractions, fractions))
    mean = drift * np.sqrt(fractions)
    lower_limit = -boundaries if two_sided else np.full(3, -np.inf)
    for looks in (1, 2, 3):
        continue_probability = stats.multivariate_normal.cdf(
            boundaries[:looks], mean[:looks], covariance[:looks, :looks], lower_limit=lower_limit[:looks],
            abseps=1e-9, releps=1e-9, maxpts=2_000_000,
        )
        assert abs(1 - upper[:looks].sum() - lower[:looks].sum() - continue_probability) <= 1e-7


def test_spending_boundaries_spend_what_the_function_allows():
    fractions = np.array([0.2, 0.45, 0.7, 1.0])  # unequal looks
    boundaries = group_sequential_boundaries("lan_demets_obf", fractions, 0.05)
    upper, lower = crossing_probabilities(boundaries, fractions, 0.0)
    spent = spending_function("lan_demets_obf", 0.025, fractions)
    np.testing.assert_allclose(np.cumsum(upper), spent, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(upper, lower, rtol=1e-10)
    # first look in closed form: P(Z_1 >= c_1) = a(t_1)
    assert boundaries[0] == pytest.approx(stats.norm.isf(spent[0]), rel=1e-9)
    assert spent[-1] == pytest.approx(0.025, rel=1e-14)


def test_design_operating_characteristics():
    design = sequential_design("obrien_fleming", 5, alpha=0.05, power=0.8)
    assert design.type_i_error == pytest.approx(0.05, abs=1e-10)
    assert 1.0 < design.inflation_factor < 1.05
    fixed_drift = stats.norm.isf(0.025) + stats.norm.ppf(0.8)
    assert design.drift == pytest.approx(fixed_drift * math.sqrt(design.inflation_factor), rel=1e-12)
    assert design.expected_fraction_under_alternative < 1.0
    assert len(design.stopping_rules) == 6 and "2.0401" in design.stopping_rules[4]
    frame = design.to_frame()
    assert list(frame["look"]) == [1, 2, 3, 4, 5]


def test_mixture_likelihood_ratio_matches_its_integral_definition():
    estimate, standard_error, tau2 = 0.031, 0.012, 0.0004
    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(estimate, theta, standard_error) / stats.norm.pdf(estimate, 0, standard_error)
        return ratio * stats.norm.pdf(theta, 0, math.sqrt(tau2))
    expected, _ = integrate.quad(integrand, -0.5, 0.5, epsabs=1e-13, limit=200)
    assert msprt_likelihood_ratio(estimate, standard_error, tau2) == pytest.approx(expected, rel=1e-8)


def test_msprt_boundary_is_where_the_ratio_reaches_one_over_alpha():
    alpha, standard_error, tau2 = 0.05, 0.01, 0.0003
    boundary = float(msprt_z_boundary(tau2 / standard_error**2, alpha))
    ratio = msprt_likelihood_ratio(boundary * standard_error, standard_error, tau2)
    assert ratio == pytest.approx(1 / alpha, rel=1e-12)
    low, high = confidence_sequence(np.array([0.0]), np.array([standard_error]), tau2, alpha)
    assert high[0] == pytest.approx(boundary * standard_error, rel=1e-12) and low[0] == pytest.approx(-high[0])
    best = optimal_mixture_variance_ratio(alpha)
    assert msprt_z_boundary(best, alpha) < min(msprt_z_boundary(best * 1.05, alpha), msprt_z_boundary(best / 1.05, alpha))


def test_always_valid_p_values_never_increase():
    rng = np.random.default_rng(3)
    estimates = rng.normal(0, 0.1, size=(4, 30))
    p_values = always_valid_p_values(estimates, np.full(30, 0.1), 0.01)
    assert np.all(np.diff(p_values, axis=1) <= 0) and np.all((p_values > 0) & (p_values <= 1))


def test_small_simulation_of_sequential_designs():
    """4,000 Brownian paths per design (not timed): type-I and power within 4 binomial standard errors."""
    rng = np.random.default_rng(11)
    n_paths = 4000
    fractions = FIVE_LOOKS
    increments = rng.standard_normal((n_paths, 5)) * np.sqrt(np.diff(np.concatenate([[0.0], fractions])))
    null_z = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    for kind in ("pocock", "lan_demets_obf", "msprt"):
        design = sequential_design(kind, 5)
        bounds = np.asarray(design.boundaries)
        alternative_z = null_z + design.drift * np.sqrt(fractions)
        size = np.any(np.abs(null_z) >= bounds, axis=1).mean()
        power = np.any(alternative_z >= bounds, axis=1).mean()
        assert abs(size - design.type_i_error) <= 4 * math.sqrt(0.05 * 0.95 / n_paths), (kind, size)
        assert abs(power - 0.8) <= 4 * math.sqrt(0.8 * 0.2 / n_paths), (kind, power)
    assert np.any(np.abs(null_z) >= 1.959964, axis=1).mean() > 0.11  # naive peeking


def test_bad_sequential_input():
    with pytest.raises(ValidationError) as caught:
        sequential_design("haybittle", 3)
    assert caught.value.field == "kind"
    with pytest.raises(ValidationError) as caught:
        crossing_probabilities([2.0, 2.0], [0.6, 0.5], 0.0)
    assert caught.value.field == "information_fractions"


def test_information_fractions_are_read_not_written():
    """A last fraction within 1e-12 of 1 is treated as 1 in a copy: the caller's array keeps its value."""
    fractions = np.array([0.5, 1.0 - 5e-13])
    group_sequential_boundaries("obrien_fleming", fractions, alpha=0.05)
    assert fractions[-1] == 1.0 - 5e-13
