"""Atomic, crash-safe file output.

Every output the pipeline writes goes through here: write to a temporary file in the same
directory, fsync it, then rename over the target. A crash (or a full disk) at any moment leaves
either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from picollm.errors import PicoError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates its file with mode 0600; an output must get the mode a plain open() would give.
_FILE_MODE = 0o666 & ~_current_umask()


def temp_name_pattern(path: str | os.PathLike) -> str:
    """The glob matching the temporary files `atomic_open(path)` creates beside `path`."""
    return f".{Path(path).name}.*.tmp"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync and rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a full disk, a read-only or missing parent, a file where a folder should be
        raise PicoError(_write_failure(path, err)) from err
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as err:
        _remove_quietly(tmp_name)
        raise PicoError(_write_failure(path, err)) from err
    except BaseException:
        _remove_quietly(tmp_name)
        raise
    _fsync_dir(path.parent)


def _write_failure(path: Path, err: OSError) -> str:
    remedy = {
        errno.ENOSPC: "; free some disk space and rerun",
        errno.EDQUOT: "; free some disk space (you are over quota) and rerun",
        errno.EFBIG: "; the file is larger than the file system or `ulimit -f` allows, so raise that limit and rerun",
    }.get(err.errno, "")
    return f"could not write {path}: {err.strerror or err}{remedy}; the previous file, if any, is untouched"


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, payload: object) -> None:
    """Deterministic JSON: sorted keys, fixed indentation, trailing newline."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> object:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PicoError(f"{path} does not exist; run the stage that produces it (dvc repro)") from None
    except json.JSONDecodeError as err:
        raise PicoError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); rerun the stage that produces it") from None
    except UnicodeDecodeError as err:
        raise PicoError(f"{path} is not valid JSON (byte {err.start} is not UTF-8); rerun the stage that produces it") from None
    except OSError as err:
        raise PicoError(f"{path} could not be read ({err.strerror or err}); it should be a JSON file") from None


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_quietly(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is flushed.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_marked_block(path: Path, text: str, marker: str) -> None:
    """Replace what lies between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->` with `text`."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    document = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(document):
        raise PicoError(f"{path} has no '{begin}' ... '{end}' section for the {marker} text; add the two markers")
    write_text(path, pattern.sub(lambda _: f"{begin}\n{text}{end}", document))
