"""
The short version of the soak run (C{python -m bench.soak}): a few hundred
connections held with traffic, no reply lost, the daemon's memory flat.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import TIMEOUT

PROJECT = Path(__file__).resolve().parents[2]


def test_shortSoak(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    command = [
        sys.executable, "-m", "bench.soak", "--connections", "400",
        "--active", "40", "--duration", "3", "--sample", "1",
        "--json", str(report),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    assert figures["connections"] == figures["openAtEnd"] == 400
    assert figures["sent"] > 0
    assert figures["lost"] == figures["wrong"] == 0
    assert figures["problems"] == []
