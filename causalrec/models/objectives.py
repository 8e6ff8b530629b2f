"""Training objectives: the data of a fit, resident on the training device, and its loss.

:class:`NextItemObjective` trains the next-item head on user histories; :class:`OutcomeObjective` trains the
outcome heads on (context, candidate item, slot) rows. Both implement
:class:`causalrec.models.training.Objective`: every random choice of a batch draws from the generator the
training loop owns (so a resumed run repeats it), and ``batch_loss`` is pure tensor code (so it compiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from causalrec._checks import positive_integer
from causalrec.exceptions import ValidationError
from causalrec.models.network import IGNORE_INDEX, RecommenderNetwork

LOSSES = ("full_softmax", "sampled_bce")
NEGATIVE_SAMPLING = ("uniform", "unseen")
_MAX_PROFILE_CELLS = 4e8


# ---------------------------------------------------------------------------------------------- sequences
@dataclass(frozen=True)
class SequenceTables:
    """Flat host arrays describing training windows over concatenated user sequences.

    ``tokens`` concatenates the users' sequences. For token ``t``, the target of the position that has just read
    it is drawn uniformly from ``tokens[next_start[t]:next_end[t]]`` (the next item, or the next basket's items),
    or there is none (``next_start = -1``). A window is ``tokens[window_start:window_end]`` of one user; its BOS
    position is supervised with the user's first basket when the window starts at the user's first token.
    ``window_profile`` (repeat-aware models) holds ``log(1 + count)`` of every item among the user's tokens
    before the window, ``(n_windows, n_items)``. ``user_offsets`` delimits each user's tokens:
    ``tokens[user_offsets[u]:user_offsets[u + 1]]``.
    """

    tokens: np.ndarray
    next_start: np.ndarray
    next_end: np.ndarray
    window_start: np.ndarray
    window_end: np.ndarray
    window_user: np.ndarray
    window_first_start: np.ndarray
    window_first_end: np.ndarray
    window_profile: np.ndarray | None = None
    user_offsets: np.ndarray | None = None

    @property
    def n_windows(self) -> int:
        return int(self.window_start.shape[0])


def build_sequence_tables(
    sequences: Sequence[np.ndarray],
    baskets: Sequence[np.ndarray] | None,
    max_history: int,
    max_windows_per_user: int | None = None,
    n_items: int | None = None,
) -> SequenceTables:
    """Windows of ``max_history`` tokens tiled backwards from each user's last token (most recent kept first).

    With ``baskets`` (one basket label per token; equal consecutive labels form a basket), the target after a
    token is an item of the *next basket*, which is what next-basket prediction asks; without, the next item.
    With ``n_items``, the windows' older-item profiles are computed too.
    """
    positive_integer("fit", "max_history", max_history)  # 0 used to loop forever
    if max_windows_per_user is not None:
        positive_integer("fit", "max_windows_per_user", max_windows_per_user)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(lengths)]
    tokens = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(sequences) else np.zeros(0)
    n_tokens = len(tokens)
    next_start = np.full(n_tokens, -1, dtype=np.int64)
    next_end = np.full(n_tokens, -1, dtype=np.int64)
    first_end = np.zeros(len(sequences), dtype=np.int64)
    for user, sequence in enumerate(sequences):
        start, stop = offsets[user], offsets[user + 1]
        if stop == start:
            continue
        if baskets is None:
            boundaries = np.arange(start, stop + 1)
        else:
            labels = np.asarray(baskets[user])
            if len(labels) != len(sequence):
                raise ValidationError("baskets", "one label per token of each sequence",
                                      f"{len(labels)} labels for {len(sequence)} tokens", user, owner="fit")
            change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
            boundaries = np.r_[0, change, len(labels)] + start
        first_end[user] = boundaries[1]
        # Token in basket b (boundaries[b] <= t < boundaries[b + 1]) targets basket b + 1.
        basket_of = np.searchsorted(boundaries, np.arange(start, stop), side="right") - 1
        has_next = basket_of + 2 < len(boundaries)
        positions = np.arange(start, stop)[has_next]
        next_start[positions] = boundaries[basket_of[has_next] + 1]
        next_end[positions] = boundaries[basket_of[has_next] + 2]

    window_start, window_end, window_user = [], [], []
    for user in range(len(sequences)):
        start, stop = offsets[user], offsets[user + 1]
        end, count = stop, 0
        while end > start and (max_windows_per_user is None or count < max_windows_per_user):
            begin = max(start, end - max_history)
            supervised = (next_start[begin:end] >= 0).any() or begin == start
            if supervised:
                window_start.append(begin)
                window_end.append(end)
                window_user.append(user)
                count += 1
            end -= max_history
    window_user = np.array(window_user, dtype=np.int64)
    window_profile = None
    if n_items is not None:
        if len(window_user) * n_items > _MAX_PROFILE_CELLS:
            # The profiles are stored densely on the device; beyond this size lower max_windows_per_user or
            # fit with repeat_aware=False (a sparse store would lift the limit).
            raise ValidationError(
                "max_windows_per_user",
                f"few enough windows for dense repeat profiles, windows x items <= {_MAX_PROFILE_CELLS:.0e} "
                "(or repeat_aware=False)",
                f"{len(window_user)} windows x {n_items} items", owner="fit",
            )
        window_profile = np.zeros((len(window_user), n_items), dtype=np.float32)
        for row, (user, begin) in enumerate(zip(window_user, window_start, strict=True)):
            older = tokens[offsets[user]:begin]
            if len(older):
                window_profile[row] = np.log1p(np.bincount(older, minlength=n_items))
    return SequenceTables(
        tokens=tokens,
        next_start=next_start,
        next_end=next_end,
        window_start=np.array(window_start, dtype=np.int64),
        window_end=np.array(window_end, dtype=np.int64),
        window_user=window_user,
        window_first_start=offsets[:-1][window_user] if len(window_user) else np.zeros(0, dtype=np.int64),
        window_first_end=first_end[window_user] if len(window_user) else np.zeros(0, dtype=np.int64),
        window_profile=window_profile,
        user_offsets=offsets.astype(np.int64),
    )


def unseen_sampling_keys(tokens: np.ndarray, user_offsets: np.ndarray,
                         n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted keys ``user * n_items + (s_j - j)`` over each user's sorted distinct items ``s_j``, the first key
    of each user and each user's number of distinct items (see ``NextItemObjective._draw_unseen``)."""
    n_users = len(user_offsets) - 1
    user_of_token = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(user_offsets))
    pairs = np.unique(user_of_token * n_items + np.asarray(tokens, dtype=np.int64))  # sorted distinct (user, item)
    users = pairs // n_items
    n_seen = np.bincount(users, minlength=n_users).astype(np.int64)
    key_start = np.cumsum(n_seen) - n_seen
    rank_within_user = np.arange(len(pairs), dtype=np.int64) - key_start[users]
    return pairs - rank_within_user, key_start, n_seen


def history_profiles(sequences: Sequence[np.ndarray], max_history: int, n_items: int) -> np.ndarray:
    """``log(1 + count)`` of every item among the tokens older than each sequence's last ``max_history``."""
    profile = np.zeros((len(sequences), n_items), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        older = np.asarray(sequence, dtype=np.int64)[: max(len(sequence) - max_history, 0)]
        if len(older):
            profile[row] = np.log1p(np.bincount(older, minlength=n_items))
    return profile


def pad_histories(
    sequences: Sequence[np.ndarray], max_history: int, pad_index: int, padding_side: str = "left"
) -> np.ndarray:
    """The last ``max_history`` items of each sequence in an ``(n, width)`` array padded with ``pad_index``."""
    if padding_side not in ("left", "right"):
        raise ValidationError("padding_side", "'left' or 'right'", repr(padding_side), owner="score")
    width = max(1, min(max_history, max((len(s) for s in sequences), default=1)))
    padded = np.full((len(sequences), width), pad_index, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        recent = np.asarray(sequence, dtype=np.int64)[-max_history:] if max_history else np.zeros(0, np.int64)
        if len(recent):
            if padding_side == "left":
                padded[row, width - len(recent):] = recent
            else:
                padded[row, : len(recent)] = recent
    return padded


def score_supervised_rows_only(outputs: torch.Tensor) -> bool:
    """Whether the full-softmax loss scores only the positions that have a target.

    Left padding has none: about 40% of a batch of MovieLens-like histories read 200 at a time. Selecting the
    rows is a boolean index with a data-dependent shape, which would make a GPU wait for the host and
    ``torch.compile`` recompile, so GPU and compiled steps stay dense; eager CPU steps skip the padding.
    """
    return outputs.device.type == "cpu" and not torch.compiler.is_compiling()


class NextItemObjective:
    """Next-item (or next-basket-item) prediction over the full catalogue.

    Each position's targets are up to ``targets_per_position`` items of the next basket (a random cyclic run
    of them when the basket is larger; the next item without baskets), all supervised at once, which gives
    next-basket data several times more signal per step than one sampled target.

    ``loss="full_softmax"``: cross-entropy of each target against every item of the catalogue (the softmax
    normaliser is computed once per position and shared by its targets).
    ``loss="sampled_bce"``: binary cross-entropy of each target against one sampled negative item, kept for the
    comparison the benchmark makes. ``negative_sampling="unseen"`` is SASRec's original sampler (Kang & McAuley
    2018): the negative is uniform over the items absent from the user's whole training sequence, so an item the
    user ever bought is never a negative. ``"uniform"`` draws it from the whole catalogue, so a re-bought item
    can be a negative too (a target can, rarely, be drawn as its own negative); on repeat-heavy data that lets
    BCE learn how far to trust the history, and it is the stronger of the two there. Full softmax ignores it.
    Validation: the mean full-catalogue cross-entropy of the held-out targets given their histories, or
    ``-NDCG@k`` when ``validation_metric="ndcg@k"`` (a criterion that treats both losses alike).
    """

    def __init__(
        self,
        tables: SequenceTables,
        n_items: int,
        max_history: int,
        device: torch.device,
        *,
        loss: str = "full_softmax",
        context: np.ndarray | None = None,
        validation_histories: np.ndarray | None = None,
        validation_profiles: np.ndarray | None = None,
        validation_context: np.ndarray | None = None,
        validation_targets: Sequence[np.ndarray] | None = None,
        validation_metric: str = "loss",
        validation_batch_size: int = 512,
        targets_per_position: int = 8,
        negative_sampling: str = "uniform",
    ):
        if loss not in LOSSES:
            raise ValidationError("loss", f"one of {LOSSES}", repr(loss), owner="fit")
        check_validation_metric(validation_metric)
        if negative_sampling not in NEGATIVE_SAMPLING:
            raise ValidationError("negative_sampling", f"one of {NEGATIVE_SAMPLING}", repr(negative_sampling),
                                  owner="fit")
        self.negative_sampling = negative_sampling
        self.loss = loss
        self.n_items = n_items
        self.pad_index = n_items
        self.max_history = max_history
        self.device = device
        self.n_examples = tables.n_windows
        # For length buckets (training.plan_buckets): the tokens of each window, and the padded width.
        self.window_lengths = np.asarray(tables.window_end - tables.window_start)
        self.max_width = max_history

        def on_device(array, dtype=torch.long):
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        self.tokens = on_device(tables.tokens)
        self.next_start = on_device(tables.next_start)
        self.next_end = on_device(tables.next_end)
        self.window_start = on_device(tables.window_start)
        self.window_end = on_device(tables.window_end)
        self.window_user = on_device(tables.window_user)
        self.window_first_start = on_device(tables.window_first_start)
        self.window_first_end = on_device(tables.window_first_end)
        self.offsets = torch.arange(max_history, device=device)
        self.target_slots = torch.arange(max(int(targets_per_position), 1), device=device)
        self.context = None if context is None else on_device(context, torch.float32)
        self.profile = None if tables.window_profile is None else on_device(tables.window_profile, torch.float32)
        if loss == "sampled_bce" and negative_sampling == "unseen":
            if tables.user_offsets is None:
                raise ValidationError("tables", "user_offsets (from build_sequence_tables)", "none", owner="fit")
            keys, key_start, n_seen = unseen_sampling_keys(tables.tokens, tables.user_offsets, n_items)
            self.unseen_keys, self.unseen_key_start, self.unseen_count = (
                on_device(keys), on_device(key_start), on_device(n_seen))

        self.validation_metric = validation_metric
        self.validation_batch_size = validation_batch_size
        self.validation_targets = validation_targets
        self.validation_histories = None
        if validation_histories is not None:
            self.validation_histories = on_device(validation_histories)
            self.validation_profiles = (None if validation_profiles is None
                                        else on_device(validation_profiles, torch.float32))
            self.validation_context = (None if validation_context is None
                                       else on_device(validation_context, torch.float32))
            rows = np.concatenate([np.full(len(t), r) for r, t in enumerate(validation_targets)])
            items = np.concatenate([np.asarray(t, dtype=np.int64) for t in validation_targets])
            self.validation_pairs = (on_device(rows), on_device(items))

    # ------------------------------------------------------------------ training batches
    def make_batch(self, rows: torch.Tensor, generator: torch.Generator,
                   width: int | None = None) -> tuple[torch.Tensor, ...]:
        """The windows ``rows`` right-aligned in ``width`` tokens (``max_history`` by default; a length bucket
        passes a narrower width that its windows fit, which leaves every output unchanged: padding is masked and
        positions count real tokens only)."""
        width = self.max_history if width is None else width
        start, end = self.window_start[rows], self.window_end[rows]
        index = end[:, None] - width + self.offsets[None, :width]  # right-aligned: left padding
        valid = index >= start[:, None]
        safe = index.clamp(min=0)
        history = torch.where(valid, self.tokens[safe], self.pad_index)

        low, high = self.next_start[safe], self.next_end[safe]
        target = self._draw_targets(low, high, valid & (low >= 0), generator)  # (B, T, M)
        first_low, first_high = self.window_first_start[rows], self.window_first_end[rows]
        bos_target = self._draw_targets(first_low[:, None], first_high[:, None], (start == first_low)[:, None],
                                        generator)
        targets = torch.cat([bos_target, target], dim=1)  # (B, T + 1, M)

        if self.loss == "sampled_bce" and self.negative_sampling == "unseen":
            negatives = self._draw_unseen(self.window_user[rows], targets.shape, generator)
        elif self.loss == "sampled_bce":
            negatives = torch.randint(0, self.n_items, targets.shape, generator=generator, device=self.device)
        else:
            negatives = torch.zeros(0, dtype=torch.long, device=self.device)
        context = (self.context[self.window_user[rows]] if self.context is not None
                   else torch.zeros(len(rows), 0, device=self.device))
        profile = self.profile[rows] if self.profile is not None else torch.zeros(len(rows), 0, device=self.device)
        return history, context, profile, targets, negatives

    def _draw_unseen(self, users: torch.Tensor, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
        """Items uniform over those absent from each row's user's training tokens (exact, no rejection loop).

        With the user's sorted distinct items ``s_0 < s_1 < ...`` and ``c_j = s_j - j`` (unseen items below
        ``s_j``), the ``r``-th unseen item is ``r + #{j : c_j <= r}``; ``unseen_keys`` holds ``user * n_items + c_j``
        for all users in one sorted array, so the count is one ``searchsorted``. A user who has every item has no
        unseen one and gets a uniform draw instead.
        """
        expand = (slice(None),) + (None,) * (len(shape) - 1)
        user = users[expand].expand(shape)
        free = self.n_items - self.unseen_count[user]
        draw = torch.rand(shape, generator=generator, device=self.device)
        rank = torch.minimum((draw * free.clamp(min=1)).long(), (free - 1).clamp(min=0))
        query = user * self.n_items + rank
        below = torch.searchsorted(self.unseen_keys, query.reshape(-1), right=True).reshape(shape)
        unseen = rank + below - self.unseen_key_start[user]
        fallback = torch.minimum((draw * self.n_items).long(), torch.full_like(rank, self.n_items - 1))
        return torch.where(free > 0, unseen, fallback)

    def _draw_targets(self, low: torch.Tensor, high: torch.Tensor, has_target: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        """Up to M items of ``tokens[low:high]`` per position (a cyclic run from a random offset), else ignored."""
        size = (high - low).clamp(min=1)
        offset = torch.minimum((torch.rand(low.shape, generator=generator, device=self.device) * size).long(),
                               size - 1)
        slots = self.target_slots
        picked = low[..., None] + (offset[..., None] + slots) % size[..., None]
        present = has_target[..., None] & (slots < (high - low)[..., None])
        tokens = self.tokens[picked.clamp(min=0, max=len(self.tokens) - 1)]
        return torch.where(present, tokens, IGNORE_INDEX)

    def batch_loss(self, network: RecommenderNetwork, history, context, profile, targets, negatives) -> torch.Tensor:
        table = network.item_table()
        hidden, _ = network.encode(history, context if context.shape[1] else None, table)
        outputs = hidden[:, -(history.shape[1] + 1):]  # BOS + history positions
        repeat_aware = network.spec.repeat_aware
        supervised = (targets != IGNORE_INDEX).float()
        target_items = targets.clamp(min=0)
        if self.loss == "full_softmax":
            rows = None
            if score_supervised_rows_only(outputs):
                rows = supervised.any(dim=-1)
                supervised, target_items = supervised[rows], target_items[rows]
                if not repeat_aware:  # the repeat terms need every position of the window
                    outputs = outputs[rows]
            if repeat_aware:
                logits = network.item_logits(outputs, table).float()
                logits = network.add_repeat_scores(logits, history, outputs, profile, every_position=True)
                if rows is not None:
                    logits = logits[rows]
            else:
                # Dense GPU/compiled steps score a catalogue padded to a multiple of 64 columns (scores of -inf,
                # which the softmax ignores): rows 16-byte aligned keep the GEMM and softmax kernels on their
                # fast paths (H100, 3,706 items, hidden 128, histories read 200 at a time: 9% less step time).
                logits = network.item_logits(outputs, table, pad_to=1 if rows is not None else 64).float()
            # log_softmax, not logsumexp - logits: its fused backward (softmax minus the gathered gradient) is one
            # pass over the (B, T + 1, n_items) tensor where logsumexp's autograd takes several (about 3x less
            # backward time on CPU at MovieLens-1M scale). On an H100, logsumexp minus each target's score computed
            # from its embedding was slower still (51 against 34 ms a step: that score's gradient is scattered into
            # the item table, most of it onto the item that the empty target slots point to).
            per_target = -torch.log_softmax(logits, dim=-1).gather(-1, target_items)
        else:
            positive = network.item_logits_of(outputs, target_items, table).float()
            negative = network.item_logits_of(outputs, negatives, table).float()
            if repeat_aware:
                positive = positive + network.repeat_scores_of(target_items, history, outputs, profile)
                negative = negative + network.repeat_scores_of(negatives, history, outputs, profile)
            per_target = F.softplus(-positive) + F.softplus(negative)
        return (per_target * supervised).sum() / supervised.sum().clamp(min=1.0)

    @property
    def scores_per_example(self) -> int:
        """Dense score entries one training example creates: every position x the catalogue under the full
        softmax, none under sampled BCE (used to size the default batch)."""
        return (self.max_history + 1) * self.n_items if self.loss == "full_softmax" else 0

    def supervised_count(self, history, context, profile, targets, negatives) -> torch.Tensor:
        """Positions with at least one target."""
        return (targets != IGNORE_INDEX).any(dim=-1).sum()

    # ------------------------------------------------------------------ validation
    def validation_scores(self, network: RecommenderNetwork) -> torch.Tensor:
        """Next-item scores ``(n_validation, n_items)`` after each validation history."""
        chunks = []
        for start in range(0, self.validation_histories.shape[0], self.validation_batch_size):
            history = self.validation_histories[start:start + self.validation_batch_size]
            context = (None if self.validation_context is None
                       else self.validation_context[start:start + self.validation_batch_size])
            profile = (None if self.validation_profiles is None
                       else self.validation_profiles[start:start + self.validation_batch_size])
            chunks.append(network.last_item_logits(history, context, profile).float())
        return torch.cat(chunks)

    @property
    def validation_criterion(self) -> str:
        """What :meth:`validation_loss` measures, in words (a training history's readers see only numbers)."""
        if self.validation_metric == "loss":
            return "mean full-catalogue cross-entropy of the held-out targets, nats (lower is better)"
        return (f"minus the NDCG@{check_validation_metric(self.validation_metric)} of the held-out targets "
                "(negated so that lower is better)")

    def validation_loss(self, network: RecommenderNetwork) -> float:
        if self.validation_histories is None:
            raise ValidationError("validation", "held-out histories and targets", "none", owner="fit")
        scores = self.validation_scores(network)
        if self.validation_metric == "loss":
            log_probabilities = torch.log_softmax(scores, dim=1)
            rows, items = self.validation_pairs
            return float(-log_probabilities[rows, items].mean())
        from causalrec.models.metrics import ranking_metrics

        k = check_validation_metric(self.validation_metric)
        return -ranking_metrics(scores.cpu().numpy(), self.validation_targets, ks=(k,))[f"ndcg@{k}"]


def check_validation_metric(metric) -> int | None:
    """``"loss"`` (None) or ``"ndcg@k"`` with an integer ``k >= 1`` (k), else a ValidationError: any other name
    used to be read as NDCG (``"recall@10"``) or to fail after the first epoch (``"mrr"``)."""
    if metric == "loss":
        return None
    head, _, cutoff = str(metric).partition("@")
    if isinstance(metric, str) and head == "ndcg" and cutoff.isdigit() and int(cutoff) >= 1:
        return int(cutoff)
    raise ValidationError("validation_metric", "'loss' or 'ndcg@k' with an integer k >= 1", repr(metric), owner="fit")


# ---------------------------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class OutcomeRows:
    """Rows of an outcome objective, as host arrays: features, candidate item, slot and labels."""

    context: np.ndarray
    items: np.ndarray
    candidate: np.ndarray
    slots: np.ndarray
    labels: np.ndarray
    label_mask: np.ndarray

    def take(self, rows: np.ndarray) -> OutcomeRows:
        return OutcomeRows(self.context[rows], self.items[rows], self.candidate[rows], self.slots[rows],
                           self.labels[rows], self.label_mask[rows])

    def __len__(self) -> int:
        return int(self.items.shape[0])


class OutcomeObjective:
    """Per-(context, item, slot) outcomes, several tasks at once; labels may be missing (mask 0).

    ``kind="binary"``: binary cross-entropy per task (probabilities); ``kind="regression"``: squared error on
    standardised targets.
    """

    def __init__(self, train: OutcomeRows, validation: OutcomeRows, device: torch.device, kind: str = "binary",
                 validation_batch_size: int = 4096):
        if kind not in ("binary", "regression"):
            raise ValidationError("kind", "'binary' or 'regression'", repr(kind), owner="fit")
        self.kind = kind
        self.device = device
        self.n_examples = len(train)
        self.train = self._to_device(train)
        self.validation = self._to_device(validation)
        self.validation_batch_size = validation_batch_size

    def _to_device(self, rows: OutcomeRows) -> tuple[torch.Tensor, ...]:
        def move(array, dtype):
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=self.device)

        return (move(rows.context, torch.float32), move(rows.items, torch.long), move(rows.candidate, torch.float32),
                move(rows.slots, torch.long), move(rows.labels, torch.float32), move(rows.label_mask, torch.float32))

    def make_batch(self, rows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return tuple(tensor[rows] for tensor in self.train)

    def batch_loss(self, network: RecommenderNetwork, context, items, candidate, slots, labels, mask):
        logits = outcome_logits(network, context, items, candidate, slots).float()
        if self.kind == "binary":
            losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        else:
            losses = (logits - labels) ** 2
        return (losses * mask).sum() / mask.sum().clamp(min=1.0)

    def supervised_count(self, context, items, candidate, slots, labels, mask) -> torch.Tensor:
        return mask.sum()

    @property
    def validation_criterion(self) -> str:
        """What :meth:`validation_loss` measures, in words."""
        if self.kind == "binary":
            return "mean binary cross-entropy of the held-out outcomes over the tasks, nats (lower is better)"
        return "mean squared error of the standardised held-out outcomes over the tasks (lower is better)"

    def validation_loss(self, network: RecommenderNetwork) -> float:
        total = torch.zeros((), device=self.device)
        count = torch.zeros((), device=self.device)
        n_rows = self.validation[0].shape[0]
        for start in range(0, n_rows, self.validation_batch_size):
            batch = tuple(t[start:start + self.validation_batch_size] for t in self.validation)
            loss = self.batch_loss(network, *batch)
            weight = batch[-1].sum()
            total += loss * weight
            count += weight
        return float(total / count.clamp(min=1.0))


def outcome_logits(network: RecommenderNetwork, context, items, candidate, slots) -> torch.Tensor:
    """Outcome logits of rows ``(context, candidate item, slot)`` (no history)."""
    hidden, mask = network.encode(None, context if context.shape[1] else None, batch_size=items.shape[0])
    return network.outcome_logits(RecommenderNetwork.summary(hidden, mask), items, candidate, slots)
