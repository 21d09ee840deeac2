"""Stage `prepare`: pick the source, mix in custom text, deduplicate, split, and measure the floor.

Output: one JSON-lines file per split (`{"text", "source", "logprob"}` per document) and the
corpus statistics, including the entropy floor when every document's exact log-probability is
known (the embedded story generator records it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from picollm.config import DataParams
from picollm.data.split import Document, deduplicate, mix_documents, split_documents
from picollm.errors import PicoError
from picollm.io import atomic_open

SPLITS = ("train", "val", "test")


def load_source(data: DataParams, seed: int) -> list[Document]:
    if data.source == "stories":
        from picollm.data.stories import generate_stories

        return [Document(s.text, "stories", s.logprob, s.name_logprob) for s in generate_stories(data.stories.count, seed)]
    if data.source == "tinystories":
        from picollm.data.tinystories import load_tinystories

        texts = load_tinystories(subset=data.tinystories.subset, path=data.tinystories.path)
        return [Document(text, "tinystories", None) for text in texts]
    from picollm.data.text_source import load_text_documents

    texts = load_text_documents(data.text.paths, mode=data.text.mode, key="data.text.paths")
    return [Document(text, "text", None) for text in texts]


def build_corpus(data: DataParams, seed: int) -> dict[str, list[Document]]:
    docs = deduplicate(load_source(data, seed))
    if data.mix.paths and data.mix.weight > 0:
        from picollm.data.text_source import load_text_documents

        custom_texts = load_text_documents(data.mix.paths, mode=data.mix.mode, key="data.mix.paths")
        # Deduplicate each source first, so repeats cannot pull the custom share below its weight.
        custom = deduplicate([Document(t, "text", None) for t in custom_texts])
        docs = mix_documents(docs, custom, custom_weight=data.mix.weight, limit_custom=data.mix.limit, seed=seed)
    docs = deduplicate(docs)
    if not docs:
        raise PicoError(f"data.source = {data.source!r} produced no documents after filtering; check its inputs")
    return split_documents(docs, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=seed)


def corpus_stats(splits: dict[str, list[Document]]) -> dict:
    stats: dict = {"splits": {}}
    for name in SPLITS:
        docs = splits[name]
        stats["splits"][name] = {
            "documents": len(docs),
            "bytes": sum(len(d.text.encode("utf-8")) for d in docs),
            "sources": {src: sum(d.source == src for d in docs) for src in sorted({d.source for d in docs})},
        }
    val = splits["val"]
    if val and all(d.logprob is not None for d in val):
        nats = -sum(d.logprob for d in val)
        stats["entropy_floor_nats_per_story"] = round(nats / len(val), 6)
        stats["entropy_floor_bpb"] = round(nats / math.log(2) / stats["splits"]["val"]["bytes"], 6)
        if all(d.name_logprob is not None for d in val):
            # The floor's share on first mentions of names (see picollm/loss_classes.py).
            stats["entropy_floor_name_nats_per_story"] = round(-sum(d.name_logprob for d in val) / len(val), 6)
    else:
        # Only the embedded generator knows each document's exact probability.
        stats["entropy_floor_bpb"] = None
    return stats


def write_splits(splits: dict[str, list[Document]], directory: str | Path) -> None:
    for name in SPLITS:
        with atomic_open(Path(directory) / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for doc in splits[name]:
                handle.write(json.dumps({"text": doc.text, "source": doc.source, "logprob": doc.logprob}) + "\n")


def read_split(directory: str | Path, name: str) -> list[Document]:
    path = Path(directory) / f"{name}.jsonl"
    if not path.is_file():
        raise PicoError(f"{path} does not exist; run `dvc repro prepare` first")
    try:
        with open(path, encoding="utf-8") as handle:
            return [Document(**json.loads(line)) for line in handle]
    except (ValueError, TypeError) as err:  # JSON, UTF-8 and field errors alike
        raise PicoError(f"{path} is damaged ({type(err).__name__}); rerun `dvc repro prepare`") from None
