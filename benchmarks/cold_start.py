"""Cold start of a prediction function, phase by phase, in the fresh process this module runs in:
import of the function's module, bundle fetch and verification, import of onnxruntime and
tokenizers, session creation (with the tokenizer and the bundle's other files), the first
prediction, and (product) the prediction log's first hand-over. Prints one JSON object.

    python -m benchmarks.cold_start product   (env as the function gets it; functions/predict
                                               on PYTHONPATH, as functions-framework has it)
    python -m benchmarks.cold_start reference (REFERENCE_BUNDLE_DIR set)

bench_serve_compare runs it in a subprocess per measurement, so every phase starts cold.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

TEXT = "WHO says the new variant spreads faster; vaccines still protect against severe disease."


def timed(phases: dict[str, float], name: str, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = call()
    phases[name] = round(time.perf_counter() - started, 4)
    return result


def import_runtime() -> None:
    importlib.import_module("onnxruntime")
    importlib.import_module("tokenizers")


def product_phases() -> dict[str, float]:
    phases: dict[str, float] = {}
    main = timed(phases, "import_s", lambda: importlib.import_module("main"))
    # The modules main.py itself loads the model with; imported already, so this costs nothing.
    bundle_module = importlib.import_module("serving_core.bundle")
    model_module = importlib.import_module("serving_core.model")
    service = importlib.import_module("_service")
    config = main.CONFIG
    bundle = timed(
        phases,
        "fetch_verify_s",
        lambda: bundle_module.fetch_bundle(config.model_uri, config.bundle_cache_dir),
    )
    timed(phases, "runtime_import_s", import_runtime)
    model = timed(
        phases,
        "session_s",
        lambda: model_module.Model.load(
            bundle,
            intra_op_threads=config.ort_intra_op_threads,
            max_batch_size=config.max_batch_size,
            max_batch_tokens=config.max_batch_tokens,
        ),
    )
    predictions = timed(phases, "first_run_s", lambda: model.predict([TEXT]))
    rows = service.prediction_log_rows("cold", None, [TEXT], predictions, model, 1.0, True)
    timed(phases, "first_log_s", lambda: main.PREDICTION_LOG(rows))
    return phases


def reference_phases() -> dict[str, float]:
    phases: dict[str, float] = {}
    module = timed(
        phases, "import_s", lambda: importlib.import_module("benchmarks.reference_function")
    )
    phases["fetch_verify_s"] = 0.0  # reads the files in place, unchecked
    timed(phases, "runtime_import_s", import_runtime)
    timed(phases, "session_s", module.model)
    timed(phases, "first_run_s", lambda: module.predict_texts([TEXT]))
    return phases


def main(argv: list[str]) -> int:
    # The parent's clock at spawn (COLD_START_SPAWNED_AT, time.time()): the interpreter's own start.
    spawned = float(os.environ.get("COLD_START_SPAWNED_AT") or time.time())
    interpreter_s = round(time.time() - spawned, 4)
    started = time.perf_counter()
    phases = product_phases() if argv[0] == "product" else reference_phases()
    phases["interpreter_s"] = interpreter_s
    phases["total_s"] = round(interpreter_s + time.perf_counter() - started, 4)
    print(json.dumps(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
