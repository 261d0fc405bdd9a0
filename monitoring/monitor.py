"""The drift check: PSI of scores and token lengths over a time window against each model
version's training baseline, a short report, and the retrain trigger."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitoring import _sql
from monitoring._engines import Engine

EXIT_DRIFT = 3
EXIT_RETRAIN_FAILED = 4
DEFAULT_RETRAIN_COMMAND = f"{shlex.quote(sys.executable)} -m train_job"
_WINDOW = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_window(text: str) -> timedelta:
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError(f"window must look like 90m, 24h or 7d, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sql_timestamp(value: datetime) -> str:
    """The only form ${start}/${end} take: a UTC literal both engines parse the same way."""
    # Whole seconds: bqemulator 1.4.0 mangles a fraction in a TIMESTAMP literal.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


@dataclass
class DriftReport:
    start: datetime
    end: datetime
    threshold: float
    min_rows: int
    rows: list[dict[str, Any]]

    def findings(self, row: dict[str, Any]) -> list[str]:
        if row["n_predictions"] < self.min_rows:
            return []
        found = []
        for key in ("score_psi", "token_length_psi"):
            value = row.get(key)
            if value is not None and value > self.threshold:
                found.append(f"{key} {value:.3f} > {self.threshold:g}")
        return found

    @property
    def drifted(self) -> bool:
        return any(self.findings(r) for r in self.rows)

    def text(self) -> str:
        lines = [
            f"Prediction-log drift {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC "
            f"(PSI threshold {self.threshold:g}, at least {self.min_rows} rows)"
        ]
        if not self.rows:
            return lines[0] + "\n  no predictions in the window"
        lines.append(
            f"  {'model_version':<28} {'rows':>7} {'score_psi':>9} {'token_psi':>9} "
            f"{'fake_rate':>9} {'base':>6} {'trunc':>6} {'base':>6} {'ood':>6}  status"
        )
        for r in sorted(self.rows, key=lambda r: r["model_version"]):
            findings = self.findings(r)
            if r["score_psi"] is None:
                status = "no baseline loaded"
            elif r["n_predictions"] < self.min_rows:
                status = "too few rows"
            else:
                status = "DRIFT: " + "; ".join(findings) if findings else "ok"
            number = _format_number
            lines.append(
                f"  {r['model_version']:<28} {r['n_predictions']:>7} {number(r['score_psi']):>9} "
                f"{number(r['token_length_psi']):>9} {number(r['fake_rate']):>9} "
                f"{number(r['baseline_fake_rate'], 2):>6} {number(r['truncation_rate']):>6} "
                f"{number(r['baseline_truncation_rate'], 2):>6} {number(r['ood_share']):>6}  "
                f"{status}"
            )
        return "\n".join(lines)


def _format_number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def window_drift(engine: Engine, start: datetime, end: datetime) -> list[dict[str, Any]]:
    # The literals hold whole seconds: round the end up, or rows logged in the window's last
    # fraction of a second (the ones just made, when the window ends now) fall outside it.
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return engine.query(
        _sql.render_window_drift(
            engine.dataset, sql_timestamp(start), sql_timestamp(end), engine.rows
        )
    )


def check_drift(
    engine: Engine, start: datetime, end: datetime, threshold: float, min_rows: int
) -> DriftReport:
    return DriftReport(start, end, threshold, min_rows, window_drift(engine, start, end))


def start_retrain(command: str) -> int:
    """Run the retrain command with this process's environment; its exit status."""
    print(f"drift: starting retrain: {command}", flush=True)
    return subprocess.run(shlex.split(command), check=False).returncode
