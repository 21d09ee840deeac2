"""One exception type for every user-facing error.

A `PicoError` carries a single sentence that names the file, key or value, what was wrong,
and what is allowed. Stage entry points catch it, print the sentence, and exit non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class PicoError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""


def exit_on_pico_error(main: F) -> F:
    """Decorate a CLI/stage `main` so a PicoError becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PicoError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
