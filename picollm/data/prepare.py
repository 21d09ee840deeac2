"""Stage `prepare`: pick the source, mix in custom text, deduplicate, split, and measure the floor.

Output: one JSON-lines file per split (`{"text", "source", "logprob"}` per document) and the
corpus statistics, including the entropy floor when every document's exact log-probability is
known (the embedded story generator records it).

`prepare_corpus` streams: every source is read one document at a time, de-duplicated exactly
(`picollm.data.dedup`), routed to its split by hash and appended to that split's file, so memory
does not grow with the corpus beyond 16 bytes per distinct document (docs/data.md). The three
files appear only when everything succeeded. `build_corpus` + `write_splits` is the same rule
on lists in memory: the specification the tests hold the streaming path to, byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from picollm.config import END_OF_TEXT, DataParams, MixParams
from picollm.data.dedup import TextDeduplicator
from picollm.data.progress import progress
from picollm.data.split import (
    Document,
    check_fractions,
    check_split_sizes,
    deduplicate,
    mix_documents,
    split_at,
    split_documents,
    unit_hash,
    unit_hash_bits,
)
from picollm.errors import PicoError
from picollm.io import atomic_open

SPLITS = ("train", "val", "test")


def iter_source(data: DataParams, seed: int) -> Iterator[Document]:
    """The main source's documents, one at a time, before de-duplication."""
    if data.source == "stories":
        from picollm.data.stories import iter_stories

        return (Document(s.text, "stories", s.logprob, s.name_logprob) for s in iter_stories(data.stories.count, seed))
    if data.source == "tinystories":
        from picollm.data.tinystories import iter_tinystories

        texts = iter_tinystories(subset=data.tinystories.subset, path=data.tinystories.path)
        return (Document(text, "tinystories", None) for text in texts)
    return _text_documents(data.text.paths, data.text, "data.text.paths")


def load_source(data: DataParams, seed: int) -> list[Document]:
    return list(iter_source(data, seed))


def _text_documents(paths: list[str], text_format, key: str) -> Iterator[Document]:
    from picollm.data.text_source import iter_text_documents

    texts = iter_text_documents(paths, mode=text_format.mode, separator=text_format.separator, key=key)
    return (Document(text, "text", None) for text in texts)


# ------------------------------------------------------------------------------ streaming


def prepare_corpus(data: DataParams, seed: int, directory: str | Path) -> dict:
    """Write `directory`/{train,val,test}.jsonl from the sources, streaming; returns `corpus_stats`."""
    check_fractions(data.val_fraction, data.test_fraction)
    mixing = bool(data.mix.paths) and data.mix.weight > 0
    with SplitWriter(directory, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=seed) as writer:
        with TextDeduplicator(writer.directory) as seen:
            main_documents = 0
            if not (mixing and data.mix.weight == 1):  # weight 1 asks for custom text only
                for doc in progress(iter_source(data, seed), f"prepare: reading {data.source}", total=_known_size(data)):
                    data_bytes = doc.text.encode("utf-8")
                    if seen.add(doc.text, data_bytes):
                        writer.add(doc, data_bytes)
                        main_documents += 1
            if mixing:
                for doc in chosen_custom_documents(data.mix, main_documents, seed, scratch_dir=writer.directory):
                    data_bytes = doc.text.encode("utf-8")
                    if seen.add(doc.text, data_bytes):  # custom text that repeats a main document adds nothing
                        writer.add(doc, data_bytes)
        if not writer.stats.documents:
            raise PicoError(f"data.source = {data.source!r} produced no documents after filtering; check its inputs")
        writer.check_sizes()
    return writer.stats.result()


def chosen_custom_documents(mix: MixParams, main_documents: int, seed: int, scratch_dir: Path | None = None) -> Iterator[Document]:
    """`mix_documents`' choice of custom documents, in two passes over the custom files.

    Pass one de-duplicates and ranks every distinct custom document by its seeded hash (8 bytes
    each); pass two reads the files again and yields the chosen ones in file order.
    """
    first_seen = bytearray()  # one flag per custom document read: 1 if its text was new
    ranks = array("Q")  # the 53-bit sample rank of each distinct custom document, 8 bytes each
    with TextDeduplicator(scratch_dir) as seen:
        for doc in progress(_text_documents(mix.paths, mix, "data.mix.paths"), "prepare: ranking custom text"):
            new = seen.add(doc.text)
            first_seen.append(new)
            if new:
                ranks.append(unit_hash_bits(seed, "sample", doc.text.encode("utf-8")))
    available = len(ranks) if mix.limit is None else min(len(ranks), mix.limit)
    if not available:
        raise PicoError(f"data.mix.weight is {mix.weight} but there are no custom documents to mix in; add custom text or set the weight to 0")
    count = available if mix.weight == 1 else min(available, round(mix.weight / (1 - mix.weight) * main_documents))
    chosen = np.zeros(len(ranks), dtype=bool)
    chosen[np.lexsort((np.arange(len(ranks)), np.frombuffer(ranks, dtype=np.uint64)))[:count]] = True  # rank order, ties by position
    del ranks
    distinct = 0
    documents = _text_documents(mix.paths, mix, "data.mix.paths")
    for new, doc in zip(first_seen, progress(documents, "prepare: mixing custom text", total=len(first_seen))):
        if new:
            if chosen[distinct]:
                yield doc
            distinct += 1


class SplitWriter:
    """Appends each document to its split's JSON-lines file; the files appear only on success.

    Every file is written through `atomic_open`, so a failure anywhere (a bad input found late
    in the stream, an empty split) leaves the previous outputs untouched, and the folder is
    removed again if this writer created it (with any parents it created).
    """

    def __init__(self, directory: str | Path, *, val_fraction: float, test_fraction: float, seed: int):
        self.directory = Path(directory)
        self.fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction}
        self.seed = seed
        self.stats = CorpusStats()
        self._created = [folder for folder in (self.directory, *self.directory.parents) if not folder.exists()]
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> SplitWriter:
        try:
            self.handles = {
                name: self._stack.enter_context(atomic_open(self.directory / f"{name}.jsonl", "w", encoding="utf-8")) for name in SPLITS
            }
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            # On success each file is renamed into place; on failure each is dropped instead.
            return self._stack.__exit__(kind, error, traceback)
        finally:
            if kind is not None:
                with contextlib.suppress(OSError):
                    for folder in self._created:  # deepest first; rmdir refuses a folder that is not empty
                        folder.rmdir()

    def add(self, doc: Document, data: bytes) -> None:
        if END_OF_TEXT in doc.text:  # every source already refuses or cuts it; this keeps the promise whole
            raise PicoError(f"a document from data.source {doc.source!r} holds {END_OF_TEXT}, which is never part of a document")
        split = split_at(unit_hash(self.seed, "split", data), **self.fractions)
        self.handles[split].write(document_line(doc))
        self.stats.add(split, doc, len(data))

    def check_sizes(self) -> None:
        check_split_sizes(self.stats.sizes(), seed=self.seed, **self.fractions)


def _known_size(data: DataParams) -> int | None:
    return data.stories.count if data.source == "stories" else None


# ------------------------------------------------------------------------------ statistics


class CorpusStats:
    """Counts, bytes and sources per split, and the val split's exact log-probability, as documents come."""

    def __init__(self):
        self.splits = {name: {"documents": 0, "bytes": 0, "sources": Counter()} for name in SPLITS}
        self.val_logprob = 0.0
        self.val_name_logprob = 0.0
        self.val_exact = self.val_names_exact = True

    @property
    def documents(self) -> int:
        return sum(self.sizes().values())

    def sizes(self) -> dict[str, int]:
        return {name: part["documents"] for name, part in self.splits.items()}

    def add(self, split: str, doc: Document, size: int) -> None:
        part = self.splits[split]
        part["documents"] += 1
        part["bytes"] += size
        part["sources"][doc.source] += 1
        if split == "val":  # summed in document order, as sum() over the split's list would
            if doc.logprob is None:
                self.val_exact = False
            else:
                self.val_logprob += doc.logprob
            if doc.name_logprob is None:
                self.val_names_exact = False
            else:
                self.val_name_logprob += doc.name_logprob

    def result(self) -> dict:
        stats: dict = {"splits": {}}
        for name, part in self.splits.items():
            stats["splits"][name] = {**part, "sources": dict(sorted(part["sources"].items()))}
        val = stats["splits"]["val"]
        if val["documents"] and self.val_exact:
            nats = -self.val_logprob
            stats["entropy_floor_nats_per_story"] = round(nats / val["documents"], 6)
            stats["entropy_floor_bpb"] = round(nats / math.log(2) / val["bytes"], 6)
            if self.val_names_exact:
                # The floor's share on first mentions of names (see picollm/loss_classes.py).
                stats["entropy_floor_name_nats_per_story"] = round(-self.val_name_logprob / val["documents"], 6)
        else:
            # Only the embedded generator knows each document's exact probability.
            stats["entropy_floor_bpb"] = None
        return stats


def corpus_stats(splits: dict[str, list[Document]]) -> dict:
    stats = CorpusStats()
    for name in SPLITS:
        for doc in splits[name]:
            stats.add(name, doc, len(doc.text.encode("utf-8")))
    return stats.result()


# ------------------------------------------------------------------------------ in memory


def build_corpus(data: DataParams, seed: int) -> dict[str, list[Document]]:
    """The corpus as lists: what `prepare_corpus` writes, for corpora that fit in memory."""
    docs = deduplicate(load_source(data, seed))
    if data.mix.paths and data.mix.weight > 0:
        custom_texts = [doc.text for doc in _text_documents(data.mix.paths, data.mix, "data.mix.paths")]
        # Deduplicate each source first, so repeats cannot pull the custom share below its weight.
        custom = deduplicate([Document(t, "text", None) for t in custom_texts])
        docs = mix_documents(docs, custom, custom_weight=data.mix.weight, limit_custom=data.mix.limit, seed=seed)
    docs = deduplicate(docs)
    if not docs:
        raise PicoError(f"data.source = {data.source!r} produced no documents after filtering; check its inputs")
    return split_documents(docs, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=seed)


def document_line(doc: Document) -> str:
    return json.dumps({"text": doc.text, "source": doc.source, "logprob": doc.logprob}) + "\n"


def write_splits(splits: dict[str, list[Document]], directory: str | Path) -> None:
    for name in SPLITS:
        with atomic_open(Path(directory) / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for doc in splits[name]:
                handle.write(document_line(doc))


# ------------------------------------------------------------------------------ reading back


def iter_split(directory: str | Path, name: str) -> Iterator[Document]:
    """The documents of a prepared split, one at a time (checked to exist before the first)."""
    path = _split_path(directory, name)
    return _read_documents(path)


def _read_documents(path: Path) -> Iterator[Document]:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                yield Document(**json.loads(line))
    except (ValueError, TypeError) as err:  # JSON, UTF-8 and field errors alike
        raise PicoError(f"{path} is damaged ({type(err).__name__}); rerun `dvc repro prepare`") from None


def read_split(directory: str | Path, name: str) -> list[Document]:
    return list(iter_split(directory, name))


def count_documents(directory: str | Path, name: str) -> int:
    """The number of documents (lines) in a prepared split, without parsing them."""
    lines = 0
    with open(_split_path(directory, name), "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def _split_path(directory: str | Path, name: str) -> Path:
    path = Path(directory) / f"{name}.jsonl"
    if not path.is_file():
        raise PicoError(f"{path} does not exist; run `dvc repro prepare` first")
    return path
