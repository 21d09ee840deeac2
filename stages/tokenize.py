"""Stage `tokenize`: build the tokenizer (BPE trained on train, or GPT-2) and the token caches.

Streaming: the prepared splits are read one document at a time, for training the BPE (on a
sample when the train split is larger than BPE_SAMPLE_BYTES, see docs/data.md) and again for
encoding, and the caches are written in chunks, so memory does not grow with the corpus. The
three caches are renamed into place together, once every split has been read without error.
"""

import contextlib

from picollm import paths, tokenizer
from picollm.data.prepare import SPLITS, count_documents, iter_split
from picollm.data.progress import progress
from picollm.data.tokens import bpe_training_texts, encode_into, token_dtype, unigram_bpb
from picollm.errors import exit_on_pico_error
from picollm.io import atomic_open, write_json
from picollm.params import load_params


def split_texts(split: str, description: str, total: int):
    return progress((doc.text for doc in iter_split(paths.PREPARED_DIR, split)), description, total=total)


@exit_on_pico_error
def main() -> None:
    params = load_params().tokenizer
    sizes = {split: count_documents(paths.PREPARED_DIR, split) for split in SPLITS}  # also: every split exists
    train_texts = ()
    if params.kind == "bpe":
        train_bytes = (paths.PREPARED_DIR / "train.jsonl").stat().st_size
        train_texts = bpe_training_texts(split_texts("train", "tokenize: training BPE", sizes["train"]), train_bytes)
    tok = tokenizer.build(params.kind, params.vocab_size, train_texts)
    with contextlib.ExitStack() as caches:
        counts = {}
        for split in SPLITS:
            handle = caches.enter_context(atomic_open(paths.TOKENS_DIR / f"{split}.bin", "wb"))
            texts = split_texts(split, f"tokenize: encoding {split}", sizes[split])
            counts[split] = encode_into(handle, texts, tok, params.encode_threads)
    tokenizer.save(tok, paths.TOKENS_DIR)
    unigram = unigram_bpb(counts["train"]["counts"], paths.TOKENS_DIR / "val.bin", tok.vocab_size, counts["val"]["bytes"])
    write_json(paths.TOKENS_META, {
        "kind": tok.kind, "vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "identity": tok.identity,
        "dtype": str(token_dtype(tok.vocab_size)),
        "splits": {split: {"tokens": c["tokens"], "bytes": c["bytes"]} for split, c in counts.items()},
        "unigram_val_bpb": unigram,
    })
    write_json(paths.TOKENIZER_METRICS, {
        "kind": tok.kind, "vocab_size": tok.vocab_size,
        "tokens": {split: c["tokens"] for split, c in counts.items()},
        "bytes_per_token": round(sum(c["bytes"] for c in counts.values()) / sum(c["tokens"] for c in counts.values()), 4),
        "unigram_val_bpb": round(unigram, 6),
    })
    total_bytes = sum(c["bytes"] for c in counts.values())
    total_seconds = sum(c["encode_seconds"] for c in counts.values())
    write_json(paths.TIMINGS_DIR / "tokenize.json", {"encode_mb_per_s": round(total_bytes / 1e6 / max(total_seconds, 1e-9), 2)})


if __name__ == "__main__":
    main()
