"""A process that exits while the function's background threads are inside onnxruntime (the
hot-reload refresher and the candidate loader building a session, the shadow worker scoring)
waits for them and exits cleanly, instead of aborting in onnxruntime's static destructors."""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.function_server import function_module_env
from tests.conftest import run_in_fresh_interpreter

# Each session opening and each shadow scoring is stretched (repeated) so that the exit lands
# while the thread is inside onnxruntime: a process stopped right after a reload started (a
# scale-down, a redeploy). The stretched work must still end well within the exit's join bound
# (_service.EXIT_JOIN_S, 10 s) on a loaded machine: 200 scorings of the shadow's batch took
# longer than that with two training runs beside the suite on 2 cores, and the exit then
# (rightly) stopped waiting.
EXIT_WHILE_BUSY = """
import sys, tempfile, threading, time
from pathlib import Path
from types import SimpleNamespace

bundle_dir, case = sys.argv[1:3]

import serving_core.model as model_module

real_open = model_module.open_session
busy = threading.Event()  # set when the background thread enters onnxruntime

def slow_open(path, threads, allow_spinning):
    busy.set()
    for _ in range(20):
        session = real_open(path, threads, allow_spinning)
    return session

from _config import ServeConfig
from _service import ModelHolder, _load_model

config = ServeConfig.from_env(
    {"MODEL_URI": bundle_dir, "BUNDLE_CACHE_DIR": tempfile.mkdtemp(), "SOLO_ORT_THREADS": "1",
     "PREDICTION_LOG": "none"}
)
if case == "refresher":
    holder = ModelHolder(
        config, refresh_interval_s=0.01, pointer_version=lambda: "a-newer-version"
    )
    holder.get()
    model_module.open_session = slow_open
elif case == "candidate-loader":
    from _canary_shadow import Rollout
    from production_pointer import Candidate

    model_module.open_session = slow_open
    # The candidate's bundle is the tiny bundle again, whatever version the pointer names.
    rollout = Rollout(config, log_rows=lambda rows: None, loader=lambda _: _load_model(config))
    rollout._observe("the-production-version", Candidate("a-candidate", "shadow"))
elif case == "shadow":
    from _canary_shadow import ShadowJob, ShadowWorker

    model = _load_model(config)

    def slow_predict(texts):
        busy.set()
        return [model.predict(texts) for _ in range(40)][-1]

    slow = SimpleNamespace(
        version=model.version, positive_label=model.positive_label, predict=slow_predict
    )
    worker = ShadowWorker(lambda rows: None, max_requests=4)
    worker.submit(ShadowJob(slow, "r-1", None, ["5G spreads the virus " * 40] * 8))
busy.wait(60)
time.sleep(0.05)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("case", ["refresher", "candidate-loader", "shadow"])
def test_a_process_exits_cleanly_while_a_background_thread_is_in_onnxruntime(
    tiny_bundle: Path, case: str
) -> None:
    done = run_in_fresh_interpreter(
        EXIT_WHILE_BUSY, str(tiny_bundle), case, env=function_module_env()
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"
    assert "exiting" in done.stdout
