"""Drop the entries of dvc.lock whose stage dvc.yaml no longer defines.

DVC keeps a stage's lock entry after the stage is gone (a study point removed from params.yaml,
a model renamed), and rewrites the whole file after every stage it runs, so dead entries cost time
and hide what the pipeline is. `make repro` runs this after `dvc repro`;
tests/test_architecture.py checks that the committed lock has none.

    python scripts/prune_lock.py [REPO]   # prints what it dropped; rewrites the file only then
"""

from __future__ import annotations

import sys
from pathlib import Path

from picollm.io import atomic_open


def defined_stages(repo: Path) -> set[str]:
    """Every stage name dvc.yaml defines, foreach and matrix entries expanded (`train@mingpt`)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:  # `name`, not `addressing`: that one is prefixed with dvc.yaml's path from elsewhere
        return {stage.name for stage in dvc.index.stages if getattr(stage, "name", None)}


def prune(repo: Path) -> list[str]:
    """Remove the lock entries of undefined stages, keeping the rest of the file as DVC wrote it."""
    from ruamel.yaml import YAML

    path = repo / "dvc.lock"
    if not path.is_file():
        return []
    yaml = YAML()  # round-trip, ruamel's defaults as DVC's: the kept entries stay byte for byte
    document = yaml.load(path)
    defined = defined_stages(repo)
    dropped = [name for name in document.get("stages", {}) if name not in defined]
    if dropped:
        for name in dropped:
            del document["stages"][name]
        with atomic_open(path, "w", encoding="utf-8") as handle:
            yaml.dump(document, handle)
    return dropped


if __name__ == "__main__":
    for name in prune(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"dvc.lock: dropped {name} (no longer in dvc.yaml)")
