"""Config order: flag, then environment, then profile, then default."""

from __future__ import annotations

import pytest

from train_job.config import PROFILES, TrainConfig, resolve_config


def test_defaults_come_from_the_quick_profile() -> None:
    cfg = resolve_config([], env={})
    assert cfg.profile == "quick"
    assert cfg.epochs == PROFILES["quick"]["epochs"]
    assert cfg.batch_size == TrainConfig.batch_size  # not in the profile: the dataclass default


def test_environment_beats_profile_and_flag_beats_environment() -> None:
    env = {"FND_EPOCHS": "7", "FND_LEARNING_RATE": "2e-4", "FND_PROFILE": "full"}
    cfg = resolve_config([], env=env)
    assert (cfg.profile, cfg.epochs, cfg.learning_rate) == ("full", 7, 2e-4)
    cfg = resolve_config(["--epochs", "3", "--profile", "quick"], env=env)
    assert (cfg.profile, cfg.epochs, cfg.learning_rate) == ("quick", 3, 2e-4)


def test_booleans_from_flags_and_environment() -> None:
    assert resolve_config([], env={"FND_DEDUP": "off"}).dedup is False
    assert resolve_config(["--dedup"], env={"FND_DEDUP": "off"}).dedup is True
    assert resolve_config(["--no-export"], env={}).export is False


def test_cloud_run_execution_id_is_the_default_run_id() -> None:
    # A retried Cloud Run task keeps its execution id, so it resumes the same run.
    assert resolve_config([], env={"CLOUD_RUN_EXECUTION": "train-abc12"}).run_id == "train-abc12"
    assert resolve_config(["--run-id", "mine"], env={"CLOUD_RUN_EXECUTION": "x"}).run_id == "mine"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--profile", "huge"], {}, "unknown profile"),
        ([], {"FND_EPOCHS": "many"}, "FND_EPOCHS"),
        ([], {"FND_DEDUP": "perhaps"}, "FND_DEDUP"),
        (["--precision", "fp16"], {}, "--precision must be one of"),
        (["--teacher-headlines", "0.5"], {}, "--teacher-headlines needs --teacher"),
        (["--teacher-hidden", "1"], {}, "--teacher-hidden needs --teacher"),
        (["--source-balance", "class"], {}, "--source-balance needs --sources"),
        (["--ood-fit-news", "no/such.csv"], {}, "--ood-fit-news: no such file"),
        (["--source-adversary", "0.1"], {}, "--source-adversary needs --sources"),
        (["--sources", "m.toml", "--source-balance", "yes"], {}, "--source-balance must be"),
        (["--int8-ffn-output", "bf16"], {}, "--int8-ffn-output must be one of"),
        (
            ["--teacher", "t", "--teacher-headlines", "0.5", "--consistency-weight", "1"],
            {},
            "both use the twins",
        ),
    ],
)
def test_bad_values_exit_with_a_message(argv, env, message, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        resolve_config(argv, env=env)
    assert message in str(exc.value)
