"""The Prometheus multiprocess directory of `admin-assistant serve`: whose it is decides its wiping.

prometheus_client's multiprocess mode keeps each worker's metrics in files of one directory,
which must start empty. `serve` wipes only a directory it made itself (its default under the
var dir, marked by a file it writes there); a directory named in `PROMETHEUS_MULTIPROC_DIR`
belongs to the operator and is never emptied.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["MARKER", "MetricsDirError", "prepare_metrics_dir"]

MARKER = ".created-by-admin-assistant-serve"
_log = logging.getLogger(__name__)


class MetricsDirError(Exception):
    """The default metrics directory exists but is not one `serve` created."""


def prepare_metrics_dir(environ: MutableMapping[str, str], var_dir: Path) -> Path:
    """An empty metrics directory for this run; sets PROMETHEUS_MULTIPROC_DIR when unset.

    Set by the operator: used as it is (a warning if it holds files). Unset: `var_dir/prometheus`,
    emptied when it carries our marker, created (with the marker) when missing, and refused
    when it exists without the marker and is not empty.
    """
    given = environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            _log.warning(
                "PROMETHEUS_MULTIPROC_DIR=%s is not empty; serve leaves it alone (empty it "
                "between runs, or stale metric files are counted again)",
                path,
            )
        return path
    path = var_dir / "prometheus"
    if path.exists() and not (path / MARKER).exists() and any(path.iterdir()):
        raise MetricsDirError(
            f"{path} exists and was not created by 'admin-assistant serve'; it is left "
            "alone: remove it, or set PROMETHEUS_MULTIPROC_DIR to an empty directory"
        )
    if (path / MARKER).exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("metrics of the running server; emptied at each 'serve'\n")
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path
