"""Every benchmark in bench/ starts: its imports resolve and its options parse (`--help`).
The benchmarks run on demand, never in the suite, so nothing else would notice a module
they import moving away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if "def main(" in p.read_text())


def test_the_benchmarks_are_found() -> None:
    assert {"signup.py", "billing_run.py", "freshness.py", "lake_ingest.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_starts(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
