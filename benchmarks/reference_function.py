"""The yardstick for `make bench-serve-compare`: the prediction function a user could write in an
afternoon, in one file. onnxruntime + tokenizers, a session made lazily on the first request with
one intra-op thread, softmax; no validation, no limits, no calibration, no out-of-domain score,
no logging. Served exactly like the product:

    REFERENCE_BUNDLE_DIR=local/store/models/<version> functions-framework --target predict \
        --source benchmarks/reference_function.py

Not a product: it accepts any body (a 20 MB one, 20,000 instances) and answers 500 on bad input.
"""

import json
import os
import threading

import functions_framework
import numpy as np

_lock = threading.Lock()
_model = None


def _load():
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = os.environ["REFERENCE_BUNDLE_DIR"]
    with open(os.path.join(folder, "manifest.json")) as handle:
        manifest = json.load(handle)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        os.path.join(folder, manifest["model_file"]), options, providers=["CPUExecutionProvider"]
    )
    tokenizer = Tokenizer.from_file(os.path.join(folder, manifest["tokenizer_file"]))
    tokenizer.enable_truncation(max_length=manifest["max_length"])
    tokenizer.enable_padding()
    inputs = [i.name for i in session.get_inputs()]
    return session, tokenizer, inputs, manifest["labels"]


def model():
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = _load()
    return _model


def predict_texts(texts, session=None):
    loaded, tokenizer, inputs, labels = model()
    if session is None:  # the bench passes another session to time this code on it
        session = loaded
    encodings = tokenizer.encode_batch(texts)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    logits = session.run(["logits"], {name: feeds[name] for name in inputs})[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    return [
        {"label": labels[int(p.argmax())], "score": float(p.max()), "probabilities": p.tolist()}
        for p in probabilities
    ]


@functions_framework.http
def predict(request):
    if request.method == "GET":
        return {"status": "ok"}
    body = request.get_json()
    texts = [i["text"] for i in body["instances"]] if "instances" in body else [body["text"]]
    return {"predictions": predict_texts(texts)}
