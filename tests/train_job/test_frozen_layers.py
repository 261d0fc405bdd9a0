"""--frozen-layers: the embeddings and the lowest N transformer layers leave training unchanged,
everything above them trains, and a bad count stops the run before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import tiny_config
from train_job.config import resolve_config
from train_job.model import freeze_lower_layers, load_classifier


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_a_run_leaves_the_frozen_layers_as_pretrained(tiny_base_model: Path, tmp_path) -> None:
    from train_job.pipeline import run

    cfg = tiny_config(
        tiny_base_model, tmp_path, frozen_layers=1, export=False, max_train_examples=128, epochs=1
    )
    trained = _weights(Path(run(cfg)["hf_model_dir"]))
    base = _weights(tiny_base_model)
    unchanged = {name for name in base if torch.equal(base[name], trained[name])}
    frozen = {name for name in base if ".embeddings." in name or ".layer.0." in name}
    assert frozen - unchanged == set()
    moved = {name for name in base if ".layer.1." in name and name.endswith(".weight")}
    assert moved and not moved & unchanged


def test_the_optimizer_holds_only_what_trains(tiny_base_model: Path) -> None:
    from train_job.loop import param_groups

    model = load_classifier(tiny_base_model)
    frozen = freeze_lower_layers(model, 2)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert frozen + trainable == sum(p.numel() for p in model.parameters())
    in_groups = sum(
        p.numel() for g in param_groups(model, tiny_config(Path(), Path())) for p in g["params"]
    )
    assert in_groups == trainable  # the pooler and the classifier only: both layers frozen


def test_zero_freezes_nothing_and_too_many_is_an_error(tiny_base_model: Path) -> None:
    model = load_classifier(tiny_base_model)
    assert freeze_lower_layers(model, 0) == 0
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="but the model has 2"):
        freeze_lower_layers(model, 3)


def test_more_layers_than_the_model_has_stops_the_run_as_bad_config(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    from train_job.pipeline import run

    cfg = tiny_config(tiny_base_model, tmp_path, frozen_layers=3, export=False)
    # A string SystemExit is what __main__ turns into exit code 2 with the message.
    with pytest.raises(SystemExit, match="error: --frozen-layers: 3 layers to freeze"):
        run(cfg)


def test_a_negative_count_exits_with_a_message() -> None:
    with pytest.raises(SystemExit, match="--frozen-layers must be 0"):
        resolve_config(["--frozen-layers", "-1"], env={})
