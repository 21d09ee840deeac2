"""Tokenizers, always served as a `tiktoken.Encoding`.

- `bpe`: a byte-level BPE learned with rustbpe on the train split (nanochat's recipe).
- `gpt2`: GPT-2's ranks, read offline from the `gpt2.tiktoken` file that the openai-whisper
  package ships (byte-identical to tiktoken's r50k_base), so nothing is downloaded.

A tokenizer is saved as a tiktoken ranks file (`base64(token) rank` per line) plus a small JSON
with the split pattern and special tokens; its identity is the sha256 of both.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tiktoken

from picollm.config import END_OF_TEXT, GPT2_VOCAB_SIZE, MIN_BPE_VOCAB
from picollm.errors import PicoError
from picollm.io import atomic_open, write_json

EOT = END_OF_TEXT
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# GPT-4's split pattern with numbers in groups of 1-3, as nanochat uses for small BPEs.
BPE_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""


@dataclass(frozen=True)
class Tokenizer:
    encoding: tiktoken.Encoding
    kind: str
    identity: str  # sha256 over ranks, pattern and specials: checkpoints record it

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    @property
    def eot_id(self) -> int:
        return self.encoding.eot_token

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """Each text's ids followed by the end-of-text id, as `encode(text) + [eot_id]` for each,
        in one call: tiktoken encodes the text between two special tokens on its own, so joining
        the texts with the end-of-text marker changes no id, and saves a call per document. The
        ids come back as a uint32 array straight from tiktoken's buffer: building a Python int per
        token held the GIL for a sixth of the time (docs/performance.md). A text that holds the
        marker itself (which `encode` reads as plain text) goes one at a time."""
        if any(EOT in text for text in texts):
            return np.array([i for text in texts for i in (*self.encode(text), self.eot_id)], dtype=np.uint32)
        if not texts:
            return np.zeros(0, dtype=np.uint32)
        return self.encoding.encode_to_numpy(EOT.join(texts) + EOT, allowed_special={EOT}, disallowed_special=())

    def encode_batch(self, texts: list[str], threads: int = 2) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(texts, num_threads=threads)

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(list(ids))

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        return self.encoding.decode_bytes(list(ids))


def _identity(ranks: dict[bytes, int], pattern: str, specials: dict[str, int]) -> str:
    digest = hashlib.sha256()
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        digest.update(base64.b64encode(token) + b" %d\n" % rank)
    digest.update(pattern.encode())
    digest.update(json.dumps(specials, sort_keys=True).encode())
    return digest.hexdigest()


def _make(kind: str, ranks: dict[bytes, int], pattern: str) -> Tokenizer:
    specials = {EOT: len(ranks)}
    encoding = tiktoken.Encoding(name=f"picollm-{kind}", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    return Tokenizer(encoding=encoding, kind=kind, identity=_identity(ranks, pattern, specials))


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Learn vocab_size - 1 ranks (256 bytes + merges); <|endoftext|> takes the last id."""
    if vocab_size < MIN_BPE_VOCAB:
        raise PicoError(
            f"tokenizer.vocab_size = {vocab_size} is too small: a byte-level BPE needs at least {MIN_BPE_VOCAB} (256 bytes + <|endoftext|>)"
        )
    import rustbpe

    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(iter(texts), vocab_size - 1, pattern=BPE_SPLIT_PATTERN)
    ranks = {bytes(token): rank for token, rank in trainer.get_mergeable_ranks()}
    if len(ranks) < vocab_size - 1:
        raise PicoError(
            f"tokenizer.vocab_size = {vocab_size} is too large for this corpus: its train split supports only "
            f"{len(ranks) + 1} tokens; lower tokenizer.vocab_size or add data"
        )
    return _make("bpe", ranks, trainer.get_pattern())


def _parse_ranks(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line_no, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError:
            raise PicoError(f"{path}: line {line_no} is not '<base64 token> <rank>'; the ranks file is damaged") from None
    return ranks


def gpt2_ranks_path() -> Path:
    spec = importlib.util.find_spec("whisper")
    path = Path(spec.origin).parent / "assets" / "gpt2.tiktoken" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise PicoError(
            "tokenizer.kind = 'gpt2' needs whisper/assets/gpt2.tiktoken from the openai-whisper package; "
            "install it with `pip install --no-deps openai-whisper` (make install does), or use tokenizer.kind: bpe"
        )
    return path


def load_gpt2() -> Tokenizer:
    path = gpt2_ranks_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != GPT2_RANKS_SHA256:
        raise PicoError(f"{path} has sha256 {digest}, expected {GPT2_RANKS_SHA256} (r50k_base); reinstall openai-whisper")
    from tiktoken_ext.openai_public import r50k_pat_str

    tokenizer = _make("gpt2", _parse_ranks(path), r50k_pat_str)
    assert tokenizer.vocab_size == GPT2_VOCAB_SIZE and tokenizer.eot_id == 50256
    return tokenizer


def save(tokenizer: Tokenizer, directory: str | Path) -> None:
    directory = Path(directory)
    ranks = tokenizer.encoding._mergeable_ranks  # tiktoken keeps no public accessor
    with atomic_open(directory / "tokenizer.tiktoken", "wb") as handle:
        for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
            handle.write(base64.b64encode(token) + b" %d\n" % rank)
    write_json(
        directory / "tokenizer.json",
        {"kind": tokenizer.kind, "pattern": tokenizer.encoding._pat_str, "eot_id": tokenizer.eot_id, "identity": tokenizer.identity},
    )


def load(directory: str | Path) -> Tokenizer:
    directory = Path(directory)
    meta_path, ranks_path = directory / "tokenizer.json", directory / "tokenizer.tiktoken"
    for path in (meta_path, ranks_path):
        if not path.is_file():
            raise PicoError(f"{path} does not exist; run `dvc repro tokenize` first")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        kind, pattern, identity = meta["kind"], meta["pattern"], meta["identity"]
    except (ValueError, KeyError, TypeError):
        raise PicoError(f"{meta_path} is damaged (not the JSON the tokenize stage writes); rerun `dvc repro tokenize`") from None
    tokenizer = _make(kind, _parse_ranks(ranks_path), pattern)
    if tokenizer.identity != identity:
        raise PicoError(f"{directory}: tokenizer files do not match their recorded identity; rerun `dvc repro tokenize`")
    return tokenizer


def build(kind: str, vocab_size: int, train_texts: Iterable[str]) -> Tokenizer:
    if kind == "gpt2":
        return load_gpt2()
    if kind == "bpe":
        return train_bpe(train_texts, vocab_size)
    raise PicoError(f"tokenizer.kind = {kind!r} is unknown; allowed: 'bpe', 'gpt2'")
