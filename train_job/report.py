"""The PNG report: loss and F1 curves, confusion matrix, reliability diagram (before and after
temperature scaling)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in a job
import matplotlib.pyplot as plt

from train_job.tables import LABELS


def write_report(path: Path, history: list[dict], test: dict, reliability: dict) -> Path:
    """reliability: {"before": curve, "after": curve} from evaluate.reliability_curve."""
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    epochs = [h["epoch"] for h in history]
    ax = axes[0]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="val loss")
    ax.set(title="Loss", xlabel="epoch")
    ax.legend()

    ax = axes[1]
    ax.plot(epochs, [h["val_macro_f1"] for h in history], "o-", label="val macro-F1")
    ax.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="val accuracy")
    ax.set(title="Validation", xlabel="epoch")
    ax.legend()

    ax = axes[2]
    cm = test["confusion_matrix"]
    ax.imshow(cm, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cm[i][j]), ha="center", va="center", fontsize=14)
    ax.set_xticks([0, 1], LABELS)
    ax.set_yticks([0, 1], LABELS)
    ax.set(
        title=f"Test confusion (weighted F1 {test['weighted_f1']:.4f})",
        xlabel="predicted",
        ylabel="true",
    )

    ax = axes[3]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, curve in reliability.items():
        pts = [
            (p, o)
            for p, o in zip(curve["mean_predicted"], curve["observed"], strict=True)
            if p is not None
        ]
        ax.plot([p for p, _ in pts], [o for _, o in pts], "o-", label=name)
    ax.set(title="Reliability (test)", xlabel="mean predicted P(fake)", ylabel="observed fake rate")
    ax.legend()

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
