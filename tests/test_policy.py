"""Action distributions and the policies built from scores, checked against dense closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causalrec import ValidationError, policy


@pytest.fixture
def scores():
    return np.random.default_rng(3).normal(size=(7, 5))


def test_greedy_top_k_fills_slots_in_score_order_with_deterministic_ties():
    dist = policy.greedy_top_k(np.array([[1.0, 3.0, 3.0, 0.0]]), n_positions=3)
    dense = dist.to_dense()
    # Items 1 and 2 tie: the lower index takes the first slot.
    assert dense[0, 1, 0] == 1 and dense[0, 2, 1] == 1 and dense[0, 0, 2] == 1
    assert dense.sum() == 3


def test_softmax_matches_closed_form(scores):
    dense = policy.softmax(scores, temperature=0.7, n_positions=2).to_dense()
    expected = np.exp(scores / 0.7) / np.exp(scores / 0.7).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dense[:, :, 0], expected)
    np.testing.assert_allclose(dense[:, :, 1], expected)


def test_epsilon_greedy_is_the_mixture(scores):
    dist = policy.epsilon_greedy(scores, epsilon=0.2, n_positions=2)
    greedy = policy.greedy_top_k(scores, 2).to_dense()
    np.testing.assert_allclose(dist.to_dense(), 0.8 * greedy + 0.2 / scores.shape[1])
    np.testing.assert_allclose(dist.to_dense().sum(axis=1), 1.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: policy.greedy_top_k(s, 2),
        lambda s: policy.softmax(s, 2.0, 2),
        lambda s: policy.epsilon_greedy(s, 0.3, 2),
        lambda s: policy.uniform_random(s.shape[0], s.shape[1], 2),
    ],
)
def test_prob_of_support_and_take_agree_with_dense(make, scores):
    dist = make(scores)
    dense = dist.to_dense()
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, 7)
    positions = rng.integers(0, 2, 7)
    np.testing.assert_allclose(dist.prob_of(actions, positions), dense[np.arange(7), actions, positions])
    rounds, items, probs = dist.support(positions)
    rebuilt = np.zeros((7, 5))
    np.add.at(rebuilt, (rounds, items), probs)
    np.testing.assert_allclose(rebuilt, dense[np.arange(7), :, positions])
    rows = np.array([6, 0, 0, 3])
    np.testing.assert_allclose(dist.take(rows).to_dense(), dense[rows])


def test_sparse_from_long_frame_and_validation():
    frame = pd.DataFrame({"round": [0, 0, 1], "action": [0, 2, 1], "position": [0, 0, 0], "prob": [0.5, 0.5, 1.0]})
    dist = policy.SparseDistribution.from_frame(frame, n_rounds=2, n_actions=3)
    np.testing.assert_allclose(dist.prob_of(np.array([2, 1]), np.array([0, 0])), [0.5, 1.0])
    bad = frame.assign(prob=[0.5, 0.4, 1.0])
    with pytest.raises(ValidationError) as info:
        policy.SparseDistribution.from_frame(bad, n_rounds=2, n_actions=3)
    assert "summing to 1" in str(info.value) and "first offending row: 0" in str(info.value)
    # A round with no entries at all has no distribution: also an error.
    with pytest.raises(ValidationError, match=r"sum 0 at round 1, position 0 \(no entries\)") as info:
        policy.SparseDistribution.from_frame(frame.iloc[:2], n_rounds=2, n_actions=3)
    assert "0-based" not in str(info.value)  # slot 0 has entries: no hint about 1-based positions
    # 1-based positions against two-slot logs: every round misses slot 0, and the message says why.
    one_based = frame.assign(position=1)
    with pytest.raises(ValidationError, match=r"no round has an entry at position 0 \(positions are 0-based"):
        policy.SparseDistribution.from_frame(one_based, n_rounds=2, n_actions=3, n_positions=2)
    with pytest.raises(ValidationError, match="field 'action'"):
        policy.SparseDistribution.from_frame(frame.assign(action=[0, 5, 1]), n_rounds=2, n_actions=3)
    with pytest.raises(ValidationError, match="missing"):
        policy.SparseDistribution.from_frame(frame.drop(columns="prob"), n_rounds=2, n_actions=3)
    with pytest.raises(ValidationError, match="the logs have 2 positions"):  # not silently all at slot 0
        policy.SparseDistribution.from_frame(frame.drop(columns="position"), n_rounds=2, n_actions=3, n_positions=2)


def test_long_frame_indices_are_never_truncated_or_summed():
    """A fractional round or action, a non-numeric or missing one, or a repeated (round, action, position) key is
    refused with its row: truncating 1.4 to round 1, or adding up a repeated key (usually a bad join), would
    silently evaluate another policy."""
    frame = pd.DataFrame({"round": [0, 0, 1], "action": [0, 2, 1], "position": [0, 0, 0], "prob": [0.5, 0.5, 1.0]})
    build = lambda f: policy.SparseDistribution.from_frame(f, n_rounds=2, n_actions=3)  # noqa: E731
    with pytest.raises(ValidationError, match=r"field 'round' must be integer-valued; found 1.4 \(first offending row: 2\)"):
        build(frame.assign(round=[0, 0, 1.4]))
    with pytest.raises(ValidationError, match=r"field 'action' must be integer-valued; found 1.7 \(first offending row: 1\)"):
        build(frame.assign(action=[0, 1.7, 1]))
    with pytest.raises(ValidationError, match=r"field 'action' must be numeric; found dtype object such as 'a' "
                                              r"\(first offending row: 1\)"):
        build(frame.assign(action=["0", "a", "1"]))
    with pytest.raises(ValidationError, match=r"field 'action' must be finite .*NaN \(a missing value\) "
                                              r"\(first offending row: 2\)"):
        build(frame.assign(action=pd.array([0, 2, None], dtype="Int64")))
    with pytest.raises(ValidationError, match=r"field 'prob' must be numeric; found dtype object such as 'half'"):
        build(frame.assign(prob=[0.5, "half", 1.0]))
    repeated = pd.DataFrame({"round": [0, 0, 1], "action": [1, 1, 1], "position": 0, "prob": [0.3, 0.7, 1.0]})
    with pytest.raises(ValidationError, match=r"\(round 0, action 1, position 0\) repeated \(first offending row: 1\)"):
        build(repeated)
    # The same entries, added up by the caller, are accepted: the key is then unique.
    summed = repeated.groupby(["round", "action", "position"], as_index=False).prob.sum()
    np.testing.assert_allclose(build(summed).prob_of(np.array([1, 1]), np.array([0, 0])), [1.0, 1.0])
    # The constructor itself still adds up repeats (a policy sampled with replacement is such a list).
    sampled = policy.SparseDistribution(np.array([0, 0, 0]), np.array([2, 2, 1]), np.zeros(3, int),
                                        np.full(3, 1 / 3), n_rounds=1, n_actions=3)
    np.testing.assert_allclose(sampled.prob_of(np.array([2]), np.array([0])), [2 / 3])


def test_table_distribution_rejects_bad_tables():
    with pytest.raises(ValidationError, match="summing to 1"):
        policy.TableDistribution.constant(np.array([0.5, 0.2]), n_rounds=3)
    with pytest.raises(ValidationError, match=r"in \[0, 1\]"):
        policy.TableDistribution.constant(np.array([1.5, -0.5]), n_rounds=3)
    with pytest.raises(ValidationError, match="table_index"):
        policy.TableDistribution(np.full((1, 2, 1), 0.5), np.array([0, 1]))


def test_policy_input_errors():
    with pytest.raises(ValidationError, match="temperature"):
        policy.softmax(np.zeros((2, 3)), temperature=0)
    with pytest.raises(ValidationError, match="epsilon"):
        policy.epsilon_greedy(np.zeros((2, 3)), epsilon=1.5)
    with pytest.raises(ValidationError, match=r"'scores' must be finite .*found inf \(first offending row: 1\)"):
        policy.greedy_top_k(np.array([[0.0, 1.0], [np.inf, 0.0]]))
    with pytest.raises(ValidationError, match="n_positions"):
        policy.greedy_top_k(np.zeros((2, 3)), n_positions=4)


def test_large_catalogue_top_k_stays_sparse():
    scores = np.random.default_rng(1).normal(size=(200, 100_000)).astype(np.float32)
    dist = policy.greedy_top_k(scores, n_positions=5)
    assert dist.probs.size == 200 * 5  # no n x A x L array anywhere
    best = np.argmax(scores, axis=1)
    np.testing.assert_array_equal(dist.prob_of(best, np.zeros(200, int)), 1.0)


def test_from_dense_copies_by_default_and_wraps_a_read_only_view_on_request():
    dense = np.full((4, 3, 2), 1 / 3)
    copied = policy.TableDistribution.from_dense(dense)
    viewed = policy.TableDistribution.from_dense(dense, copy=False)
    assert not np.shares_memory(copied.table, dense)
    assert np.shares_memory(viewed.table, dense)
    assert not viewed.table.flags.writeable and dense.flags.writeable  # the caller's array keeps its flags
    dense[0, 0, 0] = 0.9  # a copy is immune to later changes of the caller's array
    assert copied.table[0, 0, 0] == pytest.approx(1 / 3)
    with pytest.raises(ValidationError, match="summing to 1"):
        policy.TableDistribution.from_dense(dense, copy=False)  # still validated


def test_probability_checks_find_nan_and_out_of_range_entries():
    table = np.full((2, 4, 1), 0.25)
    table[1, 2, 0] = np.nan
    with pytest.raises(ValidationError, match=r"probabilities in \[0, 1\].*nan"):
        policy.TableDistribution(table, np.array([0, 1]))
    table[1, 2, 0] = -0.25
    with pytest.raises(ValidationError, match=r"probabilities in \[0, 1\]"):
        policy.TableDistribution(table, np.array([0, 1]))


@pytest.mark.parametrize("make", ["table", "sparse"])
def test_slots_and_actions_outside_the_distribution_are_refused_not_read_elsewhere(make):
    # Two rounds, one slot, 3 actions; round 0 is uniform, round 1 is all on action 2.
    dense = np.zeros((2, 3, 1))
    dense[0, :, 0] = 1 / 3
    dense[1, 2, 0] = 1.0
    if make == "table":
        dist = policy.TableDistribution.from_dense(dense)
    else:
        rounds, actions, _ = np.nonzero(dense)
        dist = policy.SparseDistribution(rounds, actions, np.zeros_like(rounds), dense[rounds, actions, 0],
                                         n_rounds=2, n_actions=3, n_positions=1)
    # Slot 1 of a 1-slot table was the next round's cells (round 0 read round 1's distribution); -1 wrapped.
    for position in ([1, 0], [-1, 0]):
        with pytest.raises(ValidationError, match=r"'position'.*\[0, 1\)"):
            dist.support(np.array(position))
        with pytest.raises(ValidationError, match=r"'position'.*\[0, 1\)"):
            dist.prob_of(np.array([0, 2]), np.array(position))
    with pytest.raises(ValidationError, match=r"'action'.*\[0, 3\).*found -1"):
        dist.prob_of(np.array([-1, 2]), np.array([0, 0]))
    with pytest.raises(ValidationError, match=r"'position'.*length n_rounds = 2"):
        dist.support(np.array([0]))
    np.testing.assert_allclose(dist.prob_of(np.array([1, 2]), np.array([0, 0])), [1 / 3, 1.0])


def test_index_and_number_conversion_refuse_overflow_and_non_real_types():
    from causalrec._arrays import as_index, as_numeric

    # Beyond int64 the cast wrapped to -9223372036854775808 instead of failing.
    with pytest.raises(ValidationError, match="int64 range.*1e\\+20"):
        as_index(np.array([1.0, 1e20]), "action", None, owner="test")
    with pytest.raises(ValidationError, match="int64 range"):
        as_index(np.array([2**64 - 1], dtype=np.uint64), "action", None, owner="test")
    # numpy casts these silently: complex drops the imaginary part, date-times become nanoseconds.
    for values in (np.array([1 + 2j]), np.array(["2020-01-01"], dtype="datetime64[ns]"),
                   np.array([5], dtype="timedelta64[s]")):
        with pytest.raises(ValidationError, match="real numbers"):
            as_numeric(values, "reward", None, owner="test")
    np.testing.assert_array_equal(as_index(np.array([3.0, 2.0**52]), "action", None, owner="test"), [3, 2**52])
