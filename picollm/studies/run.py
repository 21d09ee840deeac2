"""One study point: train it with the shared loop and score it; the overfitting study's data and samples."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np

from picollm import paths, tokenizer
from picollm.data.prepare import read_split
from picollm.data.tokens import TokenStream, write_token_cache
from picollm.errors import PicoError
from picollm.evaluate import eval_metrics
from picollm.generation import generate
from picollm.io import read_json, write_json
from picollm.models.loading import load_model
from picollm.sampling import SamplingConfig
from picollm.studies.plan import OVERFIT_DIR, point_checkpoint, point_resume_dir, point_spec, point_train
from picollm.train import TrainJob, train_model

# ------------------------------------------------------------------------------ token prefixes
def eot_positions(stream, eot_id: int):
    return np.flatnonzero(np.asarray(stream.tokens) == eot_id)


def first_documents(stream, eot_id: int, docs: int, what: str):
    """The stream cut after its `docs`-th document (the cache is `<eot> doc <eot> doc ... <eot>`)."""
    ends = eot_positions(stream, eot_id)
    available = len(ends) - 1
    if docs > available:
        raise PicoError(f"{what} asks for {docs} documents, but {stream.path} holds only {available}; lower it")
    return TokenStream(stream.path, stream.tokens[: int(ends[docs]) + 1])


def stream_bytes(stream, tok) -> int:
    """UTF-8 bytes of the documents in a stream (separators excluded): the bits-per-byte divisor."""
    ids = np.asarray(stream.tokens)
    return len(tok.decode_bytes(ids[ids != tok.eot_id].tolist()))


# ------------------------------------------------------------------------------ overfitting data
def overfitting_split(texts: list[str], train_fraction: float) -> dict[str, list[str]]:
    n_train = round(len(texts) * train_fraction)
    return {"train": texts[:n_train], "test": texts[n_train:]}


def prepare_overfitting(params) -> dict:
    """The first N train documents, split train/test, tokenized into OVERFIT_DIR's small caches."""
    section = params.sweeps.overfitting
    docs = read_split(paths.PREPARED_DIR, "train")
    if len(docs) < section.documents:
        raise PicoError(
            f"sweeps.overfitting.documents = {section.documents}, but the train split holds only {len(docs)} documents; lower it"
        )
    split = overfitting_split([d.text for d in docs[: section.documents]], section.train_fraction)
    tok = tokenizer.load(paths.TOKENS_DIR)
    counts = {}
    for name, cache in (("train", "train.bin"), ("test", "val.bin")):  # the loop evaluates on val.bin
        counts[name] = write_token_cache(split[name], tok, OVERFIT_DIR / cache, threads=1)
    write_json(OVERFIT_DIR / "texts.json", split)
    summary = {name: {"documents": len(split[name]), "tokens": c["tokens"], "bytes": c["bytes"]} for name, c in counts.items()}
    write_json(OVERFIT_DIR / "meta.json", {"tokenizer": tok.identity, "splits": summary})
    return summary


# ------------------------------------------------------------------------------ memorisation
_WORD = re.compile(r"\S+")


def split_prompt(text: str, words: int) -> tuple[str, str]:
    """(the first `words` words with their original spacing, the rest of the text)."""
    matches = list(_WORD.finditer(text))
    if not matches:
        return "", text
    end = matches[min(words, len(matches)) - 1].end()
    return text[:end], text[end:]


def longest_overlap(words: list[str], corpus: list[str]) -> int:
    """The longest run of consecutive `words` that occurs verbatim (word for word) in one corpus text."""
    padded = [f" {' '.join(text.split())} " for text in corpus]
    best = 0
    for start in range(len(words)):
        length = best + 1  # only a longer run can matter
        while start + length <= len(words) and any(f" {' '.join(words[start:start + length])} " in t for t in padded):
            best = length
            length += 1
    return best


def matching_prefix(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def memorisation_samples(model, tok, texts: dict[str, list[str]], prompt_words: int, samples: int, max_new_tokens: int) -> list[dict]:
    """Greedy continuations of the first words of train and test documents, with their overlaps."""
    rows = []
    for part in ("train", "test"):
        for index, text in enumerate(texts[part][:samples]):
            prompt, rest = split_prompt(text, prompt_words)
            ids = list(generate(model, [tok.eot_id, *tok.encode(prompt)], max_new_tokens=max_new_tokens,
                                sampling=SamplingConfig(greedy=True), eot_id=tok.eot_id))
            continuation = tok.decode(ids)
            words = continuation.split()
            # The same test on the document's real text (as many words) against the other training
            # documents: how much any text of this corpus shares with it, memorised or not.
            others = [t for i, t in enumerate(texts["train"]) if part != "train" or i != index]
            rows.append({
                "part": part,
                "document": index,
                "prompt": prompt,
                "continuation": continuation,
                "words": len(words),
                "longest_overlap_words": longest_overlap(words, texts["train"]),
                "reference_overlap_words": longest_overlap(rest.split()[: max(1, len(words))], others),
                "source_match_words": matching_prefix(words, rest.split()),
            })
    return rows


# ------------------------------------------------------------------------------ one point
def run_point(params, sweep: str, key: str, point: dict[str, Any]) -> tuple[dict, dict]:
    """Train and score one point; returns (its metrics, its timings)."""
    began = time.perf_counter()
    meta = read_json(paths.TOKENS_META)
    tok = tokenizer.load(paths.TOKENS_DIR)
    train = point_train(params, sweep, point)
    spec = point_spec(params, sweep, point)
    eval_docs = params.sweeps.eval_docs
    splits = {s: TokenStream.open(paths.TOKENS_DIR / f"{s}.bin", tok.vocab_size) for s in ("train", "val", "test")}

    token_dir, limit, train_docs = paths.TOKENS_DIR, None, len(eot_positions(splits["train"], tok.eot_id)) - 1
    if sweep == "corpus_size":
        used = first_documents(splits["train"], tok.eot_id, point["docs"], f"sweeps.corpus_size.docs = {point['docs']}")
        limit, train_docs = len(used), point["docs"]
        used.check_block_size(train.block_size, f"the corpus_size point {key}'s")
        scored = {"train": first_documents(used, tok.eot_id, min(point["docs"], eval_docs), "sweeps.eval_docs")}
    elif sweep == "overfitting":
        token_dir = OVERFIT_DIR
        small = {s: TokenStream.open(OVERFIT_DIR / cache, tok.vocab_size) for s, cache in (("train", "train.bin"), ("test", "val.bin"))}
        train_docs = len(eot_positions(small["train"], tok.eot_id)) - 1
        scored = {"train": small["train"]}
    else:
        scored = {"train": first_documents(splits["train"], tok.eot_id, min(eval_docs, train_docs), "sweeps.eval_docs")}
    for split in ("val", "test"):
        stream = splits[split]
        scored[split] = first_documents(stream, tok.eot_id, min(eval_docs, len(eot_positions(stream, tok.eot_id)) - 1), "sweeps.eval_docs")
    if sweep == "overfitting":
        scored["test"] = small["test"]

    job = TrainJob(
        name=point["model"], spec=spec, train=train, seed=params.seed, token_dir=token_dir,
        vocab_size=meta["vocab_size"], eot_id=meta["eot_id"], tokenizer_identity=meta["identity"],
        model_out=point_checkpoint(sweep, key), checkpoint_dir=point_resume_dir(sweep, key), train_token_limit=limit,
    )
    result = train_model(job)
    model = load_model(job.model_out, tok)
    split_bytes = {split: stream_bytes(stream, tok) for split, stream in scored.items()}
    scores = eval_metrics(model, scored, split_bytes, train.block_size, None, meta["unigram_val_bpb"])

    metrics: dict[str, Any] = {
        "sweep": sweep,
        "point": key,
        **point,
        "steps": train.steps,
        "batch_size": train.batch_size,
        "block_size": train.block_size,
        "lr": train.lr,
        "train_docs": train_docs,
        "train_tokens": train.steps * train.batch_size * train.block_size,
        "params": result.num_params,
        "train_loss": scores["train_loss"],
        "val_loss": scores["val_loss"],
        "test_loss": scores["test_loss"],
        "val_bpb": scores["val_bpb"],
        "history": result.history,
    }
    if sweep == "overfitting":
        section = params.sweeps.overfitting
        texts = read_json(OVERFIT_DIR / "texts.json")
        metrics["samples"] = memorisation_samples(model, tok, texts, section.prompt_words, section.samples, section.max_new_tokens)
    trained_tokens = (train.steps - result.resumed_from) * train.batch_size * train.block_size
    timings = {
        "sweep": sweep,
        "point": key,
        "train_seconds": round(result.seconds, 3),
        "tokens_per_second": round(trained_tokens / max(result.seconds, 1e-9), 1),
        "elapsed_seconds": round(time.perf_counter() - began, 3),
    }
    return metrics, timings
