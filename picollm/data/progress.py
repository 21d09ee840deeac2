"""Progress bars for the data stages: tqdm on stderr, shown only when stderr is a terminal.

Logs, CI and tests (which capture stderr) get no bar at all, so nothing pollutes them; under
`dvc repro` in a terminal the bars show how far reading, de-duplication and encoding have got.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], description: str, *, total: int | None = None, unit: str = "doc") -> Iterator[T]:
    """`items`, passed through a bar that is silent unless stderr is a TTY."""
    # disable=None is tqdm's "off when the stream is not a TTY".
    return iter(tqdm(items, desc=description, total=total, unit=unit, unit_scale=True, file=sys.stderr, disable=None, mininterval=0.5))
