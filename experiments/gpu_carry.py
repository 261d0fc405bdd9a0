"""What a lent GPU machine needs beside the tree (`make gpu-carry`; experiments/gpu.md).

The machine has no package index and its own Python (3.12) with a CUDA torch, but not our pinned
transformers stack, and it takes at most 64 MiB of files per call. This writes two ignored
folders that experiments/cuda_check.sh reads there:

- .whl/: the pinned wheels it lacks, for CPython 3.12 on x86-64 (versions from constraints.txt;
  accelerate is pinned here because the image's newer one does not fit transformers 4.57);
- .gpu/minilm/: the packaged MiniLM-L6 with its float weights stored as fp16 and gzipped
  (45 MB instead of 91), made back into fp32 there. fp16 keeps 11 mantissa bits, more than the
  bf16 autocast the job computes in on CUDA.

    python -m experiments.gpu_carry            # both
    python -m experiments.gpu_carry --no-wheels
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Missing from the GPU image, or there in versions our pins do not accept.
WHEELS = [
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "optimum",
    "optimum-onnx",
    "jsonschema",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
]
EXTRA_PINS = {"accelerate": "1.12.0"}  # contemporary with transformers 4.57; not a dependency here
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
TOKENIZER_FILES = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
]


def pinned(constraints: Path) -> dict[str, str]:
    pins = dict(EXTRA_PINS)
    for line in constraints.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", line.strip()):
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def download_wheels(target: Path) -> None:
    pins = pinned(ROOT / "constraints.txt")
    wanted = [*WHEELS, *EXTRA_PINS]
    specs = [f"{name}=={pins[name.lower().replace('_', '-')]}" for name in wanted]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"),
            *("--python-version", "3.12", "--implementation", "cp", *platforms),
            *("-d", str(target), *specs),
        ],
        check=True,
    )


def write_fp16_model(source: Path, target: Path) -> Path:
    """Copies the tokenizer and config; stores float tensors as fp16, others as they are."""
    from safetensors.torch import load_file, save

    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    weights = load_file(source / "model.safetensors")
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()}
    out = target / "model.safetensors.gz"
    out.write_bytes(gzip.compress(save(half), compresslevel=6, mtime=0))
    return out


def relative_l2_change(source: Path, sent: Path) -> float:
    """||fp16 - fp32|| / ||fp32|| over all float weights: what the round trip costs."""
    from safetensors.torch import load, load_file

    original = load_file(source / "model.safetensors")
    half = load(gzip.decompress(sent.read_bytes()))
    floats = [k for k, v in original.items() if v.is_floating_point()]
    diff = sum(float((half[k].double() - original[k].double()).pow(2).sum()) for k in floats)
    norm = sum(float(original[k].double().pow(2).sum()) for k in floats)
    return (diff / norm) ** 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-wheels", action="store_true", help="only the base weights")
    parser.add_argument("--base-model", default="", help="HF folder ('' = packaged MiniLM)")
    args = parser.parse_args(argv)
    if not args.no_wheels:
        download_wheels(ROOT / ".whl")
    from train_job.model import packaged_minilm

    source = Path(args.base_model) if args.base_model else packaged_minilm()
    out = write_fp16_model(source, ROOT / ".gpu" / "minilm")
    print(
        f"{out.relative_to(ROOT)}: {out.stat().st_size / 1e6:.1f} MB, weights changed by "
        f"{relative_l2_change(source, out):.1e} (relative L2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
