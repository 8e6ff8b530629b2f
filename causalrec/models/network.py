"""The one network behind every causalrec transformer model.

A row is a token sequence ``[context tokens] [BOS] [history items]`` fed as ``inputs_embeds`` to a GPT-2 or BERT
body built from a ``transformers`` config (no pretrained weights; nothing is downloaded):

* context tokens: the row's numeric features (user features, Open Bandit affinities, ...) split into groups of
  columns; group ``g`` becomes the token ``x_g W_g + b_g`` (a per-group linear embedding, as FT-Transformer
  does per feature), so attention can weigh feature groups against each other and the history;
* BOS: a learned token that summarises the row when there is no history (cold users, click logs);
* history items: the user's past items, represented like output items (tied embeddings).

Attention is causal (GPT-2; BERT with ``is_decoder=True``) so that next-item training supervises every position
at once. Padding may sit left, right or between the context and the history: positions are counted over real
tokens only and padded keys are masked, so a row's outputs do not depend on how it was padded.

Heads:

* next-item scores over the full catalogue: ``h_t . e_j + bias_j`` with ``e_j`` the item representation
  (its id embedding plus a projection of fixed item features such as text embeddings; items never seen in
  training use the feature part only, which is what lets text features serve cold-start items);
* outcome logits for a (row, candidate item, slot) triple, one per task (click, a second outcome, ...):
  an MLP of ``[u, v, u * v, s]`` where ``u`` is the row summary (its last real token), ``v`` the candidate's
  representation (plus per-row candidate features) and ``s`` a slot embedding. Candidates are fused late, after
  the body, so that one encoding of a context scores every candidate item and slot: off-policy evaluation asks
  for ``q(x, a, l)`` over the whole support of a policy, which early fusion would multiply by the catalogue size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from numbers import Real

import torch
from torch import nn
from torch.nn import functional as F

from causalrec._checks import positive_integer
from causalrec.exceptions import ValidationError

ARCHITECTURES = ("gpt2", "bert")
IGNORE_INDEX = -100
_TOKEN_TYPES = {"context": 0, "bos": 1, "item": 2}


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild a :class:`RecommenderNetwork` (stored in saved models' config.json)."""

    n_items: int
    architecture: str = "gpt2"
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.1
    max_history: int = 50
    n_context_features: int = 0
    context_groups: tuple[tuple[int, ...], ...] = ()
    item_feature_dim: int = 0
    candidate_feature_dim: int = 0
    n_slots: int = 1
    n_tasks: int = 0
    repeat_aware: bool = False
    # The "never bought despite many chances" term of repeat-aware models (see ``add_repeat_scores``); False in
    # configs saved before it existed, so that those models load and score as they did.
    repeat_absence: bool = False
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_groups", tuple(tuple(int(i) for i in g) for g in self.context_groups))
        if self.architecture not in ARCHITECTURES:
            raise ValidationError("architecture", f"one of {ARCHITECTURES}", repr(self.architecture), owner="network")
        for name in ("hidden_size", "n_layers", "n_heads"):
            positive_integer("network", name, getattr(self, name))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, Real) or not 0 <= self.dropout < 1:
            raise ValidationError("dropout", "a probability in [0, 1)", repr(self.dropout), owner="network")
        if self.hidden_size % self.n_heads:
            raise ValidationError("hidden_size", f"a multiple of n_heads = {self.n_heads}", repr(self.hidden_size),
                                  owner="network")
        for group in self.context_groups:
            if not group or min(group) < 0 or max(group) >= self.n_context_features:
                raise ValidationError("context_groups", f"non-empty column lists in [0, {self.n_context_features})",
                                      repr(group), owner="network")

    @property
    def n_context_tokens(self) -> int:
        return len(self.context_groups)

    @property
    def max_tokens(self) -> int:
        return self.n_context_tokens + 1 + self.max_history

    def to_dict(self) -> dict:
        values = asdict(self)
        values["context_groups"] = [list(group) for group in self.context_groups]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> NetworkSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def build_body(spec: NetworkSpec) -> nn.Module:
    """A randomly initialised GPT-2 or BERT encoder stack of the requested size, from a config only.

    transformers 5.x takes ``attn_implementation`` from the config (not the constructor).
    """
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    if spec.architecture == "gpt2":
        config = GPT2Config(
            n_embd=spec.hidden_size, n_layer=spec.n_layers, n_head=spec.n_heads, n_inner=4 * spec.hidden_size,
            n_positions=spec.max_tokens, vocab_size=1, resid_pdrop=spec.dropout, embd_pdrop=spec.dropout,
            attn_pdrop=spec.dropout, bos_token_id=None, eos_token_id=None, pad_token_id=None,
            attn_implementation=spec.attn_implementation,
        )
        return GPT2Model(config)
    config = BertConfig(
        hidden_size=spec.hidden_size, num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
        intermediate_size=4 * spec.hidden_size, max_position_embeddings=spec.max_tokens, vocab_size=1,
        type_vocab_size=1, hidden_dropout_prob=spec.dropout, attention_probs_dropout_prob=spec.dropout,
        is_decoder=True, pad_token_id=None, attn_implementation=spec.attn_implementation,
    )
    return BertModel(config, add_pooling_layer=False)


class RecommenderNetwork(nn.Module):
    """See the module docstring. ``pad_index = n_items`` marks padding and "no item" in every item input."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        hidden = spec.hidden_size
        self.pad_index = spec.n_items
        self.body = build_body(spec)
        self.item_embedding = nn.Parameter(torch.randn(spec.n_items, hidden) * 0.02)
        self.item_bias = nn.Parameter(torch.zeros(spec.n_items))
        # 1 for items seen in training; unseen items are represented by their features alone (cold start).
        self.register_buffer("known_items", torch.ones(spec.n_items))
        if spec.item_feature_dim:
            self.register_buffer("item_features", torch.zeros(spec.n_items, spec.item_feature_dim))
            self.item_feature_projection = nn.Linear(spec.item_feature_dim, hidden)
        if spec.n_context_tokens:
            width = max(len(group) for group in spec.context_groups)
            index = torch.full((spec.n_context_tokens, width), spec.n_context_features, dtype=torch.long)
            for g, group in enumerate(spec.context_groups):
                index[g, : len(group)] = torch.tensor(group)
            self.register_buffer("context_index", index)
            self.context_weight = nn.Parameter(torch.randn(spec.n_context_tokens, width, hidden) / width**0.5)
            self.context_bias = nn.Parameter(torch.randn(spec.n_context_tokens, hidden) * 0.02)
        if spec.repeat_aware:
            # Gates of the two repeat terms (history tokens, older profile) start at 1: "re-buying is likely".
            self.repeat_gate = nn.Linear(hidden, 2)
            nn.init.zeros_(self.repeat_gate.weight)
            nn.init.constant_(self.repeat_gate.bias, 1.0)
            self.repeat_item_weight = nn.Parameter(torch.zeros(2, spec.n_items))
            if spec.repeat_absence:
                self.absence_weight = nn.Parameter(torch.zeros(spec.n_items))
        self.bos = nn.Parameter(torch.randn(hidden) * 0.02)
        self.token_type = nn.Embedding(len(_TOKEN_TYPES), hidden)
        nn.init.normal_(self.token_type.weight, std=0.02)
        if spec.n_tasks:
            self.slot_embedding = nn.Embedding(max(spec.n_slots, 1), hidden)
            nn.init.normal_(self.slot_embedding.weight, std=0.02)
            if spec.candidate_feature_dim:
                self.candidate_projection = nn.Linear(spec.candidate_feature_dim, hidden)
            self.outcome_head = nn.Sequential(
                nn.Linear(4 * hidden, hidden), nn.GELU(), nn.Dropout(spec.dropout), nn.Linear(hidden, spec.n_tasks)
            )

    # ------------------------------------------------------------------ item representations
    def item_table(self) -> torch.Tensor:
        """``(n_items, hidden)`` representation of every item (used for inputs and outputs)."""
        table = self.item_embedding * self.known_items[:, None]
        if self.spec.item_feature_dim:
            table = table + self.item_feature_projection(self.item_features)
        return table

    def embed_items(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Representations of item indices; ``pad_index`` maps to a zero vector."""
        table = self.item_table() if table is None else table
        padded = torch.cat([table, table.new_zeros(1, table.shape[1])], dim=0)
        return padded[items]

    # ------------------------------------------------------------------ body
    def encode(self, history: torch.Tensor | None, context: torch.Tensor | None,
               table: torch.Tensor | None = None, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states ``(B, G + 1 + T, hidden)`` of ``[context] [BOS] [history]`` and the real-token mask."""
        spec = self.spec
        if batch_size is not None:
            batch = batch_size
        else:
            batch = history.shape[0] if history is not None else context.shape[0]
        tokens, masks, types = [], [], []
        if spec.n_context_tokens:
            padded = F.pad(context, (0, 1))
            grouped = padded[:, self.context_index]  # (B, G, S)
            context_tokens = torch.einsum("bgs,gsh->bgh", grouped, self.context_weight.to(grouped.dtype))
            tokens.append(context_tokens + self.context_bias)
            masks.append(torch.ones(batch, spec.n_context_tokens, dtype=torch.bool, device=self.bos.device))
            types.append(torch.full((spec.n_context_tokens,), _TOKEN_TYPES["context"], device=self.bos.device))
        tokens.append(self.bos.expand(batch, 1, -1))
        masks.append(torch.ones(batch, 1, dtype=torch.bool, device=self.bos.device))
        types.append(torch.full((1,), _TOKEN_TYPES["bos"], device=self.bos.device))
        if history is not None and history.shape[1]:
            tokens.append(self.embed_items(history, table))
            masks.append(history != self.pad_index)
            types.append(torch.full((history.shape[1],), _TOKEN_TYPES["item"], device=self.bos.device))
        embeddings = torch.cat([t.to(self.bos.dtype) for t in tokens], dim=1)
        embeddings = embeddings + self.token_type(torch.cat(types))[None]
        mask = torch.cat(masks, dim=1)
        position_ids = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        hidden = self.body(
            inputs_embeds=embeddings, attention_mask=mask.long(), position_ids=position_ids
        ).last_hidden_state
        return hidden, mask

    @staticmethod
    def summary(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden state of each row's last real token (it has attended to everything before it)."""
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask.long() * positions).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    # ------------------------------------------------------------------ heads
    def item_logits(self, hidden: torch.Tensor, table: torch.Tensor | None = None, pad_to: int = 1) -> torch.Tensor:
        """Scores of every catalogue item, ``(..., n_items)``; with ``pad_to > 1``, followed by scores of -inf up to
        a multiple of ``pad_to`` columns (a softmax gives them probability 0 and gradient 0)."""
        table = self.item_table() if table is None else table
        bias = self.item_bias * self.known_items
        extra = -table.shape[0] % pad_to
        if extra:
            table = F.pad(table, (0, 0, 0, extra))
            bias = F.pad(bias, (0, extra), value=float("-inf"))
        # One GEMM with the bias folded in (addmm), not a matmul and a separate add over (..., n_items).
        return F.linear(hidden, table.to(hidden.dtype), bias.to(hidden.dtype))

    def item_logits_of(self, hidden: torch.Tensor, items: torch.Tensor,
                       table: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of given items only: ``hidden (B, O, h)`` against ``items (B, O, K)`` -> ``(B, O, K)``."""
        table = self.item_table() if table is None else table
        bias = self.item_bias * self.known_items
        return (hidden[..., None, :] * table[items].to(hidden.dtype)).sum(-1) + bias[items].to(hidden.dtype)

    def outcome_logits(self, summary: torch.Tensor, items: torch.Tensor, candidate: torch.Tensor | None,
                       slots: torch.Tensor) -> torch.Tensor:
        """``(B, n_tasks)`` logits of each task for (row summary, candidate item, slot)."""
        candidate_vector = self.embed_items(items).to(summary.dtype)
        if self.spec.candidate_feature_dim:
            candidate_vector = candidate_vector + self.candidate_projection(candidate).to(summary.dtype)
        slot_vector = self.slot_embedding(slots).to(summary.dtype)
        features = torch.cat([summary, candidate_vector, summary * candidate_vector, slot_vector], dim=-1)
        return self.outcome_head(features)

    def add_repeat_scores(self, logits: torch.Tensor, history: torch.Tensor, hidden: torch.Tensor,
                          profile: torch.Tensor | None, every_position: bool) -> torch.Tensor:
        """Add the re-consumption terms to next-item ``logits``.

        Two terms, for the items of the history read as tokens and for older items read as counts:
        ``(g_1(h) + r_1j) log(1 + n_j) + (g_2(h) + r_2j) profile_j`` where ``n_j`` counts item ``j`` among
        the history tokens read so far, ``profile_j = log(1 + count of j before the token window)``, ``g`` are
        gates computed from the position's hidden state and ``r_j`` per-item repeat propensities (milk is
        re-bought, a kettle is not). Re-purchase is about half of a grocery basket; attention over tied
        embeddings can learn to copy from the history, but slowly and only within the window, and explicit
        repeat terms are what strong next-basket models add (RepeatNet, Ren et al. AAAI 2019; ReCANet,
        Ariannezhad et al. SIGIR 2022).

        With ``spec.repeat_absence`` a third term lowers items the user has not bought although they had many
        chances: ``- a_j log(1 + m) [j never read]``, ``m`` the number of tokens read so far (window and older
        profile), ``a_j`` learned per item. A household that bought no milk in 40 baskets will not buy it in the
        next one, while the popularity in ``item_bias`` is learned mostly from positions with short histories;
        the log form is the decay of a beta-binomial first-purchase probability. (Complete Journey, seed 0,
        validation NDCG@10: full softmax 0.2693 -> 0.2776, sampled BCE 0.2786 -> 0.2791.)

        ``logits`` / ``hidden`` are ``(B, T + 1, ...)`` for the outputs at [BOS, x_1 .. x_T] when
        ``every_position`` (output ``o`` has read the first ``o`` history slots), else ``(B, ...)`` for the
        output after the whole history. The token term is scattered onto the history's items only, so its cost
        grows with the history length, not with the catalogue.
        """
        n_items = self.spec.n_items
        length = history.shape[1]
        single = not every_position
        if single:
            logits, hidden = logits[:, None], hidden[:, None]
        gates = self.repeat_gate(hidden).float()  # (B, O, 2)
        has_profile = profile is not None and profile.shape[-1] > 0
        if has_profile:
            older = profile[:, None, :].float()
            logits = torch.addcmul(logits + self.repeat_item_weight[1].float() * older, gates[..., 1:2], older)
        if self.spec.repeat_absence:
            # Every item loses a_j * exposure; items already read get it back (older ones here, window tokens
            # through the scatter below, once per item at its first occurrence).
            exposure = self._exposure(history, profile, every_position)  # (B, O)
            absent_everywhere = exposure[..., None] * self.absence_weight.float()
            if has_profile:
                absent_everywhere = absent_everywhere * (older <= 0)
            logits = logits - absent_everywhere
        if length:
            real = history != self.pad_index
            same = (history[:, :, None] == history[:, None, :]) & real[:, None, :]
            earlier = torch.ones(length, length, dtype=torch.bool, device=history.device).tril()
            occurrence = (same & earlier).sum(-1).clamp(min=1)  # this token is the k-th occurrence of its item
            increment = torch.log1p(1.0 / occurrence.float()) * real  # log(1 + k) - log(k): sums to log(1 + n)
            items = history.clamp(max=n_items - 1)
            per_item = self.repeat_item_weight[0][items].float()  # (B, T)
            contribution = (gates[..., 0:1] + per_item[:, None, :]) * increment[:, None, :]  # (B, O, T)
            if self.spec.repeat_absence:
                first = real & (occurrence == 1)
                if has_profile:
                    first = first & (profile.float().gather(1, items) <= 0)
                returned = self.absence_weight.float()[items] * first  # (B, T)
                contribution = contribution + exposure[..., None] * returned[:, None, :]
            if every_position:
                visible = (torch.arange(length, device=history.device)[None, :]
                           < torch.arange(length + 1, device=history.device)[:, None])
                contribution = contribution * visible[None]
            # Padding slots add exactly zero (their increment is 0), so they may point at any item.
            index = items[:, None, :].expand(-1, logits.shape[1], -1)
            logits = logits.scatter_add(-1, index, contribution.to(logits.dtype))
        return logits[:, 0] if single else logits

    def repeat_scores_of(self, items: torch.Tensor, history: torch.Tensor, hidden: torch.Tensor,
                         profile: torch.Tensor | None) -> torch.Tensor:
        """The re-consumption terms of given ``items (B, T + 1, K)`` at every output position."""
        length = history.shape[1]
        real = history != self.pad_index
        visible = (torch.arange(length, device=history.device)[None, :]
                   < torch.arange(length + 1, device=history.device)[:, None])  # (O, T)
        matches = history[:, None, None, :] == items[..., None]  # (B, O, K, T)
        count = (matches & (real[:, None, :] & visible[None])[:, :, None, :]).sum(-1)
        gates = self.repeat_gate(hidden).float()[..., None, :]  # (B, O, 1, 2)
        scores = (gates[..., 0] + self.repeat_item_weight[0][items].float()) * torch.log1p(count.float())
        read = count > 0
        if profile is not None and profile.shape[-1]:
            older = profile.float().gather(1, items.reshape(items.shape[0], -1)).reshape(items.shape)
            scores = scores + (gates[..., 1] + self.repeat_item_weight[1][items].float()) * older
            read = read | (older > 0)
        if self.spec.repeat_absence:
            exposure = self._exposure(history, profile, every_position=True)  # (B, O)
            scores = scores - exposure[..., None] * self.absence_weight[items].float() * ~read
        return scores

    def _exposure(self, history: torch.Tensor, profile: torch.Tensor | None, every_position: bool) -> torch.Tensor:
        """``log(1 + tokens read)`` at each output: ``(B, T + 1)`` when ``every_position`` (output ``o`` has
        read ``o`` history slots), else ``(B, 1)``; older tokens (``profile_j = log(1 + count_j)``) count too."""
        real = (history != self.pad_index).float()
        if every_position:
            read = torch.cat([real.new_zeros(real.shape[0], 1), real.cumsum(1)], dim=1)
        else:
            read = real.sum(1, keepdim=True)
        if profile is not None and profile.shape[-1]:
            read = read + torch.expm1(profile.float()).sum(-1, keepdim=True)
        return torch.log1p(read)

    def last_item_logits(self, history: torch.Tensor, context: torch.Tensor | None,
                         profile: torch.Tensor | None = None) -> torch.Tensor:
        """Next-item scores after each row's history, ``(B, n_items)``; ``profile`` as in
        :meth:`add_repeat_scores` (used by repeat-aware models only)."""
        table = self.item_table()
        hidden, mask = self.encode(history, context, table)
        summary = self.summary(hidden, mask)
        logits = self.item_logits(summary, table)
        if self.spec.repeat_aware:
            logits = self.add_repeat_scores(logits.float(), history, summary, profile, every_position=False)
        return logits
