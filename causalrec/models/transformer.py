"""Transformer recommenders with a scikit-learn face.

Three estimators share one network (:mod:`causalrec.models.network`) and one training loop
(:mod:`causalrec.models.training`):

* :class:`TransformerRecommender`: user histories (and optional user context and item text features) ->
  next-item scores over the full catalogue, trained with full-softmax cross-entropy; ``score``, ``recommend``
  and ``policy`` (an action distribution from :mod:`causalrec.policy`).
* :class:`TransformerClickModel`: a binary classifier of per-(context, item, slot) outcomes, one or several tasks
  at once, with calibrated probabilities; ``fit(X, y)`` / ``predict_proba(X)`` on dense or sparse ``X``, so it
  serves as the reward model of the direct and doubly robust estimators (``evaluate_policy(...,
  reward_model=TransformerClickModel(feature_layout=reward_model_layout(feedback)))``) and as a nuisance
  classifier in EconML.
* :class:`TransformerOutcomeRegressor`: the same for continuous outcomes (EconML's ``model_y``).

scikit-learn conventions: hyper-parameters are stored verbatim by ``__init__`` (no work there), learned state
ends with an underscore, ``random_state`` seeds everything (initialisation, dropout, batch order, validation
split), and ``sklearn.base.clone`` gives an unfitted copy. ``save(path)`` / ``load(path)`` use a folder with
``model.safetensors`` and ``config.json``.

How a ``feature_layout`` maps a feature matrix onto the network: columns are read as consecutive blocks
``context | action (one-hot) | action_context | position (one-hot)``, the layout of
:func:`causalrec.ope.reward_model.design_matrix`. ``{"context": 20, "action": 80, "action_context": 4,
"position": 3}`` says how wide each block is; ``"context"`` may instead list the widths of its column groups,
each of which becomes one token. ``feature_layout=None`` reads every column as context (EconML's dense ``X``).
:func:`reward_model_layout` builds the layout of a :class:`~causalrec.data.LoggedFeedback`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from causalrec import policy as policy_module
from causalrec._arrays import as_numeric, check_finite, check_padding_value
from causalrec._checks import positive_integer
from causalrec.exceptions import ValidationError
from causalrec.models.network import NetworkSpec, RecommenderNetwork
from causalrec.models.objectives import (
    NextItemObjective,
    OutcomeObjective,
    OutcomeRows,
    build_sequence_tables,
    history_profiles,
    pad_histories,
)
from causalrec.models.training import (
    TrainingConfig,
    TrainingHistory,
    read_model,
    resolve_device,
    resolve_precision,
    seeded_torch,
    train_network,
    write_model,
)

logger = logging.getLogger(__name__)

LAYOUT_BLOCKS = ("context", "action", "action_context", "position")
_PREDICT_CHUNK = 65_536


# ---------------------------------------------------------------------------------------------- helpers
def _standardizer(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if values.shape[0] == 0 or values.shape[1] == 0:
        return np.zeros(values.shape[1]), np.ones(values.shape[1])
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def _group_columns(widths: Sequence[int]) -> list[list[int]]:
    groups, start = [], 0
    for width in widths:
        groups.append(list(range(start, start + int(width))))
        start += int(width)
    return groups


def _default_groups(n_columns: int, max_tokens: int) -> list[int]:
    """One token per column up to ``max_tokens`` columns; beyond that, ``max_tokens`` consecutive chunks."""
    if n_columns == 0:
        return []
    return [len(chunk) for chunk in np.array_split(np.arange(n_columns), min(n_columns, max_tokens))]


def _distinct_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``values`` and the index of each row's distinct row (``np.unique(axis=0)`` sorts
    lexicographically and is far slower; rows are grouped by a 64-bit hash, then checked exactly)."""
    if values.shape[1] == 0:
        return values[:1], np.zeros(len(values), dtype=np.int64)
    hashes = pd.util.hash_pandas_object(pd.DataFrame(values), index=False).to_numpy()
    inverse, _ = pd.factorize(hashes)
    first = np.full(inverse.max() + 1, len(values))
    np.minimum.at(first, inverse, np.arange(len(values)))
    unique = values[first]
    if not np.array_equal(unique[inverse], values):  # a hash collision: fall back to the exact sort
        unique, inverse = np.unique(values, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1).astype(np.int64)


def _data_fingerprint(*arrays: np.ndarray | None) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def reward_model_layout(feedback, group_context_by_name: bool = True) -> dict:
    """The ``feature_layout`` of :func:`causalrec.ope.reward_model.design_matrix` for ``feedback``.

    With ``group_context_by_name``, consecutive context columns whose names share everything before the last
    ``_`` form one token (``user_feature_0_<level>`` one-hot levels, ``user-item_affinity_<item>``...).
    """
    context_width = int(feedback.context.shape[1])
    context: int | list[int] = context_width
    if group_context_by_name and context_width:
        keys = [name.rsplit("_", 1)[0] if "_" in name else name for name in feedback.context_names]
        widths, run = [], 1
        for previous, current in zip(keys[:-1], keys[1:], strict=True):
            if current == previous:
                run += 1
            else:
                widths.append(run)
                run = 1
        widths.append(run)
        context = widths
    return {
        "context": context,
        "action": int(feedback.n_actions),
        "action_context": 0 if feedback.action_context is None else int(feedback.action_context.shape[1]),
        "position": int(feedback.n_positions) if feedback.n_positions > 1 else 0,
    }


def _to_policy(scores: np.ndarray, kind: str, n_positions: int, temperature: float, epsilon: float):
    if kind == "greedy":
        return policy_module.greedy_top_k(scores, n_positions)
    if kind == "softmax":
        return policy_module.softmax(scores, temperature, n_positions)
    if kind == "epsilon_greedy":
        return policy_module.epsilon_greedy(scores, epsilon, n_positions)
    raise ValidationError("kind", "'greedy', 'softmax' or 'epsilon_greedy'", repr(kind), owner="policy")


class _TransformerEstimator(BaseEstimator):
    """Save/load and training-configuration plumbing shared by the estimators."""

    #: learned numpy arrays saved as tensors; learned JSON-able values saved in config.json
    _saved_arrays: tuple[str, ...] = ()
    _saved_values: tuple[str, ...] = ()

    def _training_config(self, description: str, resume: bool) -> TrainingConfig:
        return TrainingConfig(
            max_epochs=self.max_epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, patience=self.patience, device=self.device, precision=self.precision,
            compile=self.compile, progress_bar=self.progress_bar, random_state=self.random_state,
            checkpoint_dir=None if self.checkpoint_dir is None else str(self.checkpoint_dir), resume=resume,
            description=description, length_buckets=getattr(self, "length_buckets", "auto"),
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "spec_"):
            raise ValidationError("model", "fitted (call fit first)", "an unfitted estimator",
                                  owner=type(self).__name__)

    def _autocast(self):
        dtype = resolve_precision(self.precision, self.device_)
        if dtype is None:
            return torch.autocast(device_type=self.device_.type, enabled=False)
        return torch.autocast(device_type=self.device_.type, dtype=dtype)

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to the folder ``path`` (``model.safetensors`` + ``config.json``)."""
        self._check_fitted()
        tensors = {} if self.network_ is None else {f"network.{k}": v for k, v in self.network_.state_dict().items()}
        for name in self._saved_arrays:
            value = getattr(self, name)
            if value is not None:
                tensors[f"estimator.{name}"] = torch.as_tensor(np.ascontiguousarray(value))
        config = {
            "class": type(self).__name__,
            "params": self.get_params(deep=False),
            "spec": self.spec_.to_dict() if self.spec_ is not None else None,
            "learned": {name: getattr(self, name) for name in self._saved_values},
            "none_arrays": [name for name in self._saved_arrays if getattr(self, name) is None],
            "history": None if self.history_ is None else self.history_.to_dict(),
        }
        return write_model(path, config, tensors)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None):
        """Rebuild a model written by :meth:`save`; ``device`` overrides the saved ``device`` parameter."""
        saved = read_model(path)
        config = saved.config
        if config.get("class") != cls.__name__:
            raise ValidationError("path", f"a saved {cls.__name__}", f"a saved {config.get('class')}", owner=cls.__name__)
        estimator = cls(**config["params"])
        estimator.device_ = resolve_device(device or estimator.device)
        for name, value in config["learned"].items():
            setattr(estimator, name, _restore_value(name, value))
        for name in cls._saved_arrays:
            key = f"estimator.{name}"
            setattr(estimator, name, saved.tensors[key].numpy() if key in saved.tensors else None)
        history = config.get("history")
        estimator.history_ = None if history is None else TrainingHistory(
            **{**history, "epochs": tuple(history["epochs"]),
               "length_buckets": tuple(tuple(b) for b in history.get("length_buckets", ()))}
        )
        if config["spec"] is None:
            estimator.spec_, estimator.network_ = None, None
            return estimator
        estimator.spec_ = NetworkSpec.from_dict(config["spec"])
        network = RecommenderNetwork(estimator.spec_)
        state = {k[len("network."):]: v for k, v in saved.tensors.items() if k.startswith("network.")}
        network.load_state_dict(state, strict=True)
        estimator.network_ = network.to(estimator.device_).eval()
        return estimator


def _restore_value(name: str, value: Any) -> Any:
    if name in ("classes_",) and value is not None:
        return np.asarray(value)
    return value


# ---------------------------------------------------------------------------------------------- sequences
class TransformerRecommender(_TransformerEstimator):
    """Next-item recommender on user histories: a causal transformer trained with full-softmax cross-entropy.

    Parameters (hyper-parameters; stored verbatim)
    ----------
    architecture : {"gpt2", "bert"}
        Body built from a ``transformers`` config (BERT runs with a causal mask).
    hidden_size, n_layers, n_heads, dropout : model size (SASRec scale by default).
    max_history : int
        Number of most recent items the model reads.
    max_windows_per_user : int, optional
        Training windows of ``max_history`` items are tiled backwards from each user's last item; this caps how
        many per user (the most recent), to bound the cost of very long histories.
    loss : {"full_softmax", "sampled_bce"}
        Full cross-entropy over the catalogue (use this), or one sampled negative with binary cross-entropy
        (kept for comparison).
    negative_sampling : {"uniform", "unseen"}
        Negatives of ``loss="sampled_bce"``: uniform over the catalogue, or, as in SASRec's original sampler,
        uniform over the items absent from the user's training sequence (never an item the user had). Ignored
        by the full softmax, which scores every item.
    repeat_aware : bool
        Add an explicit re-consumption term to the next-item scores (how often each item occurs in the history,
        weighted by a learned gate and a per-item repeat propensity, and a per-item penalty for items never
        bought in a long history; see :meth:`causalrec.models.network.RecommenderNetwork.add_repeat_scores`).
        Re-purchase is most of grocery demand; set False for catalogues where items are consumed once.
    targets_per_position : int
        With baskets, every position is supervised with up to this many items of the next basket at once (a
        fresh random draw every epoch). 1 ranked slightly better on Complete Journey than 8 in one exploratory
        run, presumably because more targets weight large baskets more.
    max_context_tokens : int
        User context columns become at most this many tokens.
    max_epochs, batch_size, learning_rate, weight_decay, patience : training (``batch_size=None``: 128 on CPU,
        1024 on GPU, fewer when the full softmax over a large catalogue would not fit: one score tensor is kept
        within 1 GiB on CPU and 1/16 of the GPU's memory); early stopping on the validation criterion with
        ``patience`` epochs.
    length_buckets : int or "auto"
        Cut training batches to at most this many window widths, chosen to minimise padding (exactly, by
        dynamic programming over the window lengths); a bucket of shorter windows is read in proportionally larger
        batches, so a step holds about as many positions and as much memory at every width. Windows shorter than
        ``max_history`` are padded on the left and the padding is masked, so a narrower width changes no output;
        it only skips work: on the synthetic MovieLens-1M-like benchmark 44% of the positions of full-width
        batches carry no target, 14% with 4 buckets, which took an H100 from 8.9M to 13.1M supervised positions
        per second (``benchmarks/transformer_throughput.py``). ``"auto"``: 4 when the step is compiled (GPU), 1
        otherwise, which keeps the CPU loop exactly as it was.
    validation_metric : {"loss", "ndcg@k"}
        Early-stopping criterion: mean full-catalogue cross-entropy of the held-out targets, or NDCG@k.
    device, precision, compile : ``"auto"`` = CUDA if available with bf16 autocast and ``torch.compile``;
        CPU fp32 eager otherwise.
    progress_bar : bool
        Show a tqdm bar (only on a terminal).
    checkpoint_dir : path, optional
        Write a resumable checkpoint there after every epoch; ``fit(..., resume=True)`` continues from it.
    attn_implementation : {"sdpa", "eager"}
    random_state : int, optional
    """

    _saved_arrays = ("context_mean_", "context_scale_")
    _saved_values = ("n_items_", "target_")

    def __init__(
        self,
        *,
        architecture: str = "gpt2",
        hidden_size: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        max_history: int = 50,
        max_windows_per_user: int | None = None,
        loss: str = "full_softmax",
        negative_sampling: str = "uniform",
        repeat_aware: bool = True,
        targets_per_position: int = 1,
        max_context_tokens: int = 16,
        max_epochs: int = 30,
        batch_size: int | None = None,
        length_buckets: int | str = "auto",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.01,
        patience: int = 3,
        validation_metric: str = "loss",
        device: str = "auto",
        precision: str = "auto",
        compile: str | bool = "auto",
        progress_bar: bool = True,
        checkpoint_dir: str | Path | None = None,
        attn_implementation: str = "sdpa",
        random_state: int | None = None,
    ):
        self.architecture = architecture
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.max_history = max_history
        self.max_windows_per_user = max_windows_per_user
        self.loss = loss
        self.negative_sampling = negative_sampling
        self.repeat_aware = repeat_aware
        self.targets_per_position = targets_per_position
        self.max_context_tokens = max_context_tokens
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.length_buckets = length_buckets
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_metric = validation_metric
        self.device = device
        self.precision = precision
        self.compile = compile
        self.progress_bar = progress_bar
        self.checkpoint_dir = checkpoint_dir
        self.attn_implementation = attn_implementation
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int | None = None,
        *,
        baskets: Sequence[Sequence[int]] | None = None,
        context: np.ndarray | None = None,
        item_features: np.ndarray | None = None,
        validation_sequences: Sequence[Sequence[int]] | None = None,
        validation_targets: Sequence[Sequence[int]] | None = None,
        validation_context: np.ndarray | None = None,
        resume: bool = False,
    ) -> TransformerRecommender:
        """Train on ``sequences`` (one time-ordered array of item indices per user).

        ``baskets`` labels each token's basket (equal consecutive labels = one basket): the model then learns to
        predict the items of the *next basket* after every token; without it, the next item. ``context`` holds
        one row of numeric user features per sequence; ``item_features`` one row per item (e.g. text
        embeddings, see :func:`causalrec.models.text.encode_texts`), which also scores items never seen in
        training. Early stopping uses ``validation_sequences`` -> ``validation_targets`` (item sets); without
        them, each user's last basket (or last item) is held out.
        """
        owner = type(self).__name__
        sequences = _as_lists(sequences, owner)
        baskets = None if baskets is None else [np.asarray(b).reshape(-1) for b in baskets]
        if not sequences:
            raise ValidationError("sequences", "at least one sequence", "none", owner=owner)
        if baskets is not None:
            if len(baskets) != len(sequences):
                raise ValidationError("baskets", f"one label array per sequence ({len(sequences)})",
                                      f"{len(baskets)}", owner=owner)
            for row, (labels, sequence) in enumerate(zip(baskets, sequences, strict=True)):
                if len(labels) != len(sequence):
                    raise ValidationError("baskets", "one label per token of each sequence",
                                          f"{len(labels)} labels for {len(sequence)} tokens", row, owner=owner)
        largest = max((int(s.max()) for s in sequences if len(s)), default=-1)
        smallest = min((int(s.min()) for s in sequences if len(s)), default=0)
        if smallest < 0:
            raise ValidationError("sequences", "non-negative item indices", f"{smallest}", owner=owner)
        n_items = largest + 1 if n_items is None else int(n_items)
        if largest >= n_items:
            raise ValidationError("sequences", f"item indices below n_items = {n_items}", f"{largest}", owner=owner)
        if context is not None:
            context = _context_rows(context, "context", len(sequences), None, owner)
        elif validation_context is not None:
            raise ValidationError("validation_context", "None when context is None (the model reads no context)",
                                  "an array", owner=owner)
        if validation_sequences is None:
            sequences, baskets, validation_sequences, validation_targets, validation_context = _hold_out_last(
                sequences, baskets, context
            )
        elif validation_targets is None or len(validation_targets) != len(validation_sequences):
            raise ValidationError("validation_targets", "one target set per validation sequence", "a mismatch",
                                  owner=owner)
        if context is not None and validation_context is None:
            raise ValidationError("validation_context", "given when context is", "None", owner=owner)
        validation_sequences = _as_lists(validation_sequences, owner, field="validation_sequences")
        validation_targets = [_item_indices(t, owner, row, "validation_targets").reshape(-1)
                              for row, t in enumerate(validation_targets)]
        for name, rows in (("validation_sequences", validation_sequences), ("validation_targets", validation_targets)):
            for row, items in enumerate(rows):
                if len(items) and (items.min() < 0 or items.max() >= n_items):
                    bad = items[(items < 0) | (items >= n_items)][0]
                    raise ValidationError(name, f"item indices in [0, n_items = {n_items})", f"{bad}", row,
                                          owner=owner)
        n_validation = len(validation_sequences)
        keep = [row for row, targets in enumerate(validation_targets) if len(targets)]
        if not keep:
            raise ValidationError("validation_targets", "at least one non-empty target set", "all empty",
                                  owner=owner)
        validation_sequences = [validation_sequences[r] for r in keep]
        validation_targets = [validation_targets[r] for r in keep]
        if validation_context is not None and context is not None:
            validation_context = _context_rows(validation_context, "validation_context", n_validation,
                                               context.shape[1], owner)[keep]

        self.n_items_ = n_items
        self.target_ = "next_basket" if baskets is not None else "next_item"
        self.device_ = resolve_device(self.device)
        n_context = 0 if context is None else context.shape[1]
        if context is not None:
            self.context_mean_, self.context_scale_ = _standardizer(context)
        else:
            self.context_mean_ = self.context_scale_ = None
        item_feature_dim = 0
        if item_features is not None:
            item_features = np.asarray(item_features, dtype=np.float32)
            if item_features.shape[0] != n_items:
                raise ValidationError("item_features", f"one row per item ({n_items})", f"{item_features.shape[0]}",
                                      owner=owner)
            item_feature_dim = item_features.shape[1]
        self.spec_ = NetworkSpec(
            n_items=n_items, architecture=self.architecture, hidden_size=self.hidden_size, n_layers=self.n_layers,
            n_heads=self.n_heads, dropout=self.dropout, max_history=self.max_history, n_context_features=n_context,
            context_groups=tuple(map(tuple, _group_columns(_default_groups(n_context, self.max_context_tokens)))),
            item_feature_dim=item_feature_dim, repeat_aware=self.repeat_aware, repeat_absence=self.repeat_aware,
            attn_implementation=self.attn_implementation,
        )
        tables = build_sequence_tables(sequences, baskets, self.max_history, self.max_windows_per_user,
                                       n_items if self.repeat_aware else None)
        if tables.n_windows == 0:
            raise ValidationError("sequences", "at least one supervised position", "none", owner=owner)
        validation_histories = pad_histories(validation_sequences, self.max_history, n_items)
        validation_profiles = (history_profiles(validation_sequences, self.max_history, n_items)
                               if self.repeat_aware else None)
        config = self._training_config(owner, resume)
        fingerprint = {
            "spec": self.spec_.to_dict(), "loss": self.loss, "validation_metric": self.validation_metric,
            "targets_per_position": self.targets_per_position, "negative_sampling": self.negative_sampling,
            "max_windows_per_user": self.max_windows_per_user,
            "data": _data_fingerprint(tables.tokens, tables.next_start, tables.window_end, context, item_features),
            # Early-stopping state (best epoch, patience) is only valid for the same validation data.
            "validation": _data_fingerprint(validation_histories, validation_profiles, validation_context,
                                            np.array([len(t) for t in validation_targets]),
                                            np.concatenate(validation_targets)),
        }
        with seeded_torch(self.random_state, self.device_):
            network = RecommenderNetwork(self.spec_)
            if item_features is not None:
                network.item_features.copy_(torch.from_numpy(item_features))
                counts = np.bincount(tables.tokens, minlength=n_items)
                network.known_items.copy_(torch.from_numpy((counts > 0).astype(np.float32)))
            network = network.to(self.device_)
            objective = NextItemObjective(
                tables, n_items, self.max_history, self.device_, loss=self.loss,
                context=self._standardize_context(context),
                validation_histories=validation_histories, validation_profiles=validation_profiles,
                validation_context=self._standardize_context(validation_context),
                validation_targets=validation_targets, validation_metric=self.validation_metric,
                targets_per_position=self.targets_per_position, negative_sampling=self.negative_sampling,
            )
            self.history_ = train_network(network, objective, config, fingerprint)
        self.network_ = network
        return self

    def _standardize_context(self, context: np.ndarray | None) -> np.ndarray | None:
        if context is None or self.context_mean_ is None:
            return None
        return ((np.asarray(context, dtype=np.float64) - self.context_mean_) / self.context_scale_).astype(np.float32)

    # ------------------------------------------------------------------ inference
    def _histories(self, sequences, padding_side: str, padding_value: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Padded token histories (the last ``max_history`` items) and, for repeat-aware models, the profile
        of the older items."""
        pad = self.n_items_
        owner = type(self).__name__
        check_padding_value(padding_value, self.n_items_, owner)
        if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
            padded = _item_indices(sequences, owner, None)  # 1.5 is refused, never read as item 1
            is_pad = padded == padding_value
            real = padded[~is_pad]
            if real.size and (real.min() < 0 or real.max() >= self.n_items_):
                raise ValidationError("sequences", f"item indices in [0, {self.n_items_}) or {padding_value}",
                                      "other values", owner=type(self).__name__)
            if padded.shape[1] <= self.max_history:
                profile = np.zeros((len(padded), self.n_items_), np.float32) if self.repeat_aware else None
                return np.where(is_pad, pad, padded), profile
            sequences = [row[~mask] for row, mask in zip(padded, is_pad, strict=True)]
        sequences = _as_lists(sequences, type(self).__name__)
        for row, sequence in enumerate(sequences):
            if len(sequence) and (sequence.min() < 0 or sequence.max() >= self.n_items_):
                raise ValidationError("sequences", f"item indices in [0, {self.n_items_})", "other values", row,
                                      owner=type(self).__name__)
        profile = history_profiles(sequences, self.max_history, self.n_items_) if self.repeat_aware else None
        return pad_histories(sequences, self.max_history, pad, padding_side), profile

    def score(
        self,
        sequences: Sequence[Sequence[int]] | np.ndarray,
        context: np.ndarray | None = None,
        *,
        padding_side: str = "left",
        padding_value: int = -1,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """Next-item scores ``(n_users, n_items)`` (float32 logits; higher = more likely next).

        ``sequences`` is a list of full item-index histories (the model reads the last ``max_history`` as
        tokens, padded on ``padding_side``, and older items as counts when ``repeat_aware``) or a 2-D array
        already padded with ``padding_value`` on either side.
        """
        self._check_fitted()
        owner = type(self).__name__
        positive_integer(owner, "batch_size", batch_size)
        histories, profiles = self._histories(sequences, padding_side, padding_value)
        if (context is None) != (self.context_mean_ is None):
            raise ValidationError("context", "given exactly when the model was fitted with context",
                                  "a mismatch", owner=owner)
        if context is not None:
            context = _context_rows(context, "context", len(histories), len(self.context_mean_), owner)
        context = self._standardize_context(context)
        self.network_.eval()
        chunks = []

        def rows_of(array, start, dtype=None):
            if array is None:
                return None
            return torch.as_tensor(array[start:start + batch_size], dtype=dtype, device=self.device_)

        with torch.no_grad(), self._autocast():
            for start in range(0, len(histories), batch_size):
                logits = self.network_.last_item_logits(
                    rows_of(histories, start), rows_of(context, start), rows_of(profiles, start)
                )
                chunks.append(logits.float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.n_items_), dtype=np.float32)

    def recommend(self, sequences, k: int = 10, context: np.ndarray | None = None,
                  exclude_seen: bool = False) -> np.ndarray:
        """Top ``k`` item indices per user, best first (ties: lower item index first); all items when ``k``
        exceeds the catalogue."""
        positive_integer(type(self).__name__, "k", k)
        scores = self.score(sequences, context).astype(np.float64)
        if exclude_seen:
            for row, sequence in enumerate(_as_lists(sequences)):
                scores[row, sequence] = -np.inf
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def policy(self, sequences, kind: str = "greedy", n_positions: int = 1, *, temperature: float = 1.0,
               epsilon: float = 0.1, context: np.ndarray | None = None):
        """An action distribution over items for each user (one round per sequence), via :mod:`causalrec.policy`.

        ``kind``: ``"greedy"`` (top ``n_positions`` items fill the slots), ``"softmax"`` (of the scores divided by
        ``temperature``) or ``"epsilon_greedy"``.
        """
        return _to_policy(self.score(sequences, context), kind, n_positions, temperature, epsilon)


def _as_lists(sequences, owner: str = "TransformerRecommender", field: str = "sequences") -> list[np.ndarray]:
    """One index array per user; a 2-D array is padded with -1 (other negative values stay, to be refused)."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        return [row[row != -1] for row in _item_indices(sequences, owner, None, field)]
    return [_item_indices(s, owner, row, field).reshape(-1) for row, s in enumerate(sequences)]


def _context_rows(context, field: str, n_rows: int | None, n_columns: int | None, owner: str) -> np.ndarray:
    """Numeric, finite, 2-D context with the expected number of rows (one per sequence) and columns."""
    context = as_numeric(context, field, None, ndim=2, owner=owner).astype(np.float64)
    check_finite(context, field, owner=owner)
    if n_rows is not None and context.shape[0] != n_rows:
        raise ValidationError(field, f"one row per sequence ({n_rows})", f"{context.shape[0]} rows", owner=owner)
    if n_columns is not None and context.shape[1] != n_columns:
        raise ValidationError(field, f"{n_columns} columns (as in fit)", f"{context.shape[1]}", owner=owner)
    return context


def _item_indices(values, owner: str, row: int | None, field: str = "sequences") -> np.ndarray:
    """Integer item indices; floats only when whole (1.0), never truncated (1.5), and no strings or ids."""
    array = np.asarray(values)
    if array.size == 0 or array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
        return array.astype(np.int64)
    shown = array.reshape(-1)[:5].tolist()
    raise ValidationError(field, "integer item indices 0..n_items-1 (map item ids to indices first)",
                          f"{array.dtype} values such as {shown}", row=row, owner=owner)


def _hold_out_last(sequences, baskets, context):
    """Hold out each user's last basket (or last item) as the early-stopping target."""
    train, train_baskets, histories, targets, rows = [], [], [], [], []
    for row, sequence in enumerate(sequences):
        labels = baskets[row] if baskets is not None else np.arange(len(sequence))
        # The last basket is the last run of equal consecutive labels (as in build_sequence_tables): an earlier
        # basket that reuses the label stays in training.
        changes = np.flatnonzero(labels[1:] != labels[:-1])
        if len(sequence) >= 2 and len(changes):
            cut = int(changes[-1]) + 1
            train.append(sequence[:cut])
            train_baskets.append(labels[:cut])
            histories.append(sequence[:cut])
            targets.append(np.unique(sequence[cut:]))
            rows.append(row)
        else:
            train.append(sequence)
            train_baskets.append(labels)
    if not rows:
        raise ValidationError("sequences", "some user with two or more baskets/items to hold out for validation",
                              "none", owner="TransformerRecommender")
    validation_context = None if context is None else context[rows]
    return train, (train_baskets if baskets is not None else None), histories, targets, validation_context


# ---------------------------------------------------------------------------------------------- tabular
class _TabularTransformer(_TransformerEstimator):
    """Rows of features (dense or sparse) -> per-(context, item, slot) outcomes; see the module docstring."""

    _saved_arrays = ("context_mean_", "context_scale_", "candidate_mean_", "candidate_scale_", "action_features_")
    _saved_values = ("layout_", "n_features_in_", "n_tasks_", "single_output_")
    _kind = "binary"

    def __init__(
        self,
        feature_layout: Mapping[str, Any] | None = None,
        *,
        architecture: str = "gpt2",
        hidden_size: int = 32,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.1,
        max_context_tokens: int = 16,
        max_epochs: int = 50,
        batch_size: int | None = None,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.01,
        patience: int = 5,
        validation_fraction: float = 0.2,
        device: str = "auto",
        precision: str = "auto",
        compile: str | bool = "auto",
        progress_bar: bool = False,
        checkpoint_dir: str | Path | None = None,
        attn_implementation: str = "sdpa",
        random_state: int | None = None,
    ):
        self.feature_layout = feature_layout
        self.architecture = architecture
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.max_context_tokens = max_context_tokens
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.precision = precision
        self.compile = compile
        self.progress_bar = progress_bar
        self.checkpoint_dir = checkpoint_dir
        self.attn_implementation = attn_implementation
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------------------------ features
    def _resolve_layout(self, n_features: int) -> dict:
        owner = type(self).__name__
        layout = dict(self.feature_layout) if self.feature_layout is not None else {"context": n_features}
        unknown = sorted(set(layout) - set(LAYOUT_BLOCKS))
        if unknown:
            raise ValidationError("feature_layout", f"keys among {LAYOUT_BLOCKS}", f"{unknown}", owner=owner)
        context = layout.get("context", 0)
        widths = [int(w) for w in context] if isinstance(context, Sequence) else None
        context_width = sum(widths) if widths is not None else int(context)
        resolved = {
            "context": context_width,
            "context_groups": widths if widths is not None else _default_groups(context_width,
                                                                                self.max_context_tokens),
            "action": int(layout.get("action", 0)),
            "action_context": int(layout.get("action_context", 0)),
            "position": int(layout.get("position", 0)),
        }
        total = sum(resolved[block] for block in LAYOUT_BLOCKS)
        if total != n_features or min(resolved[block] for block in LAYOUT_BLOCKS) < 0:
            raise ValidationError("feature_layout", f"block widths summing to the {n_features} columns of X",
                                  f"{ {b: resolved[b] for b in LAYOUT_BLOCKS} } (sum {total})", owner=owner)
        return resolved

    @staticmethod
    def _one_hot_index(block, missing: int) -> np.ndarray:
        """Column of the nonzero entry of each row of a one-hot block; ``missing`` for all-zero rows."""
        if block.shape[1] == 0:
            return np.full(block.shape[0], missing, dtype=np.int64)
        if sp.issparse(block):
            block = block.tocsr()
            block.eliminate_zeros()
            present = np.diff(block.indptr) > 0
            first = block.indices[np.minimum(block.indptr[:-1], max(len(block.indices) - 1, 0))]
            return np.where(present, first, missing).astype(np.int64)
        block = np.asarray(block)
        present = (block != 0).any(axis=1)
        return np.where(present, np.argmax(block != 0, axis=1), missing).astype(np.int64)

    def _split(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Raw (context, item, candidate features, slot) of the rows of ``X``."""
        layout = self.layout_
        if X.shape[1] != self.n_features_in_:
            raise ValidationError("X", f"{self.n_features_in_} columns (as in fit)", f"{X.shape[1]}",
                                  owner=type(self).__name__)
        X = X.tocsr() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
        bounds = np.cumsum([0] + [layout[block] for block in LAYOUT_BLOCKS])
        blocks = [X[:, bounds[i]:bounds[i + 1]] for i in range(len(LAYOUT_BLOCKS))]

        def dense(block):
            return np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)

        context, actions, candidate, positions = blocks
        items = self._one_hot_index(actions, layout["action"])
        slots = self._one_hot_index(positions, 0)
        return dense(context), items, dense(candidate), slots

    def _check_X(self, X, fitted: bool = False):
        """Finite 2-D features; ``fitted``: with the width seen in fit."""
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=np.float64)
            bad = ~np.isfinite(X.data)
            if bad.any():
                # The first stored non-finite value, reported with the row it sits in.
                first = int(np.flatnonzero(bad)[0])
                row = int(np.searchsorted(X.indptr, first, side="right")) - 1
                check_finite(X.data[first:first + 1], "X", owner=type(self).__name__, row_offset=row)
        else:
            X = np.asarray(X, dtype=np.float64)
            if X.ndim != 2:
                raise ValidationError("X", "a 2-D array", f"shape {X.shape}", owner=type(self).__name__)
            check_finite(X, "X", owner=type(self).__name__)
        if fitted and X.shape[1] != self.n_features_in_:
            raise ValidationError("X", f"{self.n_features_in_} columns (as in fit)", f"{X.shape[1]}",
                                  owner=type(self).__name__)
        return X

    # ------------------------------------------------------------------ fit
    def _prepare_labels(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, X, y, resume: bool):
        owner = type(self).__name__
        X = self._check_X(X)
        if X.shape[0] == 0:
            raise ValidationError("X", "at least one row to fit on", "0 rows", owner=owner)
        self.n_features_in_ = int(X.shape[1])
        self.layout_ = self._resolve_layout(self.n_features_in_)
        labels, label_mask = self._prepare_labels(y)
        if labels.shape[0] != X.shape[0]:
            raise ValidationError("y", f"one row per row of X ({X.shape[0]})", f"{labels.shape[0]}", owner=owner)
        self.n_tasks_ = int(labels.shape[1])
        self.device_ = resolve_device(self.device)
        context, items, candidate, slots = self._split(X)
        self.context_mean_, self.context_scale_ = _standardizer(context)
        self.candidate_mean_, self.candidate_scale_ = _standardizer(candidate)
        self.action_features_ = self._action_features(items, candidate)
        rows = OutcomeRows(self._scale_context(context), items, self._scale_candidate(candidate), slots, labels,
                           label_mask)
        train_rows, validation_rows = self._validation_split(labels, label_mask)
        layout = self.layout_
        self.spec_ = NetworkSpec(
            n_items=max(layout["action"], 1), architecture=self.architecture, hidden_size=self.hidden_size,
            n_layers=self.n_layers, n_heads=self.n_heads, dropout=self.dropout, max_history=0,
            n_context_features=layout["context"],
            context_groups=tuple(map(tuple, _group_columns(layout["context_groups"]))),
            candidate_feature_dim=layout["action_context"], n_slots=max(layout["position"], 1),
            n_tasks=self.n_tasks_, attn_implementation=self.attn_implementation,
        )
        if layout["action"] == 0:
            rows = OutcomeRows(rows.context, np.full(len(items), 1, dtype=np.int64), rows.candidate, rows.slots,
                               rows.labels, rows.label_mask)  # index 1 = "no item" when the catalogue is empty
        fingerprint = {"spec": self.spec_.to_dict(), "kind": self._kind,
                       "data": _data_fingerprint(rows.context, rows.items, rows.candidate, rows.slots, rows.labels,
                                                 rows.label_mask, train_rows)}
        config = self._training_config(owner, resume)
        with seeded_torch(self.random_state, self.device_):
            network = RecommenderNetwork(self.spec_)
            with torch.no_grad():
                network.outcome_head[-1].bias.copy_(torch.from_numpy(self._initial_bias(labels, label_mask)))
            network = network.to(self.device_)
            objective = OutcomeObjective(rows.take(train_rows), rows.take(validation_rows), self.device_, self._kind)
            self.history_ = train_network(network, objective, config, fingerprint)
        self.network_ = network
        return rows, validation_rows

    def _validation_split(self, labels: np.ndarray, label_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified on the first task's label (binary) so rare positives reach both sides."""
        n = labels.shape[0]
        rng = np.random.default_rng(self.random_state)
        if not 0 <= self.validation_fraction < 1:
            raise ValidationError("validation_fraction", "in [0, 1)", repr(self.validation_fraction),
                                  owner=type(self).__name__)
        strata = labels[:, 0] * label_mask[:, 0] if self._kind == "binary" else np.zeros(n)
        validation = []
        for value in np.unique(strata):
            members = np.flatnonzero(strata == value)
            count = int(round(self.validation_fraction * len(members)))
            validation.append(rng.permutation(members)[:count])
        validation = np.sort(np.concatenate(validation)) if validation else np.zeros(0, dtype=np.int64)
        train = np.setdiff1d(np.arange(n), validation)
        if len(validation) == 0 or len(train) == 0:
            logger.info("%s: no room for a validation split; early stopping watches the training rows",
                        type(self).__name__)
            return np.arange(n), np.arange(n)
        return train, validation

    def _action_features(self, items: np.ndarray, candidate: np.ndarray) -> np.ndarray | None:
        """Raw candidate features of each action (first row where it appears; column means if never seen)."""
        n_actions = self.layout_["action"]
        if n_actions == 0:
            return None
        features = np.tile(candidate.mean(axis=0) if len(candidate) else np.zeros(candidate.shape[1]),
                           (n_actions, 1))
        seen = items < n_actions
        actions, first = np.unique(items[seen], return_index=True)
        features[actions] = candidate[np.flatnonzero(seen)[first]]
        return features

    def _scale_context(self, context: np.ndarray) -> np.ndarray:
        return ((context - self.context_mean_) / self.context_scale_).astype(np.float32)

    def _scale_candidate(self, candidate: np.ndarray) -> np.ndarray:
        return ((candidate - self.candidate_mean_) / self.candidate_scale_).astype(np.float32)

    # ------------------------------------------------------------------ inference
    def _raw_outputs(self, X) -> np.ndarray:
        """Network outputs ``(n, n_tasks)`` (logits or standardised predictions)."""
        self._check_fitted()
        X = self._check_X(X, fitted=True)
        context, items, candidate, slots = self._split(X)
        if self.layout_["action"] == 0:
            items = np.full(len(items), 1, dtype=np.int64)
        return self._outputs_from_parts(context, items, self._scale_candidate(candidate), slots, scale_context=True)

    def _outputs_from_parts(self, context: np.ndarray, items: np.ndarray, candidate: np.ndarray,
                            slots: np.ndarray, scale_context: bool = False) -> np.ndarray:
        """Encode each distinct context once, then score its (item, slot) rows with the outcome heads.

        ``scale_context``: ``context`` is raw and is standardised after de-duplication (off-policy evaluation
        asks for every item of a policy's support per round, so rows repeat each context many times).
        """
        outputs = np.empty((len(items), self.n_tasks_), dtype=np.float64)
        self.network_.eval()
        with torch.no_grad(), self._autocast():
            for start in range(0, len(items), _PREDICT_CHUNK):
                stop = min(start + _PREDICT_CHUNK, len(items))
                chunk_context = context[start:stop]
                unique, inverse = _distinct_rows(chunk_context)
                if scale_context:
                    unique = self._scale_context(unique)
                summaries = []
                for first in range(0, len(unique), 4096):
                    block = torch.as_tensor(unique[first:first + 4096], device=self.device_)
                    hidden, mask = self.network_.encode(None, block if block.shape[1] else None,
                                                        batch_size=block.shape[0])
                    summaries.append(RecommenderNetwork.summary(hidden, mask))
                summary = torch.cat(summaries)[torch.as_tensor(inverse.reshape(-1), device=self.device_)]
                logits = self.network_.outcome_logits(
                    summary,
                    torch.as_tensor(items[start:stop], device=self.device_),
                    torch.as_tensor(candidate[start:stop], device=self.device_),
                    torch.as_tensor(slots[start:stop], device=self.device_),
                )
                outputs[start:stop] = logits.float().cpu().numpy()
        return outputs

    def _action_outputs(self, context: np.ndarray, position: int) -> np.ndarray:
        """Outputs ``(n, n_actions)`` of the first task for every action of the catalogue at slot ``position``."""
        self._check_fitted()
        n_actions = self.layout_["action"]
        if n_actions == 0:
            raise ValidationError("feature_layout", "an action block to score actions", "none",
                                  owner=type(self).__name__)
        owner = type(self).__name__
        context = _context_rows(context, "context", None, self.layout_["context"], owner)
        n_slots = self.spec_.n_slots
        if isinstance(position, bool) or not isinstance(position, Integral) or not 0 <= position < n_slots:
            raise ValidationError("position", f"an integer in [0, {n_slots})", repr(position), owner=owner)
        n = context.shape[0]
        rows_context = np.repeat(context, n_actions, axis=0)
        items = np.tile(np.arange(n_actions), n)
        candidate = np.tile(self._scale_candidate(self.action_features_), (n, 1))
        slots = np.full(n * n_actions, position, dtype=np.int64)
        outputs = self._outputs_from_parts(rows_context, items, candidate, slots, scale_context=True)
        return outputs[:, 0].reshape(n, n_actions)

    def _initial_bias(self, labels: np.ndarray, label_mask: np.ndarray) -> np.ndarray:
        return np.zeros(labels.shape[1], dtype=np.float32)


class TransformerClickModel(ClassifierMixin, _TabularTransformer):
    """Calibrated click (and other binary outcome) probabilities for (context, item, slot) rows.

    ``fit(X, y)`` with ``y`` of shape ``(n,)`` (two classes) or ``(n, n_tasks)`` of 0/1 labels, NaN where a task's
    outcome is unobserved (multi-task: click and a second outcome share the body). ``predict_proba`` returns
    ``(n, 2)`` for 1-D ``y`` and, like scikit-learn's multi-output classifiers, a list of ``(n, 2)`` arrays for
    2-D ``y``. Probabilities are calibrated by training with log loss, starting the output bias at the base
    rate, early stopping on held-out log loss and, with ``calibration="platt"`` (or ``"auto"`` when the
    validation split has at least ``min_calibration_events`` positives and negatives per task), a Platt
    rescaling of the logits fitted on the validation split.

    ``score_actions(context, position)`` gives the click probability of every action (needs an action block in
    ``feature_layout``), ``recommend`` the top ``k`` and ``policy`` an action distribution. scikit-learn's
    ``score(X, y)`` keeps its meaning (accuracy).

    A ``y`` with a single class (a cross-fitting fold without a click) fits a constant model.
    See :class:`TransformerRecommender` and the module docstring for the shared parameters.
    """

    _saved_values = (*_TabularTransformer._saved_values, "classes_", "calibration_", "constant_")

    def __init__(
        self,
        feature_layout: Mapping[str, Any] | None = None,
        *,
        architecture: str = "gpt2",
        hidden_size: int = 32,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.1,
        max_context_tokens: int = 16,
        max_epochs: int = 50,
        batch_size: int | None = None,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.01,
        patience: int = 5,
        validation_fraction: float = 0.2,
        calibration: str = "auto",
        min_calibration_events: int = 20,
        device: str = "auto",
        precision: str = "auto",
        compile: str | bool = "auto",
        progress_bar: bool = False,
        checkpoint_dir: str | Path | None = None,
        attn_implementation: str = "sdpa",
        random_state: int | None = None,
    ):
        super().__init__(
            feature_layout, architecture=architecture, hidden_size=hidden_size, n_layers=n_layers, n_heads=n_heads,
            dropout=dropout, max_context_tokens=max_context_tokens, max_epochs=max_epochs, batch_size=batch_size,
            learning_rate=learning_rate, weight_decay=weight_decay, patience=patience,
            validation_fraction=validation_fraction, device=device, precision=precision, compile=compile,
            progress_bar=progress_bar, checkpoint_dir=checkpoint_dir, attn_implementation=attn_implementation,
            random_state=random_state,
        )
        self.calibration = calibration
        self.min_calibration_events = min_calibration_events

    def _prepare_labels(self, y) -> tuple[np.ndarray, np.ndarray]:
        owner = type(self).__name__
        y = np.asarray(y)
        if y.ndim == 1:
            self.single_output_ = True
            classes = np.unique(y)
            if len(classes) > 2:
                raise ValidationError("y", "binary labels (two classes)", f"{len(classes)} classes", owner=owner)
            self.classes_ = classes
            labels = (y == classes[-1]).astype(np.float32)[:, None] if len(classes) == 2 else np.zeros((len(y), 1))
            return labels.astype(np.float32), np.ones_like(labels, dtype=np.float32)
        if y.ndim != 2:
            raise ValidationError("y", "a 1-D label array or an (n, n_tasks) 0/1 matrix", f"shape {y.shape}",
                                  owner=owner)
        y = y.astype(np.float64)
        observed = ~np.isnan(y)
        if not np.isin(y[observed], (0.0, 1.0)).all():
            raise ValidationError("y", "0/1 labels (NaN = unobserved) in every task", "other values", owner=owner)
        self.single_output_ = False
        self.classes_ = np.array([0, 1])
        return np.where(observed, y, 0.0).astype(np.float32), observed.astype(np.float32)

    def _initial_bias(self, labels: np.ndarray, label_mask: np.ndarray) -> np.ndarray:
        rate = (labels * label_mask).sum(axis=0) / np.maximum(label_mask.sum(axis=0), 1.0)
        rate = np.clip(rate, 1e-4, 1 - 1e-4)
        return np.log(rate / (1 - rate)).astype(np.float32)

    def fit(self, X, y, resume: bool = False) -> TransformerClickModel:
        """Fit on features ``X`` (dense or CSR; layout given by ``feature_layout``) and labels ``y``."""
        labels_preview = np.asarray(y)
        if labels_preview.ndim == 1 and len(np.unique(labels_preview)) < 2:
            X = self._check_X(X)
            if X.shape[0] == 0 or len(labels_preview) != X.shape[0]:
                raise ValidationError("y", f"one label per row of X ({X.shape[0]}), at least one",
                                      f"{len(labels_preview)} labels", owner=type(self).__name__)
            self.n_features_in_ = int(X.shape[1])
            self.layout_ = self._resolve_layout(self.n_features_in_)
            self.single_output_ = True
            self.classes_ = np.unique(labels_preview)
            self.n_tasks_ = 1
            self.constant_ = True
            self.spec_, self.network_, self.history_ = None, None, None
            self.context_mean_ = self.context_scale_ = self.candidate_mean_ = self.candidate_scale_ = None
            self.action_features_ = None
            self.calibration_ = [[1.0, 0.0]]
            logger.info("TransformerClickModel: y has a single class; fitted a constant model")
            return self
        self.constant_ = False
        rows, validation_rows = self._fit(X, y, resume)
        self.calibration_ = self._fit_calibration(rows, validation_rows)
        return self

    def _fit_calibration(self, rows: OutcomeRows, validation_rows: np.ndarray) -> list[list[float]]:
        """Platt scaling ``sigmoid(a * logit + b)`` per task on the validation rows, when asked and feasible."""
        identity = [[1.0, 0.0] for _ in range(self.n_tasks_)]
        if self.calibration not in ("auto", "platt", "none"):
            raise ValidationError("calibration", "'auto', 'platt' or 'none'", repr(self.calibration),
                                  owner=type(self).__name__)
        if self.calibration == "none" or len(validation_rows) == len(rows):
            return identity
        held_out = rows.take(validation_rows)
        logits = self._outputs_from_parts(held_out.context, held_out.items, held_out.candidate, held_out.slots)
        from sklearn.linear_model import LogisticRegression

        result = []
        for task in range(self.n_tasks_):
            observed = held_out.label_mask[:, task] > 0
            outcome = held_out.labels[observed, task]
            events = min(int(outcome.sum()), int((1 - outcome).sum()))
            if events < (1 if self.calibration == "platt" else self.min_calibration_events):
                result.append([1.0, 0.0])
                continue
            platt = LogisticRegression(C=1e4).fit(logits[observed, task][:, None], outcome)
            result.append([float(platt.coef_[0, 0]), float(platt.intercept_[0])])
        return result

    def predict_outcome_proba(self, X) -> np.ndarray:
        """Calibrated probability of each task, ``(n, n_tasks)``."""
        self._check_fitted()
        if self.constant_:
            X = self._check_X(X, fitted=True)
            value = float(self.classes_[-1] == 1) if len(self.classes_) == 1 else 0.0
            return np.full((X.shape[0], 1), value)
        logits = self._raw_outputs(X)
        calibration = np.asarray(self.calibration_)
        return 1.0 / (1.0 + np.exp(-(logits * calibration[:, 0] + calibration[:, 1])))

    def predict_proba(self, X):
        if getattr(self, "constant_", False):
            X = self._check_X(X, fitted=True)
            return np.ones((X.shape[0], 1))
        probability = self.predict_outcome_proba(X)
        pairs = [np.column_stack([1 - probability[:, t], probability[:, t]]) for t in range(self.n_tasks_)]
        return pairs[0] if self.single_output_ else pairs

    def predict(self, X) -> np.ndarray:
        if getattr(self, "constant_", False):
            X = self._check_X(X, fitted=True)
            return np.full(X.shape[0], self.classes_[0])
        probability = self.predict_outcome_proba(X)
        if self.single_output_:
            return self.classes_[(probability[:, 0] >= 0.5).astype(int)]
        return (probability >= 0.5).astype(int)

    def score_actions(self, context: np.ndarray, position: int = 0) -> np.ndarray:
        """Calibrated probability of the first task for every action at slot ``position``, ``(n, n_actions)``."""
        if getattr(self, "constant_", False):
            raise ValidationError("model", "fitted on two classes to score actions", "a constant model",
                                  owner=type(self).__name__)
        logits = self._action_outputs(context, position)
        a, b = self.calibration_[0]
        return 1.0 / (1.0 + np.exp(-(a * logits + b)))

    def recommend(self, context: np.ndarray, k: int = 1, position: int = 0) -> np.ndarray:
        """Top ``k`` actions per context row by predicted probability (ties: lower action index first)."""
        positive_integer(type(self).__name__, "k", k)
        return np.argsort(-self.score_actions(context, position), axis=1, kind="stable")[:, :k]

    def policy(self, context: np.ndarray, kind: str = "greedy", n_positions: int = 1, *, temperature: float = 1.0,
               epsilon: float = 0.1):
        """An action distribution (one round per context row) from the slot-0 probabilities."""
        return _to_policy(self.score_actions(context, 0), kind, n_positions, temperature, epsilon)


class TransformerOutcomeRegressor(RegressorMixin, _TabularTransformer):
    """Continuous outcomes of (context, item, slot) rows (e.g. EconML's ``model_y``); squared error on
    standardised targets. ``y`` is ``(n,)`` or ``(n, n_tasks)`` (NaN = unobserved). Parameters as
    :class:`TransformerClickModel`."""

    _kind = "regression"
    _saved_arrays = (*_TabularTransformer._saved_arrays, "target_mean_", "target_scale_")

    def _prepare_labels(self, y) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64)
        self.single_output_ = y.ndim == 1
        y = y[:, None] if y.ndim == 1 else y
        if y.ndim != 2:
            raise ValidationError("y", "a 1-D or 2-D numeric array", f"shape {y.shape}", owner=type(self).__name__)
        observed = ~np.isnan(y)
        if not np.isfinite(y[observed]).all():
            raise ValidationError("y", "finite values (NaN = unobserved)", "infinity", owner=type(self).__name__)
        filled = np.where(observed, y, 0.0)
        count = np.maximum(observed.sum(axis=0), 1)
        mean = filled.sum(axis=0) / count
        spread = np.sqrt(((filled - mean) ** 2 * observed).sum(axis=0) / count)
        self.target_mean_, self.target_scale_ = mean, np.where(spread > 1e-12, spread, 1.0)
        standardized = np.where(observed, (filled - mean) / self.target_scale_, 0.0)
        return standardized.astype(np.float32), observed.astype(np.float32)

    def fit(self, X, y, resume: bool = False) -> TransformerOutcomeRegressor:
        """Fit on features ``X`` (dense or CSR; layout given by ``feature_layout``) and targets ``y``."""
        self._fit(X, y, resume)
        return self

    def predict(self, X) -> np.ndarray:
        outputs = self._raw_outputs(X) * self.target_scale_ + self.target_mean_
        return outputs[:, 0] if self.single_output_ else outputs
