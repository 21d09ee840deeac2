"""Write a finished run's loss history through DVCLive, so `dvc plots` and `dvc exp show` see it.

The history is replayed from the checkpointed record at the end of training instead of being
streamed: a run resumed after a crash then writes exactly the files an uninterrupted run writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def write_history(directory: Path, history: list[dict], summary: dict) -> None:
    from dvclive import Live

    shutil.rmtree(directory, ignore_errors=True)  # a stale log would otherwise be appended to
    with Live(dir=str(directory), save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for row in history:
            live.step = row["step"]
            for key in ("train_loss", "val_loss"):
                if key in row:
                    live.log_metric(key.replace("_", "/"), row[key])
        for key, value in summary.items():
            live.summary[key] = value
