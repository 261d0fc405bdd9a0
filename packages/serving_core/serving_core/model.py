"""The model: tokenizer + onnxruntime session + calibration + out-of-domain score.

Nothing here runs at import time: the function builds its model lazily on the first request of
the serving process (functions-framework imports main.py and then gunicorn forks the worker; an
onnxruntime session created before that fork loses its thread pool). Every model is its own
object with its own session, so one process can hold several bundles side by side.

Batching: the texts of one ``predict`` call (a request, or a chunk of a batch-scoring task) are
tokenized without padding, sorted by length and cut into chunks; each chunk is one onnxruntime call
padded only to its own longest text, so one long text does not make every short one pay for
padding to its length. The int8 model quantizes activations per call (dynamic quantization), so a
text's probabilities depend, in the last digits, on which texts share its call: the same texts
in the same call give identical results, in the function and in the batch job alike.

Solo session: with ``solo_threads`` above ``intra_op_threads``, the model opens a second session on
the same file in the background, with more threads whose workers may busy-wait between the graph's
parallel sections. A caller that knows it is the only request in flight (the function does) passes
``solo=True`` and gets the cores no other request is using; under concurrency every request runs on
the one-thread session, so requests never fight over cores. Both sessions give identical results.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serving_core.bundle import Bundle, BundleError
from serving_core.calibration import CalibrationError, calibration_map

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"
KNOWN_INPUTS = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)
LOGITS = "logits"
POOLED = "pooled"

log = logging.getLogger(__name__)


class Session(Protocol):
    """The slice of onnxruntime.InferenceSession the model uses (tests pass a recording proxy)."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def run(
        self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]
    ) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    type_ids: list[int]
    token_count: int  # before truncation, special tokens included
    truncated: bool


@dataclass(frozen=True)
class Prediction:
    label: str
    label_probability: float  # calibrated probability of ``label`` (the answer's `score`)
    probabilities: dict[str, float]
    truncated: bool
    token_count: int
    ood_score: float | None
    in_domain: bool | None


def plan_batches(
    lengths: Sequence[int], max_batch_size: int, max_batch_tokens: int
) -> list[list[int]]:
    """Indices of ``lengths`` sorted by length, cut into onnxruntime calls.

    A call holds at most ``max_batch_size`` texts and at most ``max_batch_tokens`` padded tokens
    (texts x longest), except that a single text always gets a call of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so the newcomer is the longest: it sets the padded width.
        padded = (len(current) + 1) * lengths[index]
        if current and (len(current) >= max_batch_size or padded > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


# Mahalanobis distance of the pooled features ("mahalanobis"), or of the pooled features scaled
# to unit length ("mahalanobis_l2", export.ood's detector), to the bundle's mean.
MAHALANOBIS = ("mahalanobis", "mahalanobis_l2")


class OodDetector:
    """Out-of-domain score from the bundle: higher means further from the training data."""

    def __init__(self, method: str, threshold: float, params: dict[str, np.ndarray]) -> None:
        self.method = method
        self.threshold = float(threshold)
        if method in MAHALANOBIS:
            self.mean = params["mean"].astype(np.float32).reshape(-1)
            self.precision = params["precision"].astype(np.float32)
            hidden = self.mean.shape[0]
            if self.precision.shape != (hidden, hidden):
                raise BundleError(
                    f"ood precision has shape {self.precision.shape}, expected {(hidden, hidden)}"
                )
        elif method != "energy":
            raise BundleError(f"unknown ood method {method!r}")

    @property
    def needs_pooled(self) -> bool:
        return self.method in MAHALANOBIS

    def ood_scores(self, logits: np.ndarray, pooled: np.ndarray | None) -> np.ndarray:
        """One out-of-domain score per text (compared with ``threshold``)."""
        if self.method in MAHALANOBIS:
            assert pooled is not None
            features = pooled.astype(np.float32)
            if self.method == "mahalanobis_l2":
                norms = np.linalg.norm(features, axis=1, keepdims=True)
                features = features / np.maximum(norms, np.float32(1e-12))
            centred = features - self.mean
            # Reading the 384 x 384 precision matrix, evicted from the cache by the model's run, is
            # most of the cost: a matrix product, then a row-wise multiply-and-sum (108 us a text
            # after a run on 2 CPUs; einsum's row-wise dot 140 us, its three-operand form 10x).
            return ((centred @ self.precision) * centred).sum(axis=1).astype(np.float64)
        # Energy score (Liu et al. 2020): -logsumexp of the raw logits; low energy = in domain.
        raw = logits.astype(np.float64)
        top = raw.max(axis=1)
        return -(top + np.log(np.exp(raw - top[:, None]).sum(axis=1)))


class Model:
    def __init__(
        self,
        session: Session,
        tokenizer: Any,
        manifest: dict[str, Any],
        ood: OodDetector | None,
        max_batch_size: int,
        max_batch_tokens: int,
    ) -> None:
        self.session = session
        self.manifest = manifest
        self.version = str(manifest["version"])
        self.labels = [str(label) for label in manifest["labels"]]
        self.max_length = int(manifest["max_length"])
        self.temperature = float(manifest["calibration"]["temperature"])
        try:  # with a map, P(fake) is read from it instead of the temperature (calibration.py)
            self.calibration_map = calibration_map(manifest["calibration"])
        except (CalibrationError, KeyError, TypeError) as exc:
            raise BundleError(f"bad calibration map: {exc}") from None
        self.threshold = float(manifest["decision"]["threshold"])
        positive = str(manifest.get("positive_label", "fake"))
        if positive not in self.labels or len(self.labels) != 2:
            raise BundleError(f"labels {self.labels} must be two and include {positive!r}")
        self.positive_label = positive
        self.positive_index = self.labels.index(positive)
        self.negative_label = self.labels[1 - self.positive_index]
        self.ood = ood
        self.bundle_dir: Path | None = None  # set by the loader; where the bundle's files lie
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.model_path: str | None = None  # set by load; a model made in a test has none
        self.intra_op_threads = 1
        self.solo_session: Session | None = None  # module docstring; start_solo_session
        self._solo_lock = threading.Lock()
        self._solo_started = False
        self._solo_done = threading.Event()  # set once the solo session opened or failed

        self._truncating = tokenizer
        self._truncating.no_padding()  # padding happens per onnxruntime call, to its longest text
        truncation = self._truncating.truncation or {}
        # Stride 0: the pieces cut off (Encoding.overflowing) do not overlap, so a cut text's full
        # token count is read from them instead of encoding the text a second time.
        if truncation.get("max_length") != self.max_length or truncation.get("stride", 0) != 0:
            self._truncating.enable_truncation(max_length=self.max_length)

        inputs = [i.name for i in session.get_inputs()]
        unknown = [name for name in inputs if name not in KNOWN_INPUTS]
        if unknown or INPUT_IDS not in inputs:
            raise BundleError(
                f"model inputs {inputs} are not input_ids/attention_mask/token_type_ids"
            )
        self.input_names = inputs
        outputs = [o.name for o in session.get_outputs()]
        self.output_names = [LOGITS] + ([POOLED] if ood and ood.needs_pooled else [])
        absent = [name for name in self.output_names if name not in outputs]
        if absent:
            raise BundleError(f"model has outputs {outputs}; needs {', '.join(absent)}")
        pad = self._truncating.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else int(pad)

    @classmethod
    def load(
        cls,
        bundle: Bundle,
        intra_op_threads: int,
        max_batch_size: int,
        max_batch_tokens: int,
        allow_spinning: bool = False,
        solo_threads: int = 0,
    ) -> Model:
        from threadpoolctl import threadpool_limits
        from tokenizers import Tokenizer

        # numpy's OpenBLAS (the out-of-domain score's matrix product) would start a thread per
        # core whose busy-waiting after each product takes the cores from onnxruntime's threads
        # (measured on 2 CPUs: the batch job's onnxruntime calls took 30% longer); one BLAS thread
        # is plenty for a (batch x 384) @ (384 x 384) product.
        threadpool_limits(limits=1, user_api="blas")
        manifest = bundle.manifest
        model_path = str(bundle.path(manifest["model_file"]))
        try:
            session = open_session(model_path, intra_op_threads, allow_spinning)
            tokenizer = Tokenizer.from_file(str(bundle.path(manifest["tokenizer_file"])))
            ood = None
            spec = manifest.get("ood")
            if isinstance(spec, dict):
                params: dict[str, np.ndarray] = {}
                if spec.get("params_file"):
                    with np.load(bundle.path(spec["params_file"]), allow_pickle=False) as npz:
                        params = {key: npz[key] for key in npz.files}
                ood = OodDetector(str(spec.get("method")), float(spec["threshold"]), params)
        except BundleError:
            raise
        except Exception as exc:  # onnxruntime/tokenizers raise their own types on bad files
            raise BundleError(f"cannot load bundle {bundle.version}: {exc}") from exc
        model = cls(session, tokenizer, manifest, ood, max_batch_size, max_batch_tokens)
        model.model_path = model_path
        model.intra_op_threads = intra_op_threads
        model.start_solo_session(solo_threads)
        return model

    def start_solo_session(self, threads: int) -> None:
        """Open the solo session (module docstring) in the background, if ``threads`` is more
        than the main session has and none is open; until then solo calls use the main session."""
        if threads <= self.intra_op_threads or self.model_path is None:
            return
        with self._solo_lock:
            if self._solo_started:
                return
            self._solo_started = True
        # Not a daemon: an interpreter that exits while onnxruntime is still building the session
        # runs onnxruntime's static destructors under it and aborts (SIGABRT, "terminate called
        # without an active exception"); exit waits for the opening instead, a fraction of a second.
        threading.Thread(
            target=self._open_solo_session,
            args=(self.model_path, threads),
            name=f"solo-session-{self.version}",
            daemon=False,
        ).start()

    def _open_solo_session(self, model_path: str, threads: int) -> None:
        try:
            self.solo_session = open_session(model_path, threads, allow_spinning=True)
        except Exception:  # the main session serves on; only the solo speed-up is lost
            log.exception("solo session of %s could not be opened", self.version)
        finally:
            self._solo_done.set()

    def wait_for_solo_session(self, timeout_s: float) -> bool:
        """For benches and tests: True once the solo session is open (False if none was started,
        it failed, or `timeout_s` passed)."""
        if not self._solo_started:
            return False
        self._solo_done.wait(timeout_s)
        return self.solo_session is not None

    # ---- inference ------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        encodings = (
            [self._truncating.encode(texts[0])]
            if len(texts) == 1
            else self._truncating.encode_batch(list(texts))
        )
        result = []
        for enc in encodings:
            count = len(enc.ids)
            # Only a text that filled max_length can have been cut: add what was cut off (each
            # piece carries its own special tokens, which the text itself does not have twice).
            if count >= self.max_length:
                for piece in enc.overflowing:
                    count += len(piece.ids) - sum(piece.special_tokens_mask)
            result.append(
                Encoded(
                    ids=enc.ids,
                    type_ids=enc.type_ids,
                    token_count=count,
                    truncated=count > self.max_length,
                )
            )
        return result

    def _run(
        self, batch: Sequence[Encoded], session: Session
    ) -> tuple[np.ndarray, np.ndarray | None]:
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, enc in enumerate(batch):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        available = {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: types}
        feeds = {name: available[name] for name in self.input_names}
        outputs = session.run(self.output_names, feeds)
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def predict(self, texts: Sequence[str], solo: bool = False) -> list[Prediction]:
        """Predictions for ``texts``, in order. ``solo``: the caller is the only request in flight,
        so the solo session (if open) may use every core."""
        session = self.solo_session if solo and self.solo_session is not None else self.session
        encoded = self.encode(texts)
        logits = np.zeros((len(texts), 2), dtype=np.float32)
        ood_scores = np.zeros(len(texts), dtype=np.float64)
        lengths = [len(e.ids) for e in encoded]
        for indices in plan_batches(lengths, self.max_batch_size, self.max_batch_tokens):
            batch_logits, pooled = self._run([encoded[i] for i in indices], session)
            logits[indices] = batch_logits
            if self.ood is not None:
                ood_scores[indices] = self.ood.ood_scores(batch_logits, pooled)
        # Two labels: the calibrated softmax is a logistic function of the logits' margin; in plain
        # floats it costs a few microseconds less per text than numpy on a 1 x 2 array.
        margins = logits[:, self.positive_index].astype(np.float64) - logits[
            :, 1 - self.positive_index
        ].astype(np.float64)
        if self.calibration_map is None:
            pairs = [logistic_pair(m) for m in (margins / self.temperature).tolist()]
        else:
            pairs = [(p, 1.0 - p) for p in self.calibration_map(margins).tolist()]
        threshold = self.ood.threshold if self.ood is not None else 0.0
        predictions = []
        rows = zip(encoded, pairs, ood_scores.tolist(), strict=True)
        for enc, (p_positive, p_negative), ood_score in rows:
            positive = p_positive >= self.threshold
            by_label = {self.positive_label: p_positive, self.negative_label: p_negative}
            label = self.positive_label if positive else self.negative_label
            predictions.append(
                Prediction(
                    label=label,
                    label_probability=by_label[label],
                    probabilities={name: by_label[name] for name in self.labels},
                    truncated=enc.truncated,
                    token_count=enc.token_count,
                    ood_score=ood_score if self.ood is not None else None,
                    in_domain=None if self.ood is None else bool(ood_score < threshold),
                )
            )
        return predictions


def logistic_pair(margin: float) -> tuple[float, float]:
    """(sigmoid(margin), sigmoid(-margin)), each exact for large margins (no 1 - p)."""
    if margin != margin:  # NaN logits: the caller's non-finite guard takes it from here
        return math.nan, math.nan
    # exp(-|margin|) never overflows; a margin past ~745 underflows it to 0 and gives 1 and 0.
    small = math.exp(-abs(margin))
    high, low = 1.0 / (1.0 + small), small / (1.0 + small)
    return (high, low) if margin >= 0 else (low, high)


def open_session(model_path: str, intra_op_threads: int, allow_spinning: bool) -> Session:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Explicit, because onnxruntime's default (all cores) ignores the instance's other threads.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    # onnxruntime's default lets idle pool threads busy-wait for the next job
    # (ORT_ALLOW_SPINNING in _config.py says why it is off here); matters with >1 thread.
    spinning = "1" if allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    # Spinning only within a call: workers still busy-waiting after it would take the core the
    # next request's thread (or the client, on a shared machine) needs.
    options.add_session_config_entry("session.force_spinning_stop", spinning)
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Shapes change with every call (batch x longest text): the arena would keep the peak of the
    # largest calls (2.1 GiB after 4 concurrent batches of long texts, versus a 512 MiB instance;
    # shrinking it after each call over 256 padded tokens still left `make bench-memory`'s stress
    # peak at 386 against 273 MiB without it), for calls 2.5% faster. Memory patterns are kept
    # per input shape.
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    return ort.InferenceSession(
        model_path, sess_options=options, providers=["CPUExecutionProvider"]
    )
