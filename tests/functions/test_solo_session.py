"""The solo session: a request alone in flight runs on a second onnxruntime session with more
threads (serving_core.model's docstring); its answers are the main session's, concurrent requests
never use it, and SOLO_ORT_THREADS sizes or turns it off."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from _config import ConfigError, ServeConfig

from serving_core.bundle import fetch_bundle
from serving_core.cpus import available_cpus
from serving_core.model import Model
from testing.function_server import function_module_env
from tests.conftest import run_in_fresh_interpreter
from tests.functions._rollout import start_in_process
from tests.functions.test_batching import RecordingSession


def test_solo_session_gives_the_same_answers(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = fetch_bundle(str(tiny_bundle), tmp_path / "cache")
    model = Model.load(
        bundle, intra_op_threads=1, max_batch_size=4, max_batch_tokens=10_000, solo_threads=2
    )
    assert model.wait_for_solo_session(timeout_s=60)
    assert model.solo_session is not None
    assert model.solo_session.get_session_options().intra_op_num_threads == 2
    texts = ["Masks work", "5G spreads the virus " * 30, "WHO: wash your hands"]
    assert model.predict(texts, solo=True) == model.predict(texts)
    model.session = RecordingSession(model.session)
    model.predict(texts, solo=True)
    assert model.session.calls == []  # the solo call ran on the solo session
    model.predict(texts)
    assert len(model.session.calls) == 1


def test_no_solo_session_unless_it_has_more_threads(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = fetch_bundle(str(tiny_bundle), tmp_path / "cache")
    model = Model.load(
        bundle, intra_op_threads=2, max_batch_size=4, max_batch_tokens=10_000, solo_threads=2
    )
    assert not model.wait_for_solo_session(timeout_s=1)  # none was started
    assert model.solo_session is None
    assert model.predict(["Masks work"], solo=True)  # falls back to the main session


def test_solo_session_follows_solo_ort_threads(tiny_bundle: Path, tmp_path: Path) -> None:
    from _service import _load_model

    env = {"MODEL_URI": str(tiny_bundle), "BUNDLE_CACHE_DIR": str(tmp_path)}
    assert ServeConfig.from_env(env).solo_ort_threads == available_cpus()
    with pytest.raises(ConfigError, match="SOLO_ORT_THREADS"):
        ServeConfig.from_env({**env, "SOLO_ORT_THREADS": "0"})
    off = _load_model(ServeConfig.from_env({**env, "SOLO_ORT_THREADS": "1"}))
    on = _load_model(ServeConfig.from_env({**env, "SOLO_ORT_THREADS": "3"}))
    assert on.wait_for_solo_session(timeout_s=60) and not off.wait_for_solo_session(timeout_s=1)
    assert on.solo_session is not None and off.solo_session is None
    options = on.solo_session.get_session_options()
    assert options.intra_op_num_threads == 3
    # Alone on the instance, its workers may busy-wait between parallel sections.
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_only_a_request_alone_in_flight_runs_solo(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "MODEL_URI": str(tiny_bundle),
        "BUNDLE_CACHE_DIR": str(tmp_path / "cache"),
        "PREDICTION_LOG": "none",
    }
    app, main = start_in_process(env, monkeypatch)
    client = app.test_client()
    try:
        assert client.post("/", json={"text": "warm up"}).status_code == 200
        model = main.MODEL.model
        real_predict = model.predict
        inside, release = threading.Event(), threading.Event()
        flags: list[bool] = []

        def held_predict(texts: list[str], solo: bool = False) -> Any:
            flags.append(solo)
            if len(flags) == 2:  # the first request waits inside while the third comes in
                inside.set()
                release.wait(30)
            return real_predict(texts, solo=solo)

        monkeypatch.setattr(model, "predict", held_predict)
        assert client.post("/", json={"text": "alone"}).status_code == 200
        first = threading.Thread(target=lambda: client.post("/", json={"text": "held"}))
        first.start()
        assert inside.wait(30)
        assert app.test_client().post("/", json={"text": "beside it"}).status_code == 200
        release.set()
        first.join(30)
        assert flags == [True, True, False]
    finally:
        main.MODEL.close()
        main.ROLLOUT.close()


# A fresh interpreter loads a model and exits at once. Each session opening is stretched (several
# in a row) so that the exit lands while the solo session is still being opened inside
# onnxruntime: a process stopped right after its first load (a scale-down, a redeploy).
EXIT_WHILE_OPENING = """
import sys, tempfile
from pathlib import Path
import serving_core.model as model_module
from serving_core.bundle import fetch_bundle
from serving_core.cpus import available_cpus

real_open = model_module.open_session

def slow_open(path, threads, allow_spinning):
    for _ in range(20):
        session = real_open(path, threads, allow_spinning)
    return session

model_module.open_session = slow_open
bundle = fetch_bundle(sys.argv[1], Path(tempfile.mkdtemp()))
model_module.Model.load(bundle, 1, 4, 1000, solo_threads=2)
"""


def test_a_process_exits_cleanly_while_its_solo_session_opens(tiny_bundle: Path) -> None:
    done = run_in_fresh_interpreter(EXIT_WHILE_OPENING, str(tiny_bundle))
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"


# The default follows the CPUs the process may use: one CPU (taskset -c 0, a 1-vCPU instance)
# gives one thread, which turns the solo session off.
DEFAULT_ON_ONE_CPU = """
import os
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
from _config import ServeConfig
print(ServeConfig.from_env({}).solo_ort_threads)
"""


def test_unset_solo_ort_threads_follows_the_cpus_of_the_process() -> None:
    one_cpu = run_in_fresh_interpreter(DEFAULT_ON_ONE_CPU, env=function_module_env())
    assert one_cpu.returncode == 0, one_cpu.stderr
    assert one_cpu.stdout.strip() == "1"


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("100000 100000", 1), ("150000 100000", 2), ("max 100000", None), ("garbage", None)],
)
def test_a_cgroup_cpu_quota_caps_the_cpus(
    cpu_max: str, expected: int | None, tmp_path: Path
) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text(cpu_max + "\n")
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(quota) == min(affinity, expected or affinity)
    assert available_cpus(tmp_path / "missing") == affinity
