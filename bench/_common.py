"""What every benchmark script records about its run, and where it writes it."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


class RunInfo:
    """Started now: the command, options, time and machine load that go in a results file."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.load_before = os.getloadavg()

    def meta(self, **extra: Any) -> dict[str, Any]:
        """The results file's `meta`: this run's facts, then `extra` (targets, setup)."""
        return {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in vars(self.opts).items()
            },
            "started": self.started,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": self.load_before,
            "load_average_after": os.getloadavg(),
            **extra,
        }


def write_results(path: Path, report: dict[str, Any]) -> None:
    """`report` as indented JSON at `path` (its folder made if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
