"""The training loop shared by every causalrec network, and its checkpoint / save format.

One loop serves the next-item recommender and the outcome (click) models; what differs is an *objective*
(:class:`Objective`) that owns the training data, resident on the training device, and turns a batch of row
indices into a loss. The loop adapts to the device:

* GPU: bf16 autocast, fused AdamW, ``torch.compile`` of the loss step, large batches cut into a few length
  buckets (:func:`plan_buckets`: less padding, one compiled graph per bucket), the data and the batch shuffling
  on the device, and no host synchronisation inside a step (losses accumulate on the device and are read once
  per epoch, with the epoch's batch order);
* CPU: plain eager fp32 (compiling is slow there and the compiled code is not faster).

Early stopping keeps the weights of the best validation epoch. With ``checkpoint_dir`` the loop writes, after
every epoch, one ``checkpoint.safetensors`` file holding the weights, the best weights, the optimizer state and
every random-number-generator state, with the bookkeeping as JSON in the file's metadata; the write is atomic.
Resuming from it continues bit-for-bit as if the run had not stopped (on CPU, and on GPU up to the
non-determinism of its kernels).

Saved models are a folder with ``model.safetensors`` (tensors) and ``config.json`` (everything else, including
the sha256 of the tensor file, checked on load).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from tqdm.auto import tqdm

from causalrec._results import ResultMixin, to_jsonable, write_atomic
from causalrec.exceptions import ValidationError

logger = logging.getLogger(__name__)

_OWNER = "training"
CHECKPOINT_FILE = "checkpoint.safetensors"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------- device choice
def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):  # torch's "Expected one of cpu, cuda, ... device type" for e.g. "tpu"
        raise ValidationError("device", "'auto', 'cpu', 'cuda', 'cuda:N' or another torch device name",
                              repr(device), owner=_OWNER) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device", "an available device ('auto', 'cpu' or a visible GPU)", repr(device),
                              owner=_OWNER)
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 on GPU for ``"auto"``, None (fp32) on CPU or for ``"fp32"``."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    raise ValidationError("precision", "'auto', 'fp32' or 'bf16'", repr(precision), owner=_OWNER)


def resolve_compile(compile_mode: str | bool, device: torch.device) -> bool:
    """``"auto"`` compiles on GPU only (on CPU compilation costs more than it saves)."""
    if compile_mode == "auto":
        return device.type == "cuda"
    if isinstance(compile_mode, bool):
        return compile_mode
    raise ValidationError("compile", "'auto', True or False", repr(compile_mode), owner=_OWNER)


# Largest full-softmax score tensor (batch x positions x items, fp32) a default batch may create: 1 GiB on CPU; on
# a GPU 1/16 of its memory (5 GiB on an 80 GB H100), since the step holds about four such tensors at once (the
# logits, their log-softmax and its gradient, and the bf16 copies under autocast).
CPU_SCORE_BUDGET_BYTES = 2**30
GPU_SCORE_BUDGET_FRACTION = 1 / 16
MIN_DEFAULT_BATCH = 8


def default_batch_size(device: torch.device, scores_per_example: int = 0, cpu: int = 128, gpu: int = 1024,
                       memory_bytes: int | None = None) -> int:
    """128 on CPU and 1024 on GPU, lowered when a batch's dense scores would not fit the memory budget.

    ``scores_per_example``: the score entries one training example creates (positions x catalogue for the full
    softmax, 0 for losses that score a few items); ``memory_bytes``: the GPU's memory (read from the device when
    None). With a catalogue of 100,000 items read 50 at a time, 1024 examples would need 21 GB for the logits
    alone; the batch is cut so that one score tensor stays within the budget, and never below 8.
    """
    base = gpu if device.type == "cuda" else cpu
    if scores_per_example <= 0:
        return base
    if device.type == "cuda":
        if memory_bytes is None:
            memory_bytes = torch.cuda.get_device_properties(device).total_memory
        budget = memory_bytes * GPU_SCORE_BUDGET_FRACTION
    else:
        budget = CPU_SCORE_BUDGET_BYTES
    fitting = int(budget // (4 * scores_per_example))
    return max(MIN_DEFAULT_BATCH, min(base, fitting))


@contextlib.contextmanager
def seeded_torch(random_state: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for the duration of a fit and restore the caller's state afterwards.

    Dropout and parameter initialisation draw from the global generators; forking them keeps a fit
    deterministic for a given ``random_state`` without changing the random stream of the calling program.
    On CPU the fit also runs with ``torch.use_deterministic_algorithms``: with more than one thread some backward
    kernels accumulate in a varying order, and two identical fits drifted apart (a tuning choice of the 2.5x
    Complete Journey benchmark flipped between two runs). The deterministic kernels cost no measurable time there
    and make a fit bit-reproducible for a given thread count (another count may still round differently). On GPU
    the fast kernels are kept, so GPU fits are reproducible only up to CUDA's atomic adds.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if device.type == "cpu" and not deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0 if random_state is None else int(random_state))
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class TrainingConfig:
    """How to train. ``batch_size=None`` means 128 on CPU and 1024 on GPU, fewer for a catalogue whose dense
    scores would not fit (:func:`default_batch_size`). ``length_buckets``: how many window widths batches of
    sequences are cut to (:func:`plan_buckets`); ``"auto"`` is 4 when the step is compiled and 1 otherwise."""

    max_epochs: int = 20
    batch_size: int | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 3
    max_grad_norm: float | None = 1.0
    device: str = "auto"
    precision: str = "auto"
    compile: str | bool = "auto"
    progress_bar: bool = True
    random_state: int | None = 0
    checkpoint_dir: str | None = None
    resume: bool = False
    description: str = "training"
    length_buckets: int | str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "max_epochs": self.max_epochs >= 1,
            "batch_size": self.batch_size is None or self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "weight_decay": self.weight_decay >= 0,
            "patience": self.patience >= 1,
            "max_grad_norm": self.max_grad_norm is None or self.max_grad_norm > 0,
            "length_buckets": self.length_buckets == "auto" or (
                isinstance(self.length_buckets, int) and not isinstance(self.length_buckets, bool)
                and self.length_buckets >= 1),
        }
        for name, valid in checks.items():
            if not valid:
                raise ValidationError(name, "a valid training setting", repr(getattr(self, name)), owner=_OWNER)


class Objective(Protocol):
    """Training data on the device plus the loss; implemented by each model family."""

    n_examples: int

    def make_batch(self, rows: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The tensors of one batch (random choices such as sampled targets draw from ``generator``)."""

    def batch_loss(self, network: torch.nn.Module, *batch: torch.Tensor) -> torch.Tensor:
        """Scalar training loss of one batch; pure tensor code so that it compiles."""

    def supervised_count(self, *batch: torch.Tensor) -> torch.Tensor:
        """Number of supervised targets in the batch (a device tensor, for throughput)."""

    def validation_loss(self, network: torch.nn.Module) -> float:
        """Early-stopping criterion on held-out data, lower is better (the network is in eval mode)."""

    # Optional: ``validation_criterion``, what ``validation_loss`` measures in words (a training history records it).

    # Optional, for objectives over padded sequences: ``window_lengths`` (host array, the real tokens of each
    # example), ``max_width`` (the padded width) and ``make_batch(rows, generator, width)`` cutting a batch to
    # ``width`` tokens. Objectives without them train in one bucket.


@dataclass(frozen=True)
class TrainingHistory(ResultMixin):
    """Per-epoch losses of a fit and how it ended."""

    epochs: tuple[dict, ...]
    best_epoch: int
    best_validation_loss: float
    stopped_early: bool
    device: str
    precision: str
    compiled: bool
    batch_size: int
    resumed_from_epoch: int | None = None
    # (width, batch size, examples) of each length bucket; empty when the batches are not cut by length
    length_buckets: tuple[tuple[int, int, int], ...] = ()
    # What each epoch's "validation_loss" measures (it may be a negated ranking metric)
    validation_criterion: str = "validation loss (lower is better)"

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(list(self.epochs))


# ---------------------------------------------------------------------------------------------- the loop
def parameter_groups(network: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (weights, embeddings), none on biases and normalisation scales."""
    decayed, plain = [], []
    for parameter in network.parameters():
        if parameter.requires_grad:
            (decayed if parameter.ndim >= 2 else plain).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def make_optimizer(network: torch.nn.Module, config: TrainingConfig, device: torch.device,
                   fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW; fused (one kernel for all parameters) on GPU unless ``fused=False``."""
    fused = device.type == "cuda" if fused is None else fused
    return torch.optim.AdamW(
        parameter_groups(network, config.weight_decay), lr=config.learning_rate, fused=fused or None
    )


def _autocast(dtype: torch.dtype | None, device: torch.device):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_train_step(
    network: torch.nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    dtype: torch.dtype | None,
    compiled: bool,
    max_grad_norm: float | None,
) -> Callable[..., torch.Tensor]:
    """One optimisation step on a batch; returns the detached loss (a device tensor, never synchronised)."""
    loss_fn = objective.batch_loss
    if compiled:
        loss_fn = torch.compile(loss_fn, dynamic=False)
    parameters = [p for p in network.parameters() if p.requires_grad]

    def step(*batch: torch.Tensor) -> torch.Tensor:
        with _autocast(dtype, device):
            loss = loss_fn(network, *batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm, foreach=True)
        optimizer.step()
        return loss.detach()

    return step


def _n_batches(n_examples: int, batch_size: int, drop_last: bool) -> int:
    if drop_last and n_examples >= batch_size:
        return n_examples // batch_size
    return math.ceil(n_examples / batch_size)


# ---------------------------------------------------------------------------------------------- length buckets
BUCKET_WIDTH_STEP = 8


@dataclass(frozen=True)
class LengthBucket:
    """The examples whose windows fit ``width`` tokens (and not the next narrower bucket's), read in batches of
    ``batch_size``."""

    width: int
    batch_size: int
    rows: Any  # host array of example indices

    def describe(self) -> tuple[int, int, int]:
        return (self.width, self.batch_size, len(self.rows))


def resolve_length_buckets(length_buckets: int | str, compiled: bool) -> int:
    """``"auto"``: 4 buckets when the step is compiled (the GPU path), 1 otherwise (the plain loop)."""
    if length_buckets == "auto":
        return 4 if compiled else 1
    return int(length_buckets)


def bucket_widths(lengths, max_width: int, n_buckets: int, step: int = BUCKET_WIDTH_STEP) -> list[int]:
    """At most ``n_buckets`` widths, multiples of ``step`` (the widest may be ``max_width``), that minimise the
    positions computed, the sum over examples of (its bucket's width + 1); exact, by dynamic programming over the
    candidate widths (at most ``max_width / step`` of them)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    top = min(max_width, max(step, -(-int(lengths.max(initial=1)) // step) * step))
    candidates = sorted({min(top, w) for w in range(step, top + step, step)})
    # fits[j]: examples whose length is at most candidates[j]
    fits = np.searchsorted(np.sort(lengths), candidates, side="right")
    n = len(candidates)
    best = {(0, j): (candidates[j] + 1) * int(fits[j]) for j in range(n)}  # one bucket up to candidates[j]
    previous: dict[tuple[int, int], int | None] = dict.fromkeys(best)
    for b in range(1, n_buckets):
        for j in range(n):
            options = [(best[(b - 1, i)] + (candidates[j] + 1) * int(fits[j] - fits[i]), i)
                       for i in range(b - 1, j)]
            if options:
                best[(b, j)], previous[(b, j)] = min(options)
    b = min((k for k in range(n_buckets) if (k, n - 1) in best), key=lambda k: (best[(k, n - 1)], k))
    widths, j = [], n - 1
    while j is not None:
        widths.append(candidates[j])
        j, b = previous[(b, j)], b - 1
    return sorted(widths)


def plan_buckets(objective: Objective, batch_size: int, n_buckets: int) -> list[LengthBucket] | None:
    """Length buckets for an objective over padded sequences, or None (one bucket: every batch at full width).

    A bucket's batches hold at most about as many positions as a full-width batch of ``batch_size`` (more,
    shorter windows, so the memory of a step does not grow), split evenly (2,857 examples under a limit of 2,048
    make two batches of 1,429, not 2,048 and 809), or all of the bucket's examples when it has fewer. A
    bucket whose batches would hold less than a quarter of a full-width batch's positions is merged into the next
    wider one: a step that small is bound by kernel launches rather than by its positions (on an H100, hidden
    128, histories read 50 at a time: a bucket of 892 windows of 8 tokens made 4 buckets slower than 1, 8.5M
    against 9.7M positions/s), and it costs a compiled graph of its own.
    """
    lengths = getattr(objective, "window_lengths", None)
    if n_buckets <= 1 or lengths is None or len(lengths) == 0:
        return None
    lengths = np.asarray(lengths)
    max_width = int(objective.max_width)
    widths = bucket_widths(lengths, max_width, n_buckets)
    full_batch = batch_size * (max_width + 1)  # positions of a full-width batch

    def largest(width):
        return max(1, full_batch // (width + 1))

    while True:
        bucket_of = np.searchsorted(widths, lengths, side="left")
        counts = np.bincount(bucket_of, minlength=len(widths))
        small = [k for k in range(len(widths) - 1)
                 if min(counts[k], largest(widths[k])) * (widths[k] + 1) < full_batch / 4]
        if not small:
            break
        del widths[small[0]]
    if len(widths) == 1 and widths[0] == max_width:
        return None
    buckets = []
    for k, width in enumerate(widths):
        if counts[k]:
            size = math.ceil(counts[k] / math.ceil(counts[k] / largest(width)))  # equal batches, none nearly empty
            buckets.append(LengthBucket(width, int(size), np.flatnonzero(bucket_of == k)))
    return buckets


def epoch_batches(
    objective: Objective,
    buckets: list[LengthBucket] | None,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    static_shapes: bool,
) -> list[tuple[torch.Tensor, int | None]]:
    """One epoch's batches as ``(rows, width)``, all drawn from ``generator``.

    One bucket: a permutation of the examples cut into batches (the last one dropped under ``static_shapes``, a
    compiled step, when it is partial). Length buckets: each bucket's examples permuted and cut into its batches
    (under ``static_shapes`` a partial last batch is filled up with the bucket's first examples, so each bucket
    compiles one graph and nothing is dropped), then the batches of all buckets shuffled together; reading that
    order is the epoch's one host synchronisation.
    """
    if buckets is None:
        order = torch.randperm(objective.n_examples, generator=generator, device=device)
        count = _n_batches(objective.n_examples, batch_size, drop_last=static_shapes)
        return [(order[i * batch_size:(i + 1) * batch_size], None) for i in range(count)]
    batches = []
    for bucket in buckets:
        rows = torch.as_tensor(bucket.rows, device=device)
        rows = rows[torch.randperm(len(rows), generator=generator, device=device)]
        size, count = bucket.batch_size, math.ceil(len(rows) / bucket.batch_size)
        if static_shapes and len(rows) > size and len(rows) % size:
            rows = torch.cat([rows, rows[: count * size - len(rows)]])
        batches += [(rows[i * size:(i + 1) * size], bucket.width) for i in range(count)]
    order = torch.randperm(len(batches), generator=generator, device=device).tolist()
    return [batches[i] for i in order]


def make_batch(objective: Objective, rows: torch.Tensor, width: int | None,
               generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    if width is None:
        return objective.make_batch(rows, generator)
    return objective.make_batch(rows, generator, width=width)


def train_network(
    network: torch.nn.Module,
    objective: Objective,
    config: TrainingConfig,
    fingerprint: Mapping[str, Any] | None = None,
) -> TrainingHistory:
    """Train ``network`` (already on the device) on ``objective``; leaves the best validation weights in it.

    ``fingerprint`` (JSON-able) describes the model and data; a checkpoint is only resumed when it matches.
    Call inside :func:`seeded_torch` so dropout draws are reproducible.
    """
    device = next(network.parameters()).device
    dtype = resolve_precision(config.precision, device)
    compiled = resolve_compile(config.compile, device)
    batch_size = config.batch_size
    if batch_size is None:
        scores, usual = int(getattr(objective, "scores_per_example", 0)), default_batch_size(device)
        batch_size = default_batch_size(device, scores)
        if batch_size < usual:
            logger.info("%s: batch size %d (the default %d would create %.1f GB of scores per tensor)",
                        config.description, batch_size, usual, 4 * scores * usual / 1e9)
    optimizer = make_optimizer(network, config, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(0 if config.random_state is None else int(config.random_state))
    fingerprint = to_jsonable(dict(fingerprint or {}))
    fingerprint["training"] = to_jsonable(
        {k: v for k, v in asdict(config).items() if k not in {"max_epochs", "progress_bar", "checkpoint_dir",
                                                               "resume", "patience", "description"}}
    )

    state = {"epoch": 0, "best_epoch": -1, "best_validation_loss": math.inf, "bad_epochs": 0, "epochs": [],
             "stopped_early": False}
    best_weights = clone_state(network)
    checkpoint = Path(config.checkpoint_dir) / CHECKPOINT_FILE if config.checkpoint_dir else None
    resumed_from = None
    if config.resume and checkpoint is not None and checkpoint.exists():
        state, best_weights = _restore_checkpoint(checkpoint, network, optimizer, generator, fingerprint, device)
        resumed_from = state["epoch"]
        logger.info("%s: resumed from %s after epoch %d", config.description, checkpoint, state["epoch"])
    elif config.resume:
        logger.info("%s: no checkpoint at %s; starting from scratch", config.description, checkpoint)

    step = make_train_step(network, objective, optimizer, device, dtype, compiled, config.max_grad_norm)
    buckets = plan_buckets(objective, batch_size, resolve_length_buckets(config.length_buckets, compiled))
    if buckets is not None:
        logger.info("%s: %d length buckets (width, batch size, examples): %s", config.description, len(buckets),
                    [bucket.describe() for bucket in buckets])
    progress = tqdm(
        total=config.max_epochs, initial=state["epoch"], desc=config.description, unit="epoch",
        disable=None if config.progress_bar else True, leave=False,
    )
    try:
        while state["epoch"] < config.max_epochs and not state["stopped_early"]:
            started = time.perf_counter()
            network.train()
            batches = epoch_batches(objective, buckets, batch_size, generator, device, static_shapes=compiled)
            total = torch.zeros((), device=device)
            for rows, width in batches:
                total += step(*make_batch(objective, rows, width, generator))
            train_loss = float(total / len(batches))  # the host synchronisation of the epoch
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"{config.description}: training loss is {train_loss} at epoch {state['epoch'] + 1}; "
                    "lower the learning rate or check the inputs"
                )
            network.eval()
            with torch.no_grad(), _autocast(dtype, device):
                validation_loss = float(objective.validation_loss(network))
            state["epoch"] += 1
            improved = validation_loss < state["best_validation_loss"]
            if improved:
                state.update(best_validation_loss=validation_loss, best_epoch=state["epoch"], bad_epochs=0)
                best_weights = clone_state(network)
            else:
                state["bad_epochs"] += 1
                state["stopped_early"] = state["bad_epochs"] >= config.patience
            seconds = time.perf_counter() - started
            state["epochs"].append({"epoch": state["epoch"], "train_loss": train_loss,
                                    "validation_loss": validation_loss, "seconds": seconds})
            logger.info("%s: epoch %d train %.5f validation %.5f (%.1fs)%s", config.description, state["epoch"],
                        train_loss, validation_loss, seconds, " *" if improved else "")
            progress.update(1)
            progress.set_postfix(train=f"{train_loss:.4f}", valid=f"{validation_loss:.4f}")
            if checkpoint is not None:
                _write_checkpoint(checkpoint, network, optimizer, generator, best_weights, state, fingerprint)
    finally:
        progress.close()
    network.load_state_dict(best_weights)
    network.eval()
    return TrainingHistory(
        epochs=tuple(state["epochs"]),
        best_epoch=state["best_epoch"],
        best_validation_loss=state["best_validation_loss"],
        stopped_early=state["stopped_early"],
        device=str(device),
        precision="fp32" if dtype is None else "bf16",
        compiled=compiled,
        batch_size=batch_size,
        resumed_from_epoch=resumed_from,
        length_buckets=tuple(bucket.describe() for bucket in buckets or ()),
        validation_criterion=getattr(objective, "validation_criterion", TrainingHistory.validation_criterion),
    )


def clone_state(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}


# ---------------------------------------------------------------------------------------------- throughput
def measure_throughput(
    network: torch.nn.Module,
    objective: Objective,
    *,
    batch_size: int,
    n_steps: int,
    warmup_steps: int = 3,
    precision: str = "fp32",
    compile_mode: str | bool = False,
    fused_optimizer: bool | None = None,
    learning_rate: float = 1e-3,
    length_buckets: int | str = 1,
) -> dict[str, Any]:
    """Supervised positions per second of the training step used by :func:`train_network`.

    The batches are those of a fit (:func:`epoch_batches`, with the length buckets that ``length_buckets`` asks
    for), read epoch after epoch. The warm-up runs ``warmup_steps`` steps and at least one batch of every bucket
    (compilation happens there); then ``n_steps`` steps are timed, synchronising the device only at the two ends
    and at epoch boundaries, as a fit does.
    """
    device = next(network.parameters()).device
    dtype = resolve_precision(precision, device)
    compiled = resolve_compile(compile_mode, device)
    config = TrainingConfig(learning_rate=learning_rate, batch_size=batch_size)
    optimizer = make_optimizer(network, config, device, fused_optimizer)
    fused = bool(optimizer.defaults.get("fused"))
    step = make_train_step(network, objective, optimizer, device, dtype, compiled, config.max_grad_norm)
    buckets = plan_buckets(objective, batch_size, resolve_length_buckets(length_buckets, compiled))
    generator = torch.Generator(device=device)
    generator.manual_seed(0)
    network.train()

    def batches():
        while True:
            for rows, width in epoch_batches(objective, buckets, batch_size, generator, device, compiled):
                yield make_batch(objective, rows, width, generator)

    stream = batches()
    shapes_needed = {bucket.width for bucket in buckets} if buckets else set()
    warm_started = time.perf_counter()
    done = 0
    while done < warmup_steps or shapes_needed:
        batch = next(stream)
        step(*batch)
        shapes_needed.discard(batch[0].shape[1])
        done += 1
    _synchronize(device)
    warmup_seconds = time.perf_counter() - warm_started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    supervised = torch.zeros((), device=device, dtype=torch.float64)
    computed = torch.zeros((), device=device, dtype=torch.float64)
    loss_sum = torch.zeros((), device=device)
    sequences = getattr(objective, "window_lengths", None) is not None  # batch[0] is the (B, width) history
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(n_steps):
        batch = next(stream)
        loss_sum += step(*batch)
        supervised += objective.supervised_count(*batch)
        if sequences:
            computed += batch[0].shape[0] * (batch[0].shape[1] + 1)
    _synchronize(device)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    result = {
        "batch_size": batch_size,
        "n_steps": n_steps,
        "warmup_steps": done,
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "supervised_positions": float(supervised),
        "positions_per_second": float(supervised) / seconds,
        # Share of the positions the body computed (BOS + window width per example) that carry a target.
        "supervised_share_of_computed_positions": float(supervised) / float(computed) if sequences else None,
        # CPU time of this process: on a shared machine wall time also counts the time spent waiting for a core.
        "process_cpu_seconds": cpu_seconds,
        "positions_per_process_cpu_second": float(supervised) / max(cpu_seconds, 1e-9),
        "steps_per_second": n_steps / seconds,
        "mean_loss": float(loss_sum) / n_steps,
        "precision": "fp32" if dtype is None else "bf16",
        "compiled": compiled,
        "fused_adamw": fused,
        "length_buckets": [list(bucket.describe()) for bucket in buckets or ()],
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------- files
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_checkpoint(
    path: Path,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    best_weights: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
) -> None:
    tensors = {f"model.{name}": t for name, t in network.state_dict().items()}
    tensors.update({f"best.{name}": t for name, t in best_weights.items()})
    optimizer_state = optimizer.state_dict()
    for parameter_index, values in optimizer_state["state"].items():
        for name, value in values.items():
            tensors[f"optimizer.{parameter_index}.{name}"] = torch.as_tensor(value)
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    tensors["rng.generator"] = generator.get_state()
    device = next(network.parameters()).device
    if device.type == "cuda":
        tensors["rng.torch_cuda"] = torch.cuda.get_rng_state(device)
    metadata = {
        "state": json.dumps(to_jsonable(dict(state))),
        "param_groups": json.dumps(to_jsonable(optimizer_state["param_groups"])),
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        "format_version": str(FORMAT_VERSION),
    }
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    write_atomic(path, save_safetensors_bytes(contiguous, metadata=metadata))


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    data = Path(path).read_bytes()
    tensors = load_safetensors_bytes(data)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return tensors, metadata


def _restore_checkpoint(
    path: Path,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fingerprint: Mapping[str, Any],
    device: torch.device,
) -> tuple[dict, dict[str, torch.Tensor]]:
    tensors, metadata = _read_safetensors(path)
    stored = json.loads(metadata.get("fingerprint", "{}"))
    if stored != json.loads(json.dumps(fingerprint, sort_keys=True)):
        differing = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
        raise ValidationError(
            "checkpoint", "a checkpoint of the same model, data and training settings",
            f"a checkpoint that differs in {differing} ({path})", owner=_OWNER,
        )
    network.load_state_dict({k[len("model."):]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
    best = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    optimizer_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            optimizer_state.setdefault(int(index), {})[name] = value  # load_state_dict moves it to the device
    optimizer.load_state_dict({"state": optimizer_state, "param_groups": json.loads(metadata["param_groups"])})
    torch.set_rng_state(tensors["rng.torch_cpu"])
    generator.set_state(tensors["rng.generator"])
    if device.type == "cuda" and "rng.torch_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.torch_cuda"], device)
    return json.loads(metadata["state"]), best


@dataclass(frozen=True)
class SavedModel:
    """What :func:`read_model` returns: the JSON config and the tensors of a saved model folder."""

    config: dict
    tensors: dict[str, torch.Tensor] = field(repr=False)


def write_model(directory: str | Path, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> Path:
    """Write ``model.safetensors`` then ``config.json`` (which records the tensor file's sha256), atomically.

    The config is written last, so a folder whose config matches its tensor file is complete.
    """
    directory = Path(directory)
    payload = save_safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    write_atomic(directory / WEIGHTS_FILE, payload)
    document = {"format_version": FORMAT_VERSION, **to_jsonable(dict(config)), "weights_sha256": _sha256(payload)}
    write_atomic(directory / CONFIG_FILE, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return directory


def read_model(directory: str | Path) -> SavedModel:
    """Read a folder written by :func:`write_model`; fails if the tensor file does not match the config."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ValidationError("path", "a folder written by save() (config.json + model.safetensors)",
                                  f"no {path.name} in {directory}", owner=_OWNER)
    config = json.loads(config_path.read_text(encoding="utf-8"))
    payload = weights_path.read_bytes()
    if config.get("weights_sha256") != _sha256(payload):
        raise ValidationError("model.safetensors", "the tensors config.json was written with (sha256 match)",
                              "a different file (partial write or edited)", owner=_OWNER)
    return SavedModel(config=config, tensors=load_safetensors_bytes(payload))
