"""What a run leaves for people: the closing lines it prints, the record a committed results
file keeps, and how long each step took."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from train_job.config import TrainConfig
from train_job.source_eval import table_lines

log = logging.getLogger("train_job")


class StepTimes:
    """Wall-clock seconds of each step, logged as it ends: most of a run is not training, and
    whoever waits on it should see where the time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            log.error("step %s failed after %.1f s", name, time.perf_counter() - started)
            raise
        self.seconds[name] = round(time.perf_counter() - started, 1)
        log.info("step %s: %.1f s", name, self.seconds[name])


def results_record(cfg: TrainConfig, summary: dict) -> dict:
    """What a committed results file keeps of a run: configuration, metrics, sizes. No weights."""
    metrics = summary.get("metrics", {})
    return {
        "git_commit": git_commit(),
        "command": "python -m train_job "
        + " ".join(f"--{k.replace('_', '-')}={v}" for k, v in sorted(cfg.to_dict().items())),
        "run_id": summary["run_id"],
        "version": summary.get("version"),
        "bundle_bytes": summary.get("bundle_bytes"),
        "seconds": summary.get("seconds"),
        "seconds_by_step": summary.get("seconds_by_step"),
        "train": summary["train"],
        "metrics": {
            precision: by_split
            for precision, by_split in metrics.items()
            if precision in ("fp32", "int8")
        },
        "gate": metrics.get("gate"),
        "by_source": metrics.get("by_source"),
        "rows_by_source": summary.get("dataset_rows_by_source"),
        "trust": summary.get("trust"),
    }


def git_commit() -> str | None:
    """HEAD, with "-dirty" when tracked files differ from it: then HEAD alone is not the code
    that ran. SOURCE_COMMIT wins when set: whoever built or copied the tree (a container image,
    a copy on another machine) knows its commit, and a copied tree may carry a stale .git."""
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


def run_summary(summary: dict) -> str:
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
        if by_source := summary["metrics"].get("by_source"):
            lines.append("int8 test per source, beside a TF-IDF + logistic-regression baseline:")
            lines.extend("  " + line for line in table_lines(by_source))
        g = summary["metrics"]["gate"]
        lines.append(
            f"gate: {'passed' if g['passed'] else 'FAILED'} (drop {g['drop_points']:.2f} points, "
            f"agreement {g['agreement']:.4f})"
        )
    if trust := summary.get("trust"):
        cal = trust["calibration"]
        lines.append(
            f"calibration: {cal.get('method', 'temperature')} (temperature "
            f"{cal['temperature']:.3f}), test ECE "
            f"{cal['ece_before']:.4f} -> {cal['ece_after']:.4f}"
        )
        if ood_report := trust.get("ood"):
            lines.append(
                f"out-of-domain flag: ROC-AUC {ood_report['roc_auc_all']:.3f} vs LIAR + probes, "
                f"{ood_report['in_domain_flagged_share']:.1%} of in-domain test posts flagged"
            )
            if "non_news_roc_auc" in ood_report:
                lines.append(
                    f"  non-news reference: ROC-AUC {ood_report['non_news_roc_auc']:.3f}, "
                    f"{ood_report['non_news_flagged_share']:.1%} flagged"
                )
            if "unseen_news_flagged_share" in ood_report:
                unseen = ood_report["unseen_news_flagged_share"]
                lines.append(f"  unseen news headlines: {unseen:.1%} flagged")
        if cross := trust.get("cross_source"):
            lines.append(
                f"cross-source ({cross['file']}, n={cross['n']}): ROC-AUC {cross['roc_auc']:.3f}, "
                f"real called fake {cross['real_called_fake_share']:.1%} "
                f"({cross['real_called_fake_in_domain_share']:.1%} while in domain), "
                f"{cross['flagged_out_of_domain_share']:.1%} flagged out of domain, "
                f"ECE {cross.get('ece', float('nan')):.3f}"
            )
        rob = trust["robustness"]
        lines.append("robustness (accuracy): " + ", ".join(f"{k} {v:.3f}" for k, v in rob.items()))
    if "bundle_uri" in summary:
        lines.append(f"bundle {summary['version']} ({summary['bundle_bytes'] / 1e6:.1f} MB)")
        lines.append(f"  at {summary['bundle_uri']}")
        if "production" in summary:
            lines.append("  promoted to production")
        elif "rollout" in summary:
            lines.append("  NOT promoted: " + "; ".join(summary["rollout"]["reasons"]))
    if steps := summary.get("seconds_by_step"):
        total = f"{summary['seconds'] / 60:.1f} in all: " if "seconds" in summary else ""
        lines.append(
            f"minutes: {total}" + ", ".join(f"{name} {s / 60:.1f}" for name, s in steps.items())
        )
    return "\n".join(lines)
