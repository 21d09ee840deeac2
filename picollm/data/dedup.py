"""Exact de-duplication of a stream of texts, in memory that grows by 16 bytes per distinct text.

`TextDeduplicator.add(text)` answers "is this text new?" exactly as a set of the texts would,
without keeping the texts in memory: each distinct text costs its 64-bit hash and the offset of
its UTF-8 bytes in an unnamed scratch file on disk (removed when closed, or by the OS when the
process dies). A text whose hash matches an earlier one is compared byte for byte with every
earlier text of that hash, read back from the scratch file, so two different texts that share a
hash are both kept. Only true duplicates (and the rare 64-bit hash collision) are read back.

The hashes live in two sorted numpy arrays (hash, offset), merged with a small dict of the
most recent ones every MERGE_EVERY texts, so a lookup is a binary search. The hash is Python's
own `hash(str)`, computed once per string and cached on it; it varies between processes, which
changes nothing but which texts get compared.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

MERGE_EVERY = 1 << 16


def text_hash(text: str) -> int:
    """The 64-bit key a text is filed under (equal texts, equal keys; collisions are re-checked)."""
    return hash(text)


class TextDeduplicator:
    def __init__(self, scratch_dir: str | Path | None = None):
        if scratch_dir is not None:
            Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        self._scratch = tempfile.TemporaryFile(dir=scratch_dir)
        self._end = 0
        self._unflushed = False
        self._hashes = np.empty(0, dtype=np.int64)
        self._offsets = np.empty(0, dtype=np.int64)
        self._recent: dict[int, list[int]] = {}
        self.distinct = 0

    def __enter__(self) -> TextDeduplicator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._scratch.close()

    def add(self, text: str, data: bytes | None = None) -> bool:
        """True (and remember it) when `text` was not added before; `data` is its UTF-8, if at hand."""
        key = text_hash(text)
        data = text.encode("utf-8") if data is None else data
        for offset in self._offsets_of(key):
            if self._read(offset) == data:
                return False
        offset = self._end
        self._scratch.write(len(data).to_bytes(8, "little"))
        self._scratch.write(data)
        self._end += 8 + len(data)
        self._unflushed = True
        self._recent.setdefault(key, []).append(offset)
        self.distinct += 1
        if len(self._recent) >= MERGE_EVERY:
            self._merge()
        return True

    def _offsets_of(self, key: int) -> list[int]:
        found = list(self._recent.get(key, ()))
        index = int(np.searchsorted(self._hashes, key))
        while index < len(self._hashes) and self._hashes[index] == key:
            found.append(int(self._offsets[index]))
            index += 1
        return found

    def _read(self, offset: int) -> bytes:
        if self._unflushed:
            self._scratch.flush()
            self._unflushed = False
        descriptor = self._scratch.fileno()
        size = int.from_bytes(os.pread(descriptor, 8, offset), "little")
        return os.pread(descriptor, size, offset + 8)

    def _merge(self) -> None:
        keys = np.fromiter((key for key, offsets in self._recent.items() for _ in offsets), dtype=np.int64)
        offsets = np.fromiter((offset for offsets in self._recent.values() for offset in offsets), dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        keys, offsets = keys[order], offsets[order]
        positions = np.searchsorted(self._hashes, keys)
        self._hashes = np.insert(self._hashes, positions, keys)
        self._offsets = np.insert(self._offsets, positions, offsets)
        self._recent = {}
