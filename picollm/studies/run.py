"""One study point: train it with the shared loop and score it; a study's noise point, once per seed."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from picollm import paths, tokenizer
from picollm.data.tokens import TokenStream
from picollm.errors import PicoError
from picollm.evaluate import eval_metrics
from picollm.io import read_json
from picollm.models.loading import load_model
from picollm.studies.memorisation import CACHES, memorisation_samples
from picollm.studies.plan import (
    noise_point,
    point_checkpoint,
    point_key,
    point_resume_dir,
    point_spec,
    point_train,
    study_data_dir,
)
from picollm.train import TrainJob, train_model

SPLITS = ("train", "val", "test")


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


def document_count(stream, eot_id: int) -> int:
    return len(eot_positions(stream, eot_id)) - 1


def stream_bytes(stream, tok) -> int:
    """UTF-8 bytes of the documents in a stream (separators excluded): the bits-per-byte divisor."""
    ids = np.asarray(stream.tokens)
    return len(tok.decode_bytes(ids[ids != tok.eot_id].tolist()))


def scoring_streams(params, study: str, point: dict[str, Any], block_size: int, tok) -> tuple[dict, dict]:
    """(what the point trains on: token_dir, limit, train_docs, corpus_tokens; the streams it is scored on)."""
    section = params.sweeps.study(study)
    eval_docs = params.sweeps.eval_docs
    splits = {s: TokenStream.open(paths.TOKENS_DIR / f"{s}.bin", tok.vocab_size) for s in SPLITS}
    source = splits["train"]
    training: dict[str, Any] = {"token_dir": paths.TOKENS_DIR, "limit": None}
    if section.OWN_DATA:
        training["token_dir"] = study_data_dir(study)
        own = {s: TokenStream.open(training["token_dir"] / cache, tok.vocab_size) for s, cache in CACHES}
        source = own["train"]
        splits["test"] = own["test"]
    docs = section.corpus_docs(point)
    if docs is not None:
        source = first_documents(source, tok.eot_id, docs, f"sweeps.{study}.docs = {docs}")
        source.check_block_size(block_size, f"the {study} point {point_key(point)}'s")
        training.update(limit=len(source), corpus_tokens=len(source))
    training["train_docs"] = document_count(source, tok.eot_id)
    scored = {"train": source if section.OWN_DATA else first_documents(source, tok.eot_id, min(eval_docs, training["train_docs"]), "sweeps.eval_docs")}
    for split in ("val", "test"):
        stream = splits[split]
        scored[split] = stream if section.OWN_DATA and split == "test" else first_documents(
            stream, tok.eot_id, min(eval_docs, document_count(stream, tok.eot_id)), "sweeps.eval_docs")
    return training, scored


# ------------------------------------------------------------------------------ one point
def run_point(params, study: str, key: str, point: dict[str, Any], seed: int | None = None) -> tuple[dict, dict]:
    """Train and score one point (with `seed`: one noise rerun); returns (its metrics, its timings)."""
    began = time.perf_counter()
    noise = seed is not None
    seed = params.seed if seed is None else seed
    meta = read_json(paths.TOKENS_META)
    tok = tokenizer.load(paths.TOKENS_DIR)
    train = point_train(params, study, point)
    training, scored = scoring_streams(params, study, point, train.block_size, tok)
    job = TrainJob(
        name=point["model"], spec=point_spec(params, study, point), train=train, seed=seed, token_dir=training["token_dir"],
        vocab_size=meta["vocab_size"], eot_id=meta["eot_id"], tokenizer_identity=meta["identity"],
        model_out=point_checkpoint(study, key, seed if noise else None),
        checkpoint_dir=point_resume_dir(study, key, seed if noise else None), train_token_limit=training["limit"],
    )
    result = train_model(job)
    model = load_model(job.model_out, tok)
    split_bytes = {split: stream_bytes(stream, tok) for split, stream in scored.items()}
    scores = eval_metrics(model, scored, split_bytes, train.block_size, None, meta["unigram_val_bpb"], eot_id=tok.eot_id)

    metrics: dict[str, Any] = {
        "sweep": study, "point": key, **point, "seed": seed,
        "steps": train.steps, "batch_size": train.batch_size, "block_size": train.block_size, "lr": train.lr,
        "train_docs": training["train_docs"], "train_tokens": train.steps * train.batch_size * train.block_size,
        **({"corpus_tokens": training["corpus_tokens"]} if "corpus_tokens" in training else {}),
        "params": result.num_params,
        **{f"{split}_loss": scores[f"{split}_loss"] for split in SPLITS},
        "val_bpb": scores["val_bpb"], "unigram_val_bpb": scores["unigram_val_bpb"],
        "history": result.history,
    }
    section = params.sweeps.study(study)
    if section.MEMORISATION and not noise:
        texts = read_json(study_data_dir(study) / "texts.json")
        metrics["samples"] = memorisation_samples(model, tok, texts, section.prompt_words, section.samples, section.max_new_tokens)
    trained_tokens = (train.steps - result.resumed_from) * train.batch_size * train.block_size
    timings = {
        "sweep": study, "point": key, "seed": seed,
        "train_seconds": round(result.seconds, 3),
        "tokens_per_second": round(trained_tokens / max(result.seconds, 1e-9), 1),
        "elapsed_seconds": round(time.perf_counter() - began, 3),
    }
    return metrics, timings


def run_noise(params, study: str) -> tuple[dict, dict]:
    """The study's noise point trained once per seed of sweeps.noise_seeds: (metrics, timings)."""
    point = noise_point(params, study)
    key = point_key(point)
    runs = [run_point(params, study, key, point, seed=seed) for seed in params.sweeps.noise_seeds]
    head = {"sweep": study, "point": key, **point}
    return {**head, "runs": [m for m, _ in runs]}, {**head, "runs": [t for _, t in runs]}
