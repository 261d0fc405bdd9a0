"""Leave one source out (`make cross-source`): for each source of the mix, train on the others and
score the left-out source's test split, with the quick recipe's model and a TF-IDF + logistic-
regression baseline trained on the same rows; CoAID titles (evaluation only) go through the same
models as an extra column.

Writes <--out>.{json,md} (default reports/cross_source): rows = left-out source, columns = weighted
F1 / ROC-AUC / share of real items called fake on it, for the model and the baseline. A model run
is the train job itself (`python -m train_job --profile P --sources MIX --holdout-source NAME
--no-promote --results-file <--runs>/<NAME>.json`, plus `--job-args`); `--tfidf-only` skips
them, `--models a,b` makes only those sources' runs, and `--reuse` reads a run's results file
instead of training again when one is there.

    python -m experiments.cross_source [--tfidf-only] [--reuse] [--profile quick-multisource]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from train_job.config import resolve_config
from train_job.data import load_dataset
from train_job.run_record import git_commit
from train_job.source_eval import fit_tfidf, source_metrics
from train_job.sources import read_mix
from train_job.trust_eval import read_labelled_titles

COAID = Path("data/coaid-2020-05/coaid_2020-05_titles.csv")
COLUMNS = ("weighted_f1", "roc_auc", "real_called_fake_share")


def job_argv(
    profile: str, mix: str, holdout: str, results_file: Path, extra: list[str] | None = None
) -> list[str]:
    return [
        *(extra or []),
        "--profile",
        profile,
        "--sources",
        mix,
        "--holdout-source",
        holdout,
        "--no-promote",
        "--results-file",
        str(results_file),
    ]


def tfidf_row(profile: str, mix: str, holdout: str, extra: list[str]) -> dict[str, Any]:
    """The baseline trained on the same rows as the job's run would be, scored on the left-out
    source's test split and on CoAID."""
    cfg = resolve_config(job_argv(profile, mix, holdout, Path("unused.json"), extra), env={})
    dataset = load_dataset(cfg)
    model, threshold = fit_tfidf(dataset, cfg.seed)
    test = dataset.splits["test"]
    left_out = test[test["source"] == holdout]
    p_fake = model.predict_proba(left_out["text"].tolist())[:, 1]
    coaid_texts, coaid_labels = read_labelled_titles(COAID)
    p_coaid = model.predict_proba(coaid_texts)[:, 1]
    return {
        "train_rows": len(dataset.splits["train"]),
        "threshold": threshold,
        "left_out": source_metrics(p_fake, left_out["label"].to_numpy(), threshold),
        "coaid": source_metrics(p_coaid, coaid_labels, threshold),
    }


def model_row(results: dict[str, Any], holdout: str) -> dict[str, Any]:
    """The job's own numbers for the left-out source and CoAID, from its results file."""
    cross = (results.get("trust") or {}).get("cross_source") or {}
    return {
        "version": results.get("version"),
        "seconds": results.get("seconds"),
        # Seconds of the training loop: rows seen over the rate the job measured on them.
        "train_seconds": round(
            sum(r.get("train", 0) for r in results["rows_by_source"].values())
            * len(results["train"]["history"])
            / results["train"]["examples_per_second"],
            1,
        ),
        "left_out": results["by_source"]["model"][holdout],
        "coaid": {k: cross.get(k) for k in ("n", "roc_auc", "real_called_fake_share")},
    }


def run_model(
    profile: str, mix: str, holdout: str, runs: Path, reuse: bool, extra: list[str]
) -> dict[str, Any]:
    results_file = runs / f"{holdout}.json"
    if not (reuse and results_file.exists()):
        argv = [
            sys.executable,
            "-m",
            "train_job",
            *job_argv(profile, mix, holdout, results_file, extra),
        ]
        print("+", shlex.join(argv), flush=True)
        started = time.time()
        subprocess.run(argv, check=True)
        print(f"{holdout}: {time.time() - started:.0f} s", flush=True)
    return model_row(json.loads(results_file.read_text()), holdout)


def _cell(metrics: dict[str, Any] | None, key: str) -> str:
    if metrics is None:
        return "pending"
    value = metrics.get(key)
    return "n/a" if value is None else f"{value:.3f}"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Cross-source: each source left out of training, then scored",
        "",
        f"Made by `{report['make_command']}` (`{report['command']}`) at commit "
        f"`{report['git_commit']}`, mix `{report['mix']['file']}` (sha256 "
        f"`{report['mix']['sha256'][:12]}`), profile `{report['profile']}`.",
        "",
        "Each row trains on every other source of the mix and scores the left-out source's test "
        "split (wF1 = weighted F1, AUC = ROC-AUC, RCF = share of real items called fake). CoAID "
        "(2020-05 titles, evaluation only) goes through the same models. TF-IDF is word 1-2 "
        "grams + logistic regression on the same train rows, thresholded on the same validation "
        "rows by the model's rule.",
        "",
    ]
    if report["model_status"] != "measured":
        lines += [f"**Model columns: {report['model_status']}.**", ""]
    header = (
        "| left out | test n (fake/real) | model wF1 | model AUC | model RCF | TF-IDF wF1 | "
        "TF-IDF AUC | TF-IDF RCF | CoAID model AUC | CoAID model RCF | CoAID TF-IDF AUC | "
        "CoAID TF-IDF RCF |"
    )
    lines += [header, header_rule(header)]
    for row in report["rows"]:
        tfidf, model = row["tfidf"], row["model"]
        left = tfidf["left_out"]
        cells = [
            row["left_out"],
            f"{left['n']} ({left['fake']}/{left['real']})",
            *(_cell(model and model["left_out"], k) for k in COLUMNS),
            *(_cell(left, k) for k in COLUMNS),
            _cell(model and model["coaid"], "roc_auc"),
            _cell(model and model["coaid"], "real_called_fake_share"),
            _cell(tfidf["coaid"], "roc_auc"),
            _cell(tfidf["coaid"], "real_called_fake_share"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def header_rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.cross_source", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sources", default="data/sources.toml", help="mix file")
    parser.add_argument("--profile", default="quick-multisource", help="the model runs' profile")
    parser.add_argument("--tfidf-only", action="store_true", help="no model runs")
    parser.add_argument("--reuse", action="store_true", help="reuse a run's results file")
    parser.add_argument(
        "--models",
        default="",
        help="comma-separated sources whose model run is made ('' = every source); the other "
        "rows' model columns stay pending",
    )
    parser.add_argument(
        "--job-args", default="", help="extra train job flags for the model runs (one string)"
    )
    parser.add_argument("--runs", type=Path, default=Path("reports/cross_source_runs"))
    parser.add_argument("--out", type=Path, default=Path("reports/cross_source"))
    args = parser.parse_args(argv)
    mix = read_mix(args.sources)
    with_model = (
        set()
        if args.tfidf_only
        else {m.strip() for m in args.models.split(",") if m.strip()} or set(mix.names())
    )
    rows = []
    for name in mix.names():
        print(f"left out: {name}", flush=True)
        extra = shlex.split(args.job_args)
        row = {"left_out": name, "tfidf": tfidf_row(args.profile, args.sources, name, extra)}
        row["model"] = (
            run_model(args.profile, args.sources, name, args.runs, args.reuse, extra)
            if name in with_model
            else None
        )
        rows.append(row)
    flags = list(argv if argv is not None else sys.argv[1:])
    report = {
        "command": shlex.join(["python", "-m", "experiments.cross_source", *flags]),
        "make_command": "make cross-source"
        + (f" CROSS_SOURCE_FLAGS={shlex.quote(shlex.join(flags))}" if flags else ""),
        "git_commit": git_commit(),
        "profile": args.profile,
        "mix": {"file": mix.path, "sha256": mix.sha256},
        "model_status": (
            "measured"
            if with_model == set(mix.names())
            else "pending where marked: not run; `make cross-source` trains them"
        ),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
