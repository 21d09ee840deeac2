"""Stage `tokenize`: build the tokenizer (BPE trained on train, or GPT-2) and the token caches."""

import numpy as np

from picollm import paths, tokenizer
from picollm.config import load_params
from picollm.data.prepare import SPLITS, read_split
from picollm.data.tokens import TokenStream, token_dtype, unigram_bpb, write_token_cache
from picollm.errors import exit_on_pico_error
from picollm.io import write_json


@exit_on_pico_error
def main() -> None:
    params = load_params().tokenizer
    texts = {split: [doc.text for doc in read_split(paths.PREPARED_DIR, split)] for split in SPLITS}
    tok = tokenizer.build(params.kind, params.vocab_size, texts["train"])
    tokenizer.save(tok, paths.TOKENS_DIR)
    counts = {split: write_token_cache(texts[split], tok, paths.TOKENS_DIR / f"{split}.bin", params.encode_threads) for split in SPLITS}
    streams = {split: TokenStream.open(paths.TOKENS_DIR / f"{split}.bin", tok.vocab_size) for split in SPLITS}
    unigram = unigram_bpb(np.asarray(streams["train"].tokens), np.asarray(streams["val"].tokens), tok.vocab_size, counts["val"]["bytes"])
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
