"""The floor under every function in `make bench-serve-compare`: functions-framework with the
libraries a model needs (numpy, onnxruntime, tokenizers) imported, answering a fixed prediction
without a model. Served exactly like the product and the reference:

    functions-framework --target predict --source benchmarks/floor_function.py

Its first answer is what a cold start costs on the machine before any bundle is read or any
session opened; its HTTP latency at concurrency 1 is what functions-framework, gunicorn, the
loopback and the client add to any answer. Not a function anyone would deploy.
"""

import json

import functions_framework
import numpy  # noqa: F401  (imported for its cost: onnxruntime needs it)
import onnxruntime  # noqa: F401
import tokenizers  # noqa: F401

ANSWER = json.dumps({"predictions": [{"label": "real", "score": 0.5, "probabilities": [0.5, 0.5]}]})


@functions_framework.http
def predict(request):
    request.get_data()  # read the body, as any function must
    return ANSWER, 200, {"Content-Type": "application/json"}
