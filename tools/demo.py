"""The second half of `make run`: serve the bundle just published, predict, show the log.

1. starts the prediction function with functions-framework on 127.0.0.1 (production bundle of
   the local store, prediction log in the local DuckDB file);
2. sends a few requests (one text, a batch, a bad request) and prints the answers;
3. stops the function with SIGTERM, as Cloud Run does;
4. prints the logged rows and the monitoring summary of this window.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

from job_config import read
from prediction_log.settings import DEFAULT_PREDICTION_LOG

ROOT = Path(__file__).resolve().parents[1]
STORE = os.environ.get("FND_STORE", "local/store")
LOG_URI = read("PREDICTION_LOG", str, DEFAULT_PREDICTION_LOG)

# Each example with the label a fact-checker would give it, none of them in the training data.
# The first is true but plain-spoken, unlike CONSTRAINT's real posts (mostly official accounts'
# updates): the kind of text a model trained on CONSTRAINT alone gets wrong, shown on purpose.
# The last two are headlines on other subjects than COVID-19 (a true one from February 2021 and
# a fabricated one that fact-checkers debunked in 2016).
EXAMPLES = [
    ("The WHO says washing hands with soap and water helps stop the spread of COVID-19.", "real"),
    ("BREAKING: drinking hot lemon water every morning kills the coronavirus, doctors hide it!",
     "fake"),
    ("#IndiaFightsCorona: 1,524 testing laboratories in India as of 25th August 2020. @ICMRDELHI",
     "real"),
    ("Bill Gates admits the COVID vaccine will implant microchips to track everyone.", "fake"),
    ("NASA's Perseverance rover lands safely on Mars after a seven-month journey", "real"),
    ("Obama signs executive order banning the Pledge of Allegiance in all US schools", "fake"),
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def start_function(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "functions_framework", "--target", "predict",
         "--source", "functions/predict/main.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_until_up(server: subprocess.Popen[str], url: str, timeout_s: float = 60) -> bool:
    """Poll GET / until it answers; prints the health answer. False if the process died or
    timeout_s passed (its stderr is printed then)."""
    started = time.monotonic()
    while True:
        try:
            status, health = _call(url)
            break
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None or time.monotonic() - started > timeout_s:
                print(server.stderr.read() if server.stderr else "", file=sys.stderr)
                print("error: the function did not start", file=sys.stderr)
                return False
            time.sleep(0.2)
    print(f"\n== function on {url} (GET / -> {status}): {json.dumps(health)}")
    return True


def answer_lines(predictions: list[dict]) -> list[str]:
    """One line per example: the answer, the expected label and whether they agree."""
    lines = []
    for (text, expected), p in zip(EXAMPLES, predictions, strict=False):
        verdict = "right" if p["label"] == expected else "WRONG"
        lines.append(
            f"  {p['label']:>4} {p['score']:.3f} in_domain={p.get('in_domain')}  "
            f"(expected {expected}: {verdict})  {text[:60]}"
        )
    return lines


def limitation_note(predictions: list[dict], trust: dict | None) -> str | None:
    """When a true example is called fake, the bundle's own cross-source numbers say how common
    that is (its trust report: CoAID's real headlines, scored at training time)."""
    missed = any(
        expected == "real" and p["label"] == "fake"
        for (_, expected), p in zip(EXAMPLES, predictions, strict=False)
    )
    cross = (trust or {}).get("cross_source") or {}
    if not missed or "real_called_fake_share" not in cross:
        return None
    return textwrap.fill(
        f"A true statement called fake: this bundle calls {cross['real_called_fake_share']:.0%} "
        f"of the {cross['real']} real headlines in {cross['file']} fake "
        f"({cross['real_called_fake_in_domain_share']:.0%} of those it takes as in domain). "
        "A model learns what real looks like from its training sources (CONSTRAINT's real posts "
        "are mostly official accounts' updates), so true claims written another way can read as "
        "fake to it; docs/results.md has the numbers per source and across sources.",
        width=100,
        initial_indent="  ",
        subsequent_indent="  ",
    )


def trust_report(version: str | None) -> dict | None:
    path = ROOT / STORE / "models" / str(version) / "trust_report.json"
    return json.loads(path.read_text()) if version and path.is_file() else None


def send_examples(url: str) -> None:
    """One text, a batch and a bad request, with the answers printed."""
    t0 = time.monotonic()
    status, answer = _call(url, json.dumps({"text": EXAMPLES[0][0]}).encode())
    print(f"\n== POST one text -> {status} in {1000 * (time.monotonic() - t0):.0f} ms "
          "(the readiness GET above loaded the model)")  # fmt: skip
    print(json.dumps(answer, indent=1))
    batch = {"instances": [{"text": text} for text, _ in EXAMPLES]}
    t0 = time.monotonic()
    status, answer = _call(url, json.dumps(batch).encode())
    print(f"\n== POST {len(EXAMPLES)} instances -> {status} in "
          f"{1000 * (time.monotonic() - t0):.0f} ms")  # fmt: skip
    predictions = answer.get("predictions", [])
    print("\n".join(answer_lines(predictions)))
    note = limitation_note(predictions, trust_report(answer.get("model_version")))
    if note:
        print(note)
    status, answer = _call(url, b'{"instances": [{"text": ""}]}')
    print(f"\n== POST an empty text -> {status}: {json.dumps(answer)}")


def stop_function(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGTERM)  # as Cloud Run stops an instance
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def print_newest_log_rows() -> None:
    print(f"\n== prediction log ({LOG_URI}), newest rows")
    if not LOG_URI.startswith("duckdb://"):
        return
    from prediction_log.line_spool import connect_and_load, duckdb_path

    # Opening the log loads the lines the function spooled beside the file into the table.
    with connect_and_load(duckdb_path(LOG_URI), lock_wait_s=30) as db:
        rows = db.execute(
            "SELECT ts, request_id, instance_index, model_version, label,"
            " round(fake_probability, 3), token_count, truncated, round(latency_ms, 1),"
            " cold_start, in_domain FROM predictions ORDER BY ts DESC LIMIT 6"
        ).fetchall()
        total = db.execute("SELECT count(*) FROM predictions").fetchone()[0]
    for row in rows:
        print("  " + " | ".join(str(v) for v in row))
    print(f"  ({total} rows in the log)")


def run_monitor(env: dict[str, str]) -> int:
    print("\n== monitoring summary (last hour)")
    monitor = subprocess.run(
        [sys.executable, "-m", "monitoring", "monitor", "--log", LOG_URI, "--store", STORE,
         "--window", "1h"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    # Exit 3 means drift above the threshold: a finding to read, not a failure of the demo.
    return 0 if monitor.returncode in (0, 3) else monitor.returncode


def main() -> int:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        **os.environ,
        "MODEL_URI": f"{STORE}/models/production.json",
        "PREDICTION_LOG": LOG_URI,
    }
    server = start_function(port, env)
    try:
        if not wait_until_up(server, url):
            return 1
        send_examples(url)
    finally:
        stop_function(server)
    print_newest_log_rows()
    return run_monitor(env)


if __name__ == "__main__":
    sys.exit(main())
