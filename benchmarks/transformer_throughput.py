"""Training throughput of a SASRec-size transformer: the fast path against a plain eager loop, in one run.

Question: how many supervised positions per second does causalrec's training step process at MovieLens-1M
scale (about 6k users, 3.7k items, histories read 200 items at a time), with the GPU path the library takes
by default (bf16 autocast, ``torch.compile``, fused AdamW, large batches, data and shuffling on the device, no
per-step host synchronisation), compared with an eager fp32 batch-128 loop of the same model?

Both configurations run the same model, the same objective (full-softmax cross-entropy over the catalogue at
every position) and the same training step code (``causalrec.models.training``); only the settings differ.
The device is chosen automatically (CUDA when present). On CPU, compilation is skipped (it costs more than it
saves there), so the comparison is large-batch eager fp32 against batch-128 eager fp32.

Batches are those of a fit, epoch after epoch. The fast path cuts them into the length buckets a fit uses by
default on its device (on GPU 4 window widths chosen to minimise padding, each read in batches of about as many
positions as a full-width batch; ``TransformerRecommender(length_buckets=...)``); the reference pads every window
to the full width. On GPU the run adds the fast path without buckets as an ablation, and each configuration
records the share of the positions it computed that carry a target.

Synthetic data: histories with a MovieLens-1M-like length distribution (log-normal, 20..2,314 items, mean about
148) over a Zipf-popular catalogue; the content does not matter for throughput.

Run: ``python benchmarks/transformer_throughput.py`` (``--steps``/``--warmup`` to shorten on CPU). Writes
``benchmarks/results/transformer_throughput.json`` with the machine facts, GPU peak memory per configuration and
whether the issue's GPU targets (>= 10M positions/s, >= 5x the eager loop) were met. The script needs only torch,
transformers, numpy and safetensors (not LightGBM, EconML or DoWhy), so on a GPU machine whose Python already has
PyTorch it runs from the checkout as ``PYTHONPATH=. python3 benchmarks/transformer_throughput.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from causalrec._results import write_json_atomic
from causalrec.models.network import NetworkSpec, RecommenderNetwork
from causalrec.models.objectives import NextItemObjective, build_sequence_tables
from causalrec.models.training import measure_throughput, resolve_device

RESULTS = Path(__file__).resolve().parent / "results" / "transformer_throughput.json"


def synthetic_histories(n_users: int, n_items: int, random_state: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(random_state)
    lengths = np.clip(np.exp(rng.normal(4.6, 0.9, n_users)).astype(int), 20, 2314)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    return [rng.choice(n_items, size=length, p=popularity) for length in lengths]


def machine_facts(device: torch.device) -> dict:
    facts = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        facts["load_average_at_start"] = os.getloadavg()
    except OSError:  # pragma: no cover - platform without getloadavg
        pass
    return facts


# The targets for an H100-class GPU; on CPU they are reported but not judged.
TARGET_POSITIONS_PER_SECOND = 10_000_000
TARGET_SPEEDUP = 5.0


def targets(positions_per_second: float, speedup: float, on_gpu: bool) -> dict:
    """The throughput targets, and whether this run met them (``None`` off a GPU, where they do not apply)."""
    return {
        "min_positions_per_second": TARGET_POSITIONS_PER_SECOND,
        "min_speedup_over_eager_fp32_batch128": TARGET_SPEEDUP,
        "positions_per_second_met": positions_per_second >= TARGET_POSITIONS_PER_SECOND if on_gpu else None,
        "speedup_met": speedup >= TARGET_SPEEDUP if on_gpu else None,
    }


def run(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_facts(device)  # before the runs, so the load average describes the starting machine
    histories = synthetic_histories(args.users, args.items)
    tables = build_sequence_tables(histories, None, args.length)
    objective = NextItemObjective(tables, args.items, args.length, device, loss="full_softmax")
    spec = NetworkSpec(n_items=args.items, hidden_size=args.hidden, n_layers=args.layers, n_heads=args.heads,
                       dropout=0.2, max_history=args.length)
    on_gpu = device.type == "cuda"
    fast = dict(batch_size=args.fast_batch, precision="bf16" if on_gpu else "fp32", compile_mode=on_gpu,
                fused_optimizer=on_gpu)
    configurations = {
        "reference_eager_fp32_batch128": dict(batch_size=128, precision="fp32", compile_mode=False,
                                              fused_optimizer=False, length_buckets=1),
        # What a fit does by default on this device (on GPU: 4 length buckets).
        "fast_path": fast | dict(length_buckets="auto"),
    }
    if on_gpu:  # ablation: the same without length buckets, every batch padded to the full width
        configurations["fast_path_one_bucket"] = fast | dict(length_buckets=1)
    results = {}
    for name, settings in configurations.items():
        torch.manual_seed(0)
        network = RecommenderNetwork(spec).to(device)
        steps = args.reference_steps if name.startswith("reference") else args.steps
        logging.info("%s: %s, %d steps", name, settings, steps)
        results[name] = measure_throughput(network, objective, n_steps=steps, warmup_steps=args.warmup, **settings)
        logging.info("%s: %.0f positions/s", name, results[name]["positions_per_second"])
        del network
        if on_gpu:
            torch.cuda.empty_cache()
    speedup = (results["fast_path"]["positions_per_second"]
               / results["reference_eager_fp32_batch128"]["positions_per_second"])
    lengths = np.array([len(h) for h in histories])
    return {
        "question": "supervised positions per second of the training step, fast path vs eager fp32 batch 128",
        "device_kind": device.type,
        "gpu_measurement_owed": not on_gpu,
        "note": (None if on_gpu else "No GPU on this machine: CPU numbers from a short run; on CPU the fast path is "
                 "large-batch eager fp32 (no compile, no bf16, unfused AdamW). Re-run this script on a CUDA "
                 "machine for the GPU numbers (it selects CUDA automatically)."),
        "model": {"hidden_size": args.hidden, "n_layers": args.layers, "n_heads": args.heads,
                  "max_history": args.length, "n_items": args.items, "loss": "full_softmax", "dropout": 0.2,
                  "parameters": int(sum(p.numel() for p in RecommenderNetwork(spec).parameters()))},
        "data": {"n_users": args.users, "n_items": args.items, "mean_history_length": float(lengths.mean()),
                 "n_training_windows": tables.n_windows, "synthetic": "log-normal lengths, Zipf(0.8) items"},
        "configurations": results,
        "speedup_fast_over_reference": speedup,
        "targets": targets(results["fast_path"]["positions_per_second"], speedup, on_gpu),
        "machine": machine,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--fast-batch", type=int, default=None, help="default on GPU: 2048 x 201 / (length + 1) windows, as many positions as 2048 windows of 200; 512 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps of the fast path")
    parser.add_argument("--reference-steps", type=int, default=None, help="timed steps of the reference loop")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    on_gpu = resolve_device(args.device).type == "cuda"
    # On GPU as many positions per step as 2,048 windows of 200 (8,071 windows of 50): a step of fewer positions
    # is bound by kernel launches (hidden 128, length 50, 2,048 windows: 9 ms a step, 110 steps/s).
    args.fast_batch = args.fast_batch or (2048 * 201 // (args.length + 1) if on_gpu else 512)
    args.steps = args.steps or (200 if on_gpu else 3)
    args.reference_steps = args.reference_steps or (200 if on_gpu else 12)
    args.warmup = args.warmup if args.warmup is not None else (10 if on_gpu else 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    cpu_started = time.process_time()
    payload = run(args)
    payload["wall_seconds"] = time.perf_counter() - started
    payload["process_cpu_seconds"] = time.process_time() - cpu_started
    write_json_atomic(args.out, payload)
    logging.info("wrote %s (speed-up %.2fx)", args.out, payload["speedup_fast_over_reference"])


if __name__ == "__main__":
    main()
