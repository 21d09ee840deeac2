"""Token caches: one flat array per split, memory-mapped for training and evaluation.

Layout: `<|eot|> doc_1 <|eot|> doc_2 <|eot|> ... doc_n <|eot|>`. The leading separator means
every document is predicted from the same "start of text" context, and the trailing one means
a model pays for knowing where each document ends, exactly like the story generator does.
Ids are uint16 while the vocab fits (uint32 beyond 65535).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from picollm.data.split import unit_hash
from picollm.errors import PicoError
from picollm.io import atomic_open
from picollm.tokenizer import Tokenizer

if TYPE_CHECKING:
    import torch

ENCODE_CHUNK = 4096  # documents per encode_stream call: bounded memory, still parallel
READ_CHUNK_TOKENS = 1 << 22  # tokens read back at a time (the unigram baseline's pass over val)
BPE_SAMPLE_BYTES = 256_000_000  # a larger train split trains the BPE on a sample of about this size


def encode_stream(tokenizer: Tokenizer, texts: list[str], threads: int, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """The cache's ids of `texts`: each document's ids, then the end-of-text id (`token_dtype`).

    Each of `threads` threads encodes one contiguous slice in one call
    (`Tokenizer.encode_documents`), and tiktoken releases the GIL while it encodes, so the threads
    run in parallel. One call per document instead (`encode` per text, or tiktoken's
    `encode_ordinary_batch`, one task per document) spends much of its time holding the GIL
    between short stories (`picollm.bench.tokenizer_speed`, docs/performance.md).
    """
    dtype = token_dtype(tokenizer.vocab_size)
    if threads <= 1 or len(texts) < 2 * threads:
        return tokenizer.encode_documents(texts).astype(dtype, copy=False)
    size = -(-len(texts) // threads)
    parts = [texts[start : start + size] for start in range(0, len(texts), size)]
    own = pool is None
    pool = pool or ThreadPoolExecutor(threads)
    try:
        results = list(pool.map(lambda part: tokenizer.encode_documents(part).astype(dtype, copy=False), parts))
    finally:
        if own:
            pool.shutdown()
    return np.concatenate(results)


def bpe_training_texts(texts: Iterable[str], split_bytes: int) -> Iterator[str]:
    """What the BPE learns from: all of `texts` when their split file is at most BPE_SAMPLE_BYTES.

    A larger split gives a sample of about BPE_SAMPLE_BYTES: each document is kept when a hash of
    its text falls below BPE_SAMPLE_BYTES / `split_bytes`, so the sample is spread over the whole
    split, the same on every run, and the BPE's time and memory stop growing with the corpus.
    """
    if split_bytes <= BPE_SAMPLE_BYTES:
        return iter(texts)
    share = BPE_SAMPLE_BYTES / split_bytes
    return (text for text in texts if unit_hash(0, "bpe-sample", text.encode("utf-8")) < share)


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def write_token_cache(texts: Iterable[str], tokenizer: Tokenizer, path: str | Path, threads: int) -> dict:
    """Encode `texts` into the cache file `path` (see `encode_into`)."""
    with atomic_open(path, "wb") as handle:
        return encode_into(handle, texts, tokenizer, threads)


def encode_into(handle: BinaryIO, texts: Iterable[str], tokenizer: Tokenizer, threads: int) -> dict:
    """Write the token cache of `texts` to `handle`, ENCODE_CHUNK documents at a time, streaming.

    Returns the number of tokens, of UTF-8 bytes encoded, the seconds spent encoding, and
    `counts`: how often each token id occurs in the cache (the unigram baseline's fit).
    """
    dtype = token_dtype(tokenizer.vocab_size)
    eot = tokenizer.eot_id
    counts = np.zeros(tokenizer.vocab_size, dtype=np.int64)
    counts[eot] = 1
    total_tokens, total_bytes, seconds = 1, 0, 0.0
    texts = iter(texts)
    handle.write(np.array([eot], dtype=dtype).tobytes())
    with ThreadPoolExecutor(max(1, threads)) as pool:
        while chunk := list(itertools.islice(texts, ENCODE_CHUNK)):
            began = time.perf_counter()
            tokens = encode_stream(tokenizer, chunk, threads, pool)
            seconds += time.perf_counter() - began
            total_bytes += sum(len(t.encode("utf-8")) for t in chunk)
            handle.write(tokens.tobytes())
            counts += np.bincount(tokens, minlength=len(counts))
            total_tokens += len(tokens)
    return {"tokens": total_tokens, "bytes": total_bytes, "encode_seconds": seconds, "counts": counts}


def read_token_chunks(path: str | Path, vocab_size: int, start: int = 0) -> Iterator[np.ndarray]:
    """The tokens of a cache from position `start` on, READ_CHUNK_TOKENS at a time (plain reads, no memmap)."""
    dtype = token_dtype(vocab_size)
    with open(path, "rb") as handle:
        handle.seek(start * dtype.itemsize)
        while len(chunk := np.fromfile(handle, dtype=dtype, count=READ_CHUNK_TOKENS)):
            yield chunk


@dataclass
class TokenStream:
    """A split's token cache, opened once as a read-only memmap."""

    path: Path
    tokens: np.memmap

    @classmethod
    def open(cls, path: str | Path, vocab_size: int) -> TokenStream:
        path = Path(path)
        if not path.is_file():
            raise PicoError(f"{path} does not exist; run `dvc repro tokenize` first")
        dtype = token_dtype(vocab_size)
        if path.stat().st_size % dtype.itemsize:
            raise PicoError(f"{path} has a size that is not a whole number of {dtype} tokens; it is damaged, rerun `dvc repro tokenize`")
        tokens = np.memmap(path, dtype=dtype, mode="r")
        # One pass over the cache is cheap next to training, and an out-of-range id would
        # otherwise surface as an IndexError deep inside an embedding.
        if len(tokens) and int(tokens.max()) >= vocab_size:
            raise PicoError(f"{path} holds token id {int(tokens.max())}, beyond the vocab of {vocab_size}; rerun `dvc repro tokenize`")
        return cls(path, tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def check_block_size(self, block_size: int, what: str) -> None:
        if len(self) < block_size + 2:
            raise PicoError(
                f"{self.path} holds {len(self)} tokens, too few for {what} block_size {block_size}; "
                "lower train.block_size or add data"
            )

    def batch(self, generator: torch.Generator, batch_size: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded random crop: inputs and next-token targets, both (batch, block_size).

        Only the rows of the batch are copied out of the memmap (one fancy-indexing gather).
        """
        import torch  # here, not at the top: the stages that only write or check caches never load torch

        starts = torch.randint(len(self) - block_size - 1, (batch_size,), generator=generator).numpy()
        rows = self.tokens[starts[:, None] + np.arange(block_size + 1)].astype(np.int64)
        rows = torch.from_numpy(rows)
        return rows[:, :-1], rows[:, 1:]

    def windows(self, block_size: int, stride: int, eot_id: int | None = None):
        """Sliding windows covering every position once for scoring.

        Yields (start, inputs, targets, first_scored): the first window scores all its
        positions; later ones score only their last `stride` positions, so every scored token
        sees at least block_size - stride tokens of context.

        With `eot_id`, no window crosses a document: each starts at or after the end-of-text token
        that opens its document (the cache is `<eot> doc <eot> doc ...`), so a token is scored
        given its own document from the start, as training's story crops and the entropy floor
        read it. Without, the cache is one stream.
        """
        n = len(self) - 1  # number of predictions
        bounds = [0, n]
        if eot_id is not None:
            bounds += np.flatnonzero(np.asarray(self.tokens[:n]) == eot_id).tolist()
        bounds = sorted(set(bounds))
        for begin, end in zip(bounds, bounds[1:]):
            yield from self._segment_windows(begin, end, block_size, stride)

    def _segment_windows(self, begin: int, end: int, block_size: int, stride: int):
        """`windows` over the predictions begin..end-1 alone."""
        import torch  # here, not at the top: the stages that only write or check caches never load torch

        start, first_scored = begin, 0
        while True:
            stop = min(start + block_size, end)
            chunk = torch.from_numpy(self.tokens[start : stop + 1].astype(np.int64))
            yield start, chunk[:-1], chunk[1:], first_scored
            if stop >= end:
                return
            next_start = min(start + stride, max(end - block_size, begin))
            first_scored = stop - next_start
            start = next_start


def unigram_bpb(train_counts: np.ndarray, eval_path: str | Path, vocab_size: int, eval_bytes: int) -> float:
    """Bits per byte of an add-one-smoothed unigram model fit on train: the 'no context' baseline.

    `train_counts` is the train cache's token histogram (`write_token_cache`'s counts); the
    evaluation cache is read in chunks, and a cache of one chunk is summed exactly as one array.
    """
    counts = train_counts.astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    logprob = 0.0
    for chunk in read_token_chunks(eval_path, vocab_size, start=1):  # the leading separator is context, not a prediction
        logprob += logp[chunk].sum()
    return float(-logprob / math.log(2.0) / eval_bytes)
