"""Loading a model leaves numpy's BLAS one thread: its spare threads would busy-wait after the
out-of-domain product and take the cores from onnxruntime (experiments/serving_profile.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_in_fresh_interpreter

# A fresh interpreter: the test process's BLAS pool is already capped by other tests' loads.
PROBE = """
import json, sys, tempfile
from pathlib import Path
from threadpoolctl import threadpool_info
from serving_core.bundle import fetch_bundle
from serving_core.model import Model

before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
bundle = fetch_bundle(sys.argv[1], Path(tempfile.mkdtemp()))
Model.load(bundle, intra_op_threads=1, max_batch_size=4, max_batch_tokens=1000)
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after}))
"""


def test_model_load_caps_blas_at_one_thread(tiny_bundle: Path) -> None:
    done = run_in_fresh_interpreter(PROBE, str(tiny_bundle))
    assert done.returncode == 0, done.stderr[-2000:]
    threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert threads["after"], "numpy's BLAS is not visible to threadpoolctl"
    assert threads["after"] == [1] * len(threads["after"]), threads
